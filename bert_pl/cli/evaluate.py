"""Official SQuAD evaluation from the command line; prints what evaluate-v1.1.py / evaluate-v2.0.py print.

    python -m bert_pl.evaluate squad dev-v1.1.json predictions.json
    python -m bert_pl.evaluate squad_v2 dev-v2.0.json predictions.json --na-prob-file null_odds.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bert_pl.tasks import squad_metrics


def _load(path: str, what: str):
    p = Path(path)
    if not p.is_file():
        sys.exit(f"error: {what} file {p} does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        sys.exit(f"error: {p}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bert_pl.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=["squad", "squad_v2"])
    ap.add_argument("data_file")
    ap.add_argument("pred_file")
    ap.add_argument("--na-prob-file", "-n", default=None, help="(v2) null odds per question, e.g. null_odds.json")
    ap.add_argument("--na-prob-thresh", "-t", type=float, default=1.0)
    args = ap.parse_args(argv)
    dataset = _load(args.data_file, "dataset")
    if not isinstance(dataset, dict) or "data" not in dataset:
        sys.exit(f"error: {args.data_file} is not a SQuAD dataset file (no 'data' key)")
    preds = _load(args.pred_file, "predictions")
    if not isinstance(preds, dict):
        sys.exit(f"error: {args.pred_file} must map question ids to answer strings")
    if args.task == "squad":
        expected = "1.1"
        if dataset.get("version") != expected:
            print(f"Evaluation expects v-{expected}, but got dataset with v-{dataset.get('version')}",
                  file=sys.stderr)
        result = squad_metrics.evaluate_v1(dataset["data"], preds)
        print(json.dumps(result))
    else:
        na_probs = _load(args.na_prob_file, "na-prob") if args.na_prob_file else None
        result = squad_metrics.evaluate_v2(dataset["data"], preds, na_probs, args.na_prob_thresh)
        print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
