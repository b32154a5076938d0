"""Finding runs: `<log_dir>/<task>/runs/latest` points at the newest finished run of each task, and `latest`,
`latest:TASK` or a run folder are accepted wherever a checkpoint path is.

    latest                  the most recently finished run of any task
    latest:finetune/mrpc    the newest finished run of that task (`latest:mrpc` and `latest:train` work too)
    outputs/finetune/mrpc/runs/<time>     a run folder: its best dev checkpoint (results.json), else last.ckpt

A run that ended well has a results.json; `ckpt_path=auto` resumes the newest run of the same settings without one.
A new run's folder is `<log_dir>/<task>/runs/<start time>` (`run_dir`, Hydra's `hydra.run.dir`).

`latest` is a relative symlink replaced atomically when a run ends well, so a failed or killed run never moves it.
"""
from __future__ import annotations

import csv
import functools
import itertools
import json
import os
from pathlib import Path
from typing import List, Optional

from bert_pl.errors import UserError
from bert_pl.io.project import PROJECT_ROOT


class RunNotFoundError(UserError, FileNotFoundError):
    pass


def log_dirs() -> List[Path]:
    """Where runs are looked for: $BERT_PL_OUTPUTS alone when set, else ./outputs and the project's outputs/."""
    if os.environ.get("BERT_PL_OUTPUTS"):
        return [Path(os.environ["BERT_PL_OUTPUTS"])]
    dirs = [Path.cwd() / "outputs", PROJECT_ROOT / "outputs"]
    seen, out = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def mark_latest(run_dir) -> Path:
    """Point `<run_dir>/../latest` at `run_dir` (atomically: a new link renamed over the old one)."""
    run_dir = Path(run_dir).resolve()
    if run_dir.parent.name != "runs":  # a multirun job: the sweep folder has its own summary
        return run_dir
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)
    return link


def _latest_links() -> List[Path]:
    links = []
    for d in log_dirs():
        if d.is_dir():
            links += [p for p in d.glob("**/runs/latest") if p.is_symlink() and p.resolve().is_dir()]
    return links


def _task_of(link: Path) -> str:
    for d in log_dirs():
        try:
            return str(link.parent.parent.relative_to(d))
        except ValueError:
            continue
    return str(link.parent.parent)


def find_latest(task: Optional[str] = None) -> Path:
    """The run folder `latest` or `latest:TASK` names; a one-line error saying what exists when there is none."""
    links = _latest_links()
    if task:
        wanted = [task, f"finetune/{task}"]
        links = [p for p in links if _task_of(p) in wanted]
    if not links:
        known = sorted({_task_of(p) for p in _latest_links()})
        what = f"latest:{task}" if task else "latest"
        raise RunNotFoundError(
            f"{what}: no finished run found under {', '.join(str(d) for d in log_dirs())}"
            + (f"; runs exist for: {', '.join(known)}" if known else "")
            + "; pass a checkpoint path, a run folder or a Hugging Face/Google folder instead")
    return max(links, key=lambda p: p.resolve().stat().st_mtime).resolve()


def checkpoint_of_run(run_dir: Path) -> Optional[Path]:
    """A run folder's checkpoint: the best dev checkpoint recorded in results.json, else checkpoints/last.ckpt."""
    results = run_dir / "results.json"
    if results.is_file():
        best = (json.loads(results.read_text()).get("best") or {}).get("checkpoint")
        if best and Path(best).is_file():
            return Path(best)
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def _settings(overrides) -> list:
    """What makes two runs "the same run": their overrides, apart from where they resume from and Hydra's own."""
    return sorted(str(o) for o in overrides if not str(o).lstrip("+~").startswith(("ckpt_path=", "hydra.")))


def newest_unfinished(runs_dir, overrides) -> Optional[Path]:
    """The newest run in `runs_dir` started with the same `overrides` (see `_settings`) that has a last.ckpt and
    did not finish (no results.json): what `ckpt_path=auto` resumes."""
    from omegaconf import OmegaConf

    want, found = _settings(overrides), []
    for run in Path(runs_dir).glob("*"):
        last, record = run / "checkpoints" / "last.ckpt", run / ".hydra" / "overrides.yaml"
        if run.is_symlink() or not last.is_file() or (run / "results.json").exists() or not record.is_file():
            continue
        if _settings(OmegaConf.load(record)) == want:
            found.append((last.stat().st_mtime, str(run)))
    return Path(max(found)[1]).resolve() if found else None


def validation_curve(run_dir) -> list:
    """A pretraining run's validations from its csv/metrics.csv: step (optimizer steps done), MLM accuracy and, where
    trained, NSP accuracy; [] when the run logged none (or not to CSV)."""
    path = Path(run_dir) / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            if r.get("val/mlm_acc"):  # Lightning logs the step index before it is counted: +1 is the step count
                rows.append({"step": int(float(r["step"])) + 1, "mlm_acc": round(float(r["val/mlm_acc"]), 4),
                             **({"nsp_acc": round(float(r["val/nsp_acc"]), 4)} if r.get("val/nsp_acc") else {})})
    return rows


def expand(spec: str) -> str:
    """`latest`, `latest:TASK` or a run folder -> a checkpoint path; anything else is returned unchanged."""
    spec = str(spec)
    if spec == "latest" or spec.startswith("latest:"):
        run_dir = find_latest(spec.partition(":")[2] or None)
    else:
        run_dir = Path(spec).expanduser()
        if not (run_dir.is_dir() and ((run_dir / "results.json").is_file() or (run_dir / "checkpoints").is_dir())):
            return spec
    ckpt = checkpoint_of_run(run_dir)
    if ckpt is None:
        raise RunNotFoundError(f"{spec} ({run_dir}): the run has no checkpoint (checkpoints/last.ckpt); it may have "
                               f"stopped before its first save")
    return str(ckpt)


# -- the run folder of a new or resumed run (the `run_dir` and `config_subdir` resolvers of conf/*.yaml) --

_claimed_run_dirs: dict = {}
_auto_resumed: dict = {}


def _run_of(ckpt_path) -> Optional[Path]:
    """The run folder a resume checkpoint belongs to (`<run>/checkpoints/x.ckpt`, a run folder, latest[:TASK])."""
    if not ckpt_path:
        return None
    spec = str(ckpt_path)
    try:
        path = Path(expand(spec) if spec == "latest" or spec.startswith("latest:") else spec).expanduser()
    except UserError:
        return None  # reported properly when the job reads ckpt_path
    if path.is_dir() and (path / "checkpoints").is_dir():
        return path.resolve()
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent.resolve()
    return None


def _auto_run(runs_dir: str, overrides) -> Optional[Path]:
    """`ckpt_path=auto`: the newest unfinished run of this task with these settings (the same overrides, apart from
    ckpt_path and hydra.*), decided once per process."""
    if runs_dir not in _auto_resumed:
        _auto_resumed[runs_dir] = newest_unfinished(runs_dir, overrides)
    return _auto_resumed[runs_dir]


def run_dir(runs_dir: str, ckpt_path=None, *, _root_=None) -> str:
    """`hydra.run.dir`: a resumed run continues in its own folder (`ckpt_path=auto`: the newest unfinished run of the
    same settings, if any); a new run gets `<runs_dir>/<start time>`, with -1, -2, ... added when runs start in the
    same second (claimed by creating it, so two processes never share)."""
    from omegaconf import OmegaConf

    if str(ckpt_path) == "auto":  # the overrides from the composed config itself (Hydra's runtime may not be set)
        resumed = _auto_run(runs_dir, OmegaConf.select(_root_, "hydra.overrides.task", default=None) or [])
    else:
        resumed = _run_of(ckpt_path)
    if resumed is not None:
        return str(resumed)
    if runs_dir not in _claimed_run_dirs:
        stamp = _start_time()
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        for i in itertools.count():
            candidate = Path(runs_dir) / (stamp if i == 0 else f"{stamp}-{i}")
            try:
                candidate.mkdir()
                break
            except FileExistsError:
                continue
        _claimed_run_dirs[runs_dir] = str(candidate)
    return _claimed_run_dirs[runs_dir]


def config_subdir(ckpt_path=None) -> str:
    """`hydra.output_subdir`: a resumed run keeps the original run's .hydra/ and writes its own beside it."""
    resumed = any(_auto_resumed.values()) if str(ckpt_path) == "auto" else _run_of(ckpt_path) is not None
    return f".hydra/resumed-{_start_time()}" if resumed else ".hydra"


@functools.lru_cache(maxsize=1)
def _start_time() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
