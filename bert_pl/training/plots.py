"""Pictures of runs, drawn with matplotlib's Agg backend (files only, no window, no global pyplot state):

    curves([...], out)           training curves of one or more runs (each run's csv/metrics.csv), overlaid
    sweep_summary(rows, out)     each job's best dev value in a sweep (bert_pl.tasks.sweep)
    glue_chart(report, out)      the GLUE report's dev scores (bert_pl.tasks.glue_report)

`python -m bert_pl.cli.plot RUN [RUN...]` is the command over `curves`.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bert_pl.errors import UserError


class PlotInputError(UserError, ValueError):
    pass


Series = Tuple[List[float], List[float]]  # (steps, values)


@dataclass
class RunMetrics:
    label: str
    source: Path
    series: Dict[str, Series] = field(default_factory=dict)

    def get(self, name: str) -> Optional[Series]:
        return self.series.get(name)


def read_run(metrics_csv, label: Optional[str] = None) -> RunMetrics:
    """A run's logged metrics (Lightning's metrics.csv: one row per logging call, blank where not logged)."""
    path = Path(metrics_csv)
    run = RunMetrics(label or path.parent.parent.name, path)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                step = float(row.get("step") or "nan")
            except ValueError:
                continue
            for name, text in row.items():
                if name in ("step", "epoch") or not text:
                    continue
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(step) and math.isfinite(value):
                    steps, values = run.series.setdefault(name, ([], []))
                    steps.append(step)
                    values.append(value)
    return run


def find_metrics(run: str) -> Path:
    """RUN as the plot command takes it: a run folder (its csv/metrics.csv), a metrics.csv, or latest[:TASK]."""
    spec = str(run)
    if spec == "latest" or spec.startswith("latest:"):
        from bert_pl.io import runs

        path = runs.find_latest(spec.partition(":")[2] or None)
    else:
        path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".csv":
            raise PlotInputError(f"{spec}: not a run folder or a metrics.csv; pass a run folder "
                                 f"(outputs/<task>/runs/<run>)")
        return path
    if not path.is_dir():
        raise PlotInputError(f"{spec}: no such run folder; pass a run folder (outputs/<task>/runs/<run>), its "
                             f"csv/metrics.csv or latest[:TASK]")
    found = path / "csv" / "metrics.csv"
    if not found.is_file():
        raise PlotInputError(f"{spec}: the folder has no csv/metrics.csv (runs log one with logger=csv, the "
                             f"default, or logger=many)")
    return found


def load_runs(specs: Sequence[str]) -> List[RunMetrics]:
    """The runs of `specs`, each labelled by its folder (with its parent's name where two folders share one)."""
    paths = [find_metrics(s) for s in specs]
    folders = [p.parent.parent if p.parent.name == "csv" else p.parent for p in paths]
    names = [f.name for f in folders]
    labels = [f"{f.parent.name}/{f.name}" if names.count(f.name) > 1 else f.name for f in folders]
    runs = []
    for spec, path, label in zip(specs, paths, labels):
        try:
            run = read_run(path, label)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise PlotInputError(f"{spec}: {path} is not a readable metrics.csv ({e})") from None
        if not run.series:
            raise PlotInputError(f"{spec}: {path} holds no logged metrics yet")
        runs.append(run)
    return runs


def _figure(rows: int, cols: int, width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig, out) -> Path:
    """Written under a temporary name and renamed: never half a picture under `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def main_metric(run: RunMetrics) -> Optional[str]:
    """Fine-tuning's val/main, else pretraining's val/mlm_acc, else the first dev metric that is not a loss."""
    for name in ("val/main", "val/mlm_acc"):
        if name in run.series:
            return name
    return next((n for n in sorted(run.series) if n.startswith("val/") and not n.endswith("loss")), None)


def _dev_losses(run: RunMetrics) -> List[str]:
    return sorted(n for n in run.series if n.startswith("val/") and n.endswith("/loss"))


def curves(runs: Sequence[RunMetrics], out, title: Optional[str] = None) -> Path:
    """Train and dev loss, the main dev metric, tokens/s and the gradient norm against the optimizer step; one
    colour per run."""
    fig, axes = _figure(2, 2, 12, 8)
    loss, metric, speed, grad = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    metrics_shown = set()
    for run, colour in zip(runs, colours):
        many = len(runs) > 1
        train = run.get("train/loss")
        if train:
            loss.plot(*train, color=colour, alpha=0.6, lw=1, label=f"{run.label} train" if many else "train")
        for name in _dev_losses(run):
            split = name[len("val/"):-len("/loss")] or "dev"
            loss.plot(*run.series[name], color=colour, marker="o", ls="--",
                      label=f"{run.label} {split}" if many else split)
        name = main_metric(run)
        if name:
            metrics_shown.add(name)
            metric.plot(*run.series[name], color=colour, marker="o", label=run.label if many else name)
        for axis, key in ((speed, "perf/tokens_per_s"), (grad, "train/grad_norm")):
            if run.get(key):
                axis.plot(*run.series[key], color=colour, lw=1, label=run.label)
    for axis, name in ((loss, "loss"), (metric, " / ".join(sorted(metrics_shown)) or "main dev metric"),
                       (speed, "tokens/s (real tokens)"), (grad, "gradient norm (before clipping)")):
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if axis.get_lines():
            axis.legend(fontsize="small")
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes, color="gray")
    if title:
        fig.suptitle(title, fontsize="small")
    return _save(fig, out)


def sweep_summary(rows: Sequence[dict], out, title: Optional[str] = None) -> Optional[Path]:
    """One bar per job of a sweep: its best dev value (rows as bert_pl.tasks.sweep.collect gives them), the best
    of each task marked; None when no job has a value."""
    rows = [r for r in rows if r.get("best") is not None]
    if not rows:
        return None
    tasks = sorted({str(r.get("task")) for r in rows})
    best = {t: max(r["best"] for r in rows if str(r.get("task")) == t) for t in tasks}
    fig, axes = _figure(1, 1, max(6, 0.5 * len(rows) + 2), 5)
    ax = axes[0][0]
    for i, r in enumerate(rows):
        task = str(r.get("task"))
        ax.bar(i, r["best"], color=f"C{tasks.index(task) % 10}", edgecolor="black" if r["best"] == best[task] else
               "none", label=task if task not in [str(x.get("task")) for x in rows[:i]] else None)
        ax.annotate(f"{r['best']:.3f}", (i, r["best"]), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(range(len(rows)), [f"{r['job']}: {_short(own)}" for r, own in zip(rows, _own_overrides(rows))],
                  rotation=60, ha="right", fontsize="x-small")
    ax.set_ylabel(" / ".join(sorted({str(r["metric"]) for r in rows})) + " (best epoch)")
    if len(tasks) > 1:
        ax.legend(fontsize="small")
    ax.set_title(title or "sweep: best dev value per job (outlined: the best of its task)", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def _own_overrides(rows: Sequence[dict]) -> List[str]:
    """Each job's overrides less those every job shares (what tells the jobs apart)."""
    words = [str(r.get("overrides") or "").split() for r in rows]
    shared = set.intersection(*(set(w) for w in words)) if len(words) > 1 else set()
    return [" ".join(w for w in ws if w not in shared) for ws in words]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def glue_chart(values: Dict[str, Optional[float]], out, title: str = "GLUE dev scores (%)") -> Path:
    """The report's Table 1 columns (and Average) as bars; a column without a run is marked as missing."""
    fig, axes = _figure(1, 1, 10, 4)
    ax = axes[0][0]
    names = list(values)
    for i, name in enumerate(names):
        v = values[name]
        if v is None:
            ax.annotate("missing", (i, 1), ha="center", va="bottom", rotation=90, fontsize="x-small", color="gray")
            continue
        ax.bar(i, v, color="C1" if name == "Average" else "C0")
        ax.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)
