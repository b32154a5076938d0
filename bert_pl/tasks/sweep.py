"""End-of-sweep summary for Hydra multirun: one row per run with its best dev metric, printed and saved."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bert_pl.io.atomic import atomic_write_text


def collect(sweep_dir: Path) -> List[dict]:
    rows = []
    for results in sorted(sweep_dir.glob("*/results.json"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit()
                          else p.parent.name):
        r = json.loads(results.read_text())
        rows.append({"job": results.parent.name, "overrides": " ".join(r.get("overrides", [])),
                     "metric": r["best"]["metric"], "best": r["best"]["value"], "epoch": r["best"]["epoch"]})
    return rows


def format_table(rows: List[dict]) -> str:
    if not rows:
        return "no finished runs (no results.json found)"
    best = max(rows, key=lambda r: r["best"])
    lines = [f"{'job':>4}  {'best':>8}  {'epoch':>5}  overrides"]
    for r in rows:
        mark = " *" if r is best else ""
        lines.append(f"{r['job']:>4}  {r['best']:8.4f}  {r['epoch']:>5}  {r['overrides']}{mark}")
    lines.append(f"best {best['metric']}={best['best']:.4f}: job {best['job']} ({best['overrides']})")
    return "\n".join(lines)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir)
        table = format_table(rows)
        print(table)
        atomic_write_text(sweep_dir / "summary.txt", table + "\n")
        atomic_write_text(sweep_dir / "summary.json", json.dumps(rows, indent=2))
