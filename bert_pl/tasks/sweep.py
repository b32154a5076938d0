"""End-of-sweep summary for Hydra multirun: one row per run with its best dev metric, printed and saved
(summary.txt, summary.json) and drawn (summary.png).

conf/finetune.yaml registers it for every `python finetune.py -m ...`; an hparams_search config (or the command
line) may register it again under another name, and the sweep still ends with one table."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bert_pl.io.atomic import atomic_write_text

log = logging.getLogger("bert_pl")


def collect(sweep_dir: Path) -> List[dict]:
    rows = []
    for results in sorted(sweep_dir.glob("*/results.json"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit()
                          else p.parent.name):
        r = json.loads(results.read_text())
        rows.append({"job": results.parent.name, "task": r.get("task"), "overrides": " ".join(r.get("overrides", [])),
                     "metric": r["best"]["metric"], "best": r["best"]["value"], "epoch": r["best"]["epoch"]})
    return rows


def format_table(rows: List[dict]) -> str:
    if not rows:
        return "no finished runs (no results.json found)"
    best = {}  # task -> its best run: runs of different tasks (experiment=glue_all) are never ranked together
    for r in rows:
        if r["best"] is not None and (r.get("task") not in best or r["best"] > best[r.get("task")]["best"]):
            best[r.get("task")] = r
    lines = [f"{'job':>4}  {'best':>8}  {'epoch':>5}  overrides"]
    for r in rows:
        mark = " *" if best.get(r.get("task")) is r else ""
        value = "-" if r["best"] is None else f"{r['best']:.4f}"  # None: an evaluate-only run (train=false)
        lines.append(f"{r['job']:>4}  {value:>8}  {r['epoch']!s:>5}  {r['overrides']}{mark}")
    for task, b in best.items():
        name = f"{task} {b['metric']}" if len(best) > 1 else b["metric"]
        lines.append(f"best {name}={b['best']:.4f}: job {b['job']} ({b['overrides']})")
    return "\n".join(lines)


class SweepSummary(Callback):
    _printed_for = None  # shared by every registration of this callback: the first to see the sweep end prints it

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        SweepSummary._printed_for = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if SweepSummary._printed_for == sweep_dir:
            return
        SweepSummary._printed_for = sweep_dir
        rows = collect(sweep_dir)
        table = format_table(rows)
        print(table)
        atomic_write_text(sweep_dir / "summary.txt", table + "\n")
        atomic_write_text(sweep_dir / "summary.json", json.dumps(rows, indent=2))
        write_plot(rows, sweep_dir / "summary.png")


def write_plot(rows: List[dict], out: Path) -> None:
    """summary.png: each job's best dev value. A picture is never worth a failed sweep: a problem is one warning."""
    try:
        from bert_pl.training.plots import sweep_summary

        if sweep_summary(rows, out, title=f"{out.parent}: best dev value per job (outlined: the best of its task)"):
            print(f"sweep plot: {out}")
    except Exception as e:  # noqa: BLE001
        log.warning("summary.png was not drawn (%s: %s)", type(e).__name__, e)
