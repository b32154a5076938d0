"""Compare pretraining recipes: run `train.py` once per variant for the same number of steps, and tabulate the
held-out MLM (and NSP) accuracy curve of each.

    python benchmarks/recipes.py --steps 800 --variants "experiment=cpu_budget" "experiment=cpu_budget_mlm_only"
    python benchmarks/recipes.py --steps 600 --variants "" "model.hidden_dropout_prob=0 model.attention_probs_dropout_prob=0"

A variant is a space-separated list of `train.py` overrides ("" = the defaults, the demo); one that sets
`trainer.max_steps=` keeps its own (e.g. `data.batch_size=64 trainer.max_steps=400` against batch 32 at 800: equal
sequences). Steps, not minutes,
make the comparison: the learning-rate schedule decays over `--steps` in every variant, and accuracy at a step
does not depend on what else the machine is doing; tokens/s is recorded too, but compare it only between runs
made on a quiet machine. Writes `--out` (JSON) and prints a Markdown table; the last stdout line is the JSON
summary {variant: final val MLM accuracy}.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bert_pl.io.runs import validation_curve  # noqa: E402
from bert_pl.training.hardware import cpu_model  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", required=True, help='each a quoted list of overrides; "" = defaults')
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--common", default="", help="overrides added to every variant")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench" / "recipes"))
    p.add_argument("--out", default="recipes.json")
    args = p.parse_args(argv)
    results = []
    for i, variant in enumerate(args.variants):
        run_dir = Path(args.work) / f"{time.strftime('%H%M%S')}_{i}"
        overrides = variant.split() + args.common.split()
        own_steps = [int(o.split("=", 1)[1]) for o in overrides if o.startswith("trainer.max_steps=")]
        if own_steps:  # a variant may set its own (a larger batch at fewer steps: the same sequences)
            steps = own_steps[-1]
        else:
            steps = args.steps
            overrides.append(f"trainer.max_steps={steps}")
        overrides += ["++trainer.max_time=null", f"hydra.run.dir={run_dir}"]
        t0 = time.time()
        proc = subprocess.run([sys.executable, "train.py"] + overrides, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"error: train.py {' '.join(overrides)} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            raise SystemExit(2)
        rate = re.search(r"([\d,]+) tokens/s", proc.stdout)
        results.append({"variant": variant or "(defaults)", "steps": steps, "curve": validation_curve(run_dir),
                        "tokens_per_s": int(rate.group(1).replace(",", "")) if rate else None,
                        "wall_s": round(time.time() - t0), "run_dir": str(run_dir)})
        last = results[-1]["curve"][-1] if results[-1]["curve"] else {}
        print(f"{results[-1]['variant']}: {last} ({results[-1]['wall_s']} s)", flush=True)
    record = {"command": "python benchmarks/recipes.py " + " ".join(
        f'"{a}"' if " " in a or not a else a for a in (sys.argv[1:] if argv is None else argv)),
        "cpu": cpu_model(), "common": args.common, "results": results}
    Path(args.out).write_text(json.dumps(record, indent=1))
    print("| variant | val MLM acc (first -> best -> last) | val NSP acc (last) | tokens/s |")
    print("|---|---|---|---|")
    for r in results:
        c = r["curve"]
        if not c:
            print(f"| {r['variant']} | no validation ran | | {r['tokens_per_s']} |")
            continue
        best = max(c, key=lambda x: x["mlm_acc"])
        print(f"| {r['variant']} | {c[0]['mlm_acc']} (step {c[0]['step']}) -> {best['mlm_acc']} (step {best['step']}) "
              f"-> {c[-1]['mlm_acc']} (step {c[-1]['step']}) | {c[-1].get('nsp_acc', '-')} | {r['tokens_per_s']} |")
    print(json.dumps({r["variant"]: r["curve"][-1]["mlm_acc"] if r["curve"] else None for r in results}))


if __name__ == "__main__":
    main()
