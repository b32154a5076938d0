"""Overlay the training curves of runs: train and dev loss, the main dev metric, tokens/s, gradient norm.

    python -m bert_pl.cli.plot outputs/finetune/mrpc/runs/2026-01-01_10-00-00 outputs/finetune/mrpc/runs/latest
    python -m bert_pl.cli.plot latest:train --out pretraining.png

RUN: a run folder (it reads RUN/csv/metrics.csv), a metrics.csv, or latest[:TASK]. Every run also draws its own
curves.png when it ends.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from bert_pl.errors import UserError

FORMATS = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<"}  # what an existing --out file must start with


def _check_out(out: Path) -> None:
    """--out names a picture; an existing file is replaced only when it is one (never a checkpoint or data)."""
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out}: name a .png, .pdf or .svg file")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; name a file such as {out / 'curves.png'}")
    if out.exists():
        with open(out, "rb") as f:
            head = f.read(8).lstrip()
        if not head.startswith(FORMATS[out.suffix.lower()]):
            raise UserError(f"--out {out} exists and is not a {out.suffix} picture; choose another file name")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bert_pl.cli.plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder, metrics.csv or latest[:TASK]")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="the picture (default: curves.png)")
    args = parser.parse_args(argv)
    try:
        from bert_pl.training import plots

        _check_out(args.out)
        runs = plots.load_runs(args.runs)
        out = plots.curves(runs, args.out, title=" vs ".join(r.label for r in runs))
    except (UserError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{len(runs)} run(s) -> {out}")


if __name__ == "__main__":
    main()
