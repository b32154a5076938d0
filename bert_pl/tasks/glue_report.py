"""The GLUE report of a sweep over the GLUE tasks: each task's best dev run, one row like Table 1 of the BERT paper,
and one zip of the best runs' test predictions for the GLUE server.

    python finetune.py -m experiment=glue_all pretrained=PATH data_dir=glue_data   # writes it as jobs finish
    python -m bert_pl.tasks.glue_report SWEEP_DIR                                 # rebuilds it from a sweep folder

Writes SWEEP_DIR/glue_report.md, glue_report.json, glue_report.png (a chart of the table) and glue_submission.zip.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bert_pl.io.atomic import atomic_write_text

log = logging.getLogger("bert_pl")

REPORT_MD, REPORT_JSON, SUBMISSION_ZIP = "glue_report.md", "glue_report.json", "glue_submission.zip"
REPORT_PNG = "glue_report.png"

# In Table 1's column order.
TASKS = ["mnli", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte", "wnli"]
DISPLAY = {"mnli": "MNLI", "qqp": "QQP", "qnli": "QNLI", "sst2": "SST-2", "cola": "CoLA", "stsb": "STS-B",
           "mrpc": "MRPC", "rte": "RTE", "wnli": "WNLI"}

# Table 1's numbers: (column, task, dev split, metric in results.json's "dev").
COLUMNS: List[Tuple[str, str, str, str]] = [
    ("MNLI-m", "mnli", "dev_matched", "acc"),
    ("MNLI-mm", "mnli", "dev_mismatched", "acc"),
    ("QQP F1", "qqp", "dev", "f1"),
    ("QNLI acc", "qnli", "dev", "acc"),
    ("SST-2 acc", "sst2", "dev", "acc"),
    ("CoLA MCC", "cola", "dev", "mcc"),
    ("STS-B Spearman", "stsb", "dev", "spearman"),
    ("MRPC F1", "mrpc", "dev", "f1"),
    ("RTE acc", "rte", "dev", "acc"),
    ("WNLI acc", "wnli", "dev", "acc"),
]
# The paper's Average is the plain mean of the nine numbers it prints left of it, MNLI-m and MNLI-mm each counted
# once, WNLI left out: BERT-Base (84.6, 83.4, 71.2, 90.5, 93.5, 52.1, 85.8, 88.9, 66.4) -> 79.6 and BERT-Large -> 82.1
# match only this rule (MNLI as the mean of m and mm would give 79.1 and 81.6).
AVERAGE_COLUMNS = [c for c, *_ in COLUMNS if c != "WNLI acc"]
AVERAGE_RULE = ("mean of MNLI-m, MNLI-mm, QQP F1, QNLI, SST-2, CoLA MCC, STS-B Spearman, MRPC F1 and RTE "
                "(as the BERT paper's Table 1: MNLI-m and MNLI-mm count as two numbers, WNLI is excluded), "
                "over those present")

# The files the GLUE server expects, per task that writes them (AX, the diagnostic set, comes from the MNLI model).
SUBMISSION_FILES: Dict[str, List[str]] = {
    "cola": ["CoLA.tsv"], "sst2": ["SST-2.tsv"], "mrpc": ["MRPC.tsv"], "stsb": ["STS-B.tsv"], "qqp": ["QQP.tsv"],
    "mnli": ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"], "qnli": ["QNLI.tsv"], "rte": ["RTE.tsv"], "wnli": ["WNLI.tsv"],
}
ALL_SUBMISSION_FILES = [name for t in TASKS for name in SUBMISSION_FILES[t]]


@dataclass
class Run:
    job: str
    folder: Path
    task: str
    metric: str
    value: Optional[float]   # the run's selection metric at its best epoch; None: no usable value
    epoch: Optional[int]
    lr: Optional[float]
    seed: Optional[int]
    dev: Dict[str, Dict[str, float]]
    overrides: List[str] = field(default_factory=list)


@dataclass
class Sweep:
    runs: List[Run]
    crashed: List[str]                 # job folders without results.json
    unreadable: Dict[str, str]         # job -> why its results.json could not be used
    other_tasks: Dict[str, str]        # job -> task name that is not one of GLUE's nine


def _job_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _number(v: Any) -> Optional[float]:
    """A finite float, or None (null, NaN, inf and non-numbers are no value)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _is_job_folder(path: Path) -> bool:
    return path.is_dir() and (path.name.isdigit() or (path / ".hydra").is_dir() or (path / "results.json").exists())


def collect(sweep_dir: Path) -> Sweep:
    """Every job folder of the sweep, in job order; a job without a usable results.json is recorded, never fatal."""
    sweep = Sweep([], [], {}, {})
    folders = sorted((p for p in Path(sweep_dir).iterdir() if _is_job_folder(p)), key=lambda p: _job_key(p.name))
    for folder in folders:
        path = folder / "results.json"
        if not path.exists():
            sweep.crashed.append(folder.name)
            continue
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
            best = r["best"]
            run = Run(job=folder.name, folder=folder, task=str(r["task"]), metric=str(best.get("metric")),
                      value=_number(best.get("value")), epoch=best.get("epoch"), lr=r.get("lr"), seed=r.get("seed"),
                      dev=r.get("dev") or {}, overrides=list(r.get("overrides") or []))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            sweep.unreadable[folder.name] = f"{type(e).__name__}: {e}"
            continue
        if run.task not in DISPLAY:
            sweep.other_tasks[folder.name] = run.task
            continue
        sweep.runs.append(run)
    return sweep


def select_best(runs: Sequence[Run]) -> Dict[str, Run]:
    """Per task, the run with the highest selection value; a tie keeps the earlier job."""
    best: Dict[str, Run] = {}
    for run in runs:
        if run.value is not None and (run.task not in best or run.value > best[run.task].value):
            best[run.task] = run
    return best


def table_values(best: Dict[str, Run]) -> Dict[str, Optional[float]]:
    """Table 1's numbers in percent (unrounded) from each task's best run; None where absent."""
    values = {}
    for column, task, split, metric in COLUMNS:
        run = best.get(task)
        v = _number(run.dev.get(split, {}).get(metric)) if run is not None else None
        values[column] = None if v is None else 100.0 * v
    return values


def paper_average(values: Dict[str, Optional[float]]) -> Tuple[Optional[float], List[str]]:
    """(average, the columns it is over): see AVERAGE_RULE."""
    used = [c for c in AVERAGE_COLUMNS if values.get(c) is not None]
    return (sum(values[c] for c in used) / len(used) if used else None), used


def submission_plan(best: Dict[str, Run]) -> Tuple[List[Tuple[str, Path]], List[str]]:
    """([(file name, path in the best run's submission/)], the names of the eleven that no best run has)."""
    found, missing = [], []
    for task in TASKS:
        for name in SUBMISSION_FILES[task]:
            path = best[task].folder / "submission" / name if task in best else None
            if path is not None and path.is_file():
                found.append((name, path))
            else:
                missing.append(name)
    return found, missing


def build_report(sweep_dir: Path) -> dict:
    """Everything glue_report.json holds (the zip itself is written by write_report)."""
    sweep_dir = Path(sweep_dir)
    sweep = collect(sweep_dir)
    best = select_best(sweep.runs)
    values = table_values(best)
    average, used = paper_average(values)
    found, missing_files = submission_plan(best)

    tasks = {}
    for task in TASKS:
        runs = [r for r in sweep.runs if r.task == task]
        entry: Dict[str, Any] = {"runs": len(runs), "runs_without_value": [r.job for r in runs if r.value is None]}
        if task in best:
            b = best[task]
            entry.update(status="ok", job=b.job, folder=str(b.folder), metric=b.metric, value=b.value,
                         epoch=b.epoch, lr=b.lr, seed=b.seed, overrides=b.overrides, dev=b.dev)
        else:
            entry["status"] = "no usable run" if runs else "missing"
        tasks[task] = entry

    def pct(v):
        return None if v is None else round(v, 1)

    return {
        "sweep_dir": str(sweep_dir),
        "table": {**{c: pct(v) for c, v in values.items()}, "Average": pct(average)},
        "average": {"value": average, "columns": used, "partial": len(used) < len(AVERAGE_COLUMNS),
                    "rule": AVERAGE_RULE},
        "tasks": tasks,
        "missing_tasks": [t for t in TASKS if t not in best],
        "submission": {"zip": SUBMISSION_ZIP, "files": [name for name, _ in found],
                       "sources": {name: str(path) for name, path in found}, "missing": missing_files},
        "problems": {"crashed": sweep.crashed, "unreadable": sweep.unreadable,
                     "without_value": [r.job for r in sweep.runs if r.value is None],
                     "other_tasks": sweep.other_tasks},
        "runs": [{"job": r.job, "task": r.task, "lr": r.lr, "seed": r.seed, "metric": r.metric, "value": r.value,
                  "epoch": r.epoch, "best": best.get(r.task) is r} for r in sweep.runs],
    }


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1f}"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _md_table(header: List[str], rows: List[List[str]]) -> List[str]:
    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(row) + " |" for row in rows])


def render_markdown(report: dict) -> str:
    t = report["table"]
    lines = ["# GLUE report", "", f"Sweep: `{report['sweep_dir']}`", "",
             "Dev-set scores (%) of each task's best run, laid out as Table 1 of the BERT paper (which reports the "
             "test set).", ""]
    header = ["MNLI-(m/mm)"] + [c for c, *_ in COLUMNS[2:]] + ["Average"]
    row = [f"{_fmt(t['MNLI-m'])}/{_fmt(t['MNLI-mm'])}"] + [_fmt(t[c]) for c, *_ in COLUMNS[2:]] + [_fmt(t["Average"])]
    lines += _md_table(header, [row])
    if report.get("chart"):
        lines += ["", f"![GLUE dev scores]({report['chart']})"]
    avg = report["average"]
    lines += ["", f"Average: {AVERAGE_RULE}."]
    if avg["partial"]:
        lines.append(f"**Partial average**: over {len(avg['columns'])} of {len(AVERAGE_COLUMNS)} numbers.")
    if report["missing_tasks"]:
        lines.append("**Missing tasks** (no run with a best value): "
                     + ", ".join(DISPLAY[x] for x in report["missing_tasks"]) + ".")

    lines += ["", "## Best run per task", ""]
    rows = []
    for task in TASKS:
        e = report["tasks"][task]
        runs = str(e["runs"]) + (f" ({len(e['runs_without_value'])} without a value)" if e["runs_without_value"]
                                 else "")
        if e["status"] == "ok":
            rows.append([DISPLAY[task], f"{e['metric']} {e['value']:.4f}", _cell(e["lr"]), _cell(e["seed"]),
                         _cell(e["epoch"]), e["job"], runs])
        else:
            rows.append([DISPLAY[task], e["status"], "-", "-", "-", "-", runs])
    lines += _md_table(["Task", "Selected by", "lr", "seed", "epoch", "job", "runs"], rows)

    sub = report["submission"]
    lines += ["", "## GLUE server submission", "",
              f"`{sub['zip']}`: {len(sub['files'])} of {len(ALL_SUBMISSION_FILES)} files from the best runs."]
    if sub["missing"]:
        lines.append(f"**Missing** (the GLUE server needs all {len(ALL_SUBMISSION_FILES)}): "
                     + ", ".join(sub["missing"]) + ".")

    p = report["problems"]
    notes = []
    if p["crashed"]:
        notes.append(f"{len(p['crashed'])} job(s) crashed or unfinished (no results.json): {', '.join(p['crashed'])}")
    if p["without_value"]:
        notes.append(f"{len(p['without_value'])} run(s) without a best value (best.value null or not finite): "
                     f"{', '.join(p['without_value'])}")
    for job, why in p["unreadable"].items():
        notes.append(f"job {job}: unreadable results.json ({why})")
    for job, task in p["other_tasks"].items():
        notes.append(f"job {job}: task {task!r} is not a GLUE task; ignored")
    if notes:
        lines += ["", "## Problems", ""] + [f"- {n}" for n in notes]

    lines += ["", "## All runs", ""]
    rows = [[r["job"], DISPLAY[r["task"]], _cell(r["lr"]), _cell(r["seed"]), r["metric"],
             "-" if r["value"] is None else f"{r['value']:.4f}", _cell(r["epoch"]), "*" if r["best"] else ""]
            for r in report["runs"]]
    lines += _md_table(["job", "task", "lr", "seed", "metric", "value", "epoch", "best"], rows)
    return "\n".join(lines) + "\n"


def write_zip(files: Sequence[Tuple[str, Path]], path: Path) -> None:
    """Flat zip of `files`, written under a temporary name and renamed: never half a zip under `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            for name, src in files:
                z.write(src, arcname=name)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_chart(report: dict, out: Path) -> Optional[str]:
    """The table as a bar chart (its file name, for the markdown), or None with one warning: a picture is never
    worth a missing report."""
    try:
        from bert_pl.training.plots import glue_chart

        glue_chart(report["table"], out, title=f"GLUE dev scores (%) of each task's best run: {out.parent.name}")
    except Exception as e:  # noqa: BLE001
        log.warning("%s was not drawn (%s: %s)", out.name, type(e).__name__, e)
        return None
    return out.name


def write_report(sweep_dir: Path) -> Tuple[dict, str]:
    """Build the report of `sweep_dir` and write its three files there; returns (report, markdown)."""
    sweep_dir = Path(sweep_dir)
    report = build_report(sweep_dir)
    files = [(name, Path(src)) for name, src in report["submission"]["sources"].items()]
    write_zip(files, sweep_dir / SUBMISSION_ZIP)
    report["chart"] = write_chart(report, sweep_dir / REPORT_PNG)
    markdown = render_markdown(report)
    atomic_write_text(sweep_dir / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    atomic_write_text(sweep_dir / REPORT_MD, markdown)
    return report, markdown


class GlueReport(Callback):
    """Hydra callback: (re)writes the GLUE report into the sweep folder after every job and at the end."""

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        # Hydra skips on_multirun_end when any job failed, so the report is also kept current job by job.
        if config.hydra.mode is not None and config.hydra.mode.name == "MULTIRUN":
            write_report(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _, markdown = write_report(sweep_dir)
        print(markdown)
        print(f"GLUE report: {sweep_dir / REPORT_MD}, {sweep_dir / REPORT_JSON}, {sweep_dir / REPORT_PNG}, "
              f"{sweep_dir / SUBMISSION_ZIP}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bert_pl.tasks.glue_report",
                                     description="Rebuild the GLUE report (glue_report.md/.json, glue_submission.zip) "
                                                 "of a finetune.py sweep folder.")
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder: <sweep_dir>/<job>/results.json")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder")
    report, markdown = write_report(args.sweep_dir)
    print(markdown)
    print(f"wrote {args.sweep_dir / REPORT_MD}, {args.sweep_dir / REPORT_JSON}, {args.sweep_dir / REPORT_PNG}, "
          f"{args.sweep_dir / SUBMISSION_ZIP}")
    return 0 if any(e["status"] == "ok" for e in report["tasks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
