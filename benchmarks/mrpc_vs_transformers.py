"""MRPC from the real MiniLM weights: bert-pl's finetune.py vs a plain `transformers` loop, same seed, data order
and hyperparameters (batch 32, 3 epochs, 10% warmup + linear decay, weight decay 0.01, max_seq_length 128; lr 2e-5
unless --lrs gives the paper's grid, in which case each implementation's best lr on dev is reported per seed).

    python benchmarks/mrpc_vs_transformers.py --glue ../shared/data/glue --out mrpc_compare.json
    python benchmarks/mrpc_vs_transformers.py --lrs 5e-5,4e-5,3e-5,2e-5 --seeds 42 --out mrpc_grid.json
"""
import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minilm_weights import minilm_dir  # noqa: E402  (benchmarks/, the script's own folder)


def run_ours(glue: Path, seed: int, lr: float, out: Path) -> dict:
    t0 = time.time()
    cmd = [sys.executable, "finetune.py", "task=mrpc", f"pretrained={minilm_dir()}", f"data_dir={glue}",
           f"seed={seed}", f"hydra.run.dir={out}", f"optimizer.lr={lr}", "data.batch_size=32", "trainer.max_epochs=3"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    last = results["history"][-1]["dev"]
    return {"dev_acc_last_epoch": last["acc"], "dev_f1_last_epoch": last["f1"],
            "best": results["best"], "wall_s": round(time.time() - t0, 1), "train_s": results["train_seconds"]}


def run_transformers(glue: Path, seed: int, lr: float) -> dict:
    import transformers
    from transformers import BertForSequenceClassification, BertTokenizerFast

    from bert_pl.tasks.glue import get_task, read_tsv

    t0 = time.time()
    torch.manual_seed(seed)
    task = get_task("mrpc")
    train = read_tsv(glue / "MRPC" / "train.tsv", task, "train")
    dev = read_tsv(glue / "MRPC" / "dev.tsv", task, "dev")
    tok = BertTokenizerFast.from_pretrained(str(minilm_dir()))
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=2)

    def encode(rows):
        enc = tok([r.texts[0] for r in rows], [r.texts[1] for r in rows], truncation="longest_first",
                  max_length=128, padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor([int(r.label) for r in rows])
        return enc

    no_decay = ("bias", "LayerNorm")
    params = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(params, lr=lr, eps=1e-6)
    steps = 3 * math.ceil(len(train) / 32)
    sched = transformers.get_linear_schedule_with_warmup(opt, int(0.1 * steps), steps)
    g = torch.Generator().manual_seed(seed)
    accs = []
    for epoch in range(3):
        model.train()
        for idx in torch.randperm(len(train), generator=g).split(32):
            loss = model(**encode([train[i] for i in idx])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(dev), 64):
                enc = encode(dev[i:i + 64])
                correct += (model(**enc).logits.argmax(-1) == enc["labels"]).sum().item()
        accs.append(correct / len(dev))
    return {"dev_acc_per_epoch": accs, "dev_acc_last_epoch": accs[-1], "wall_s": round(time.time() - t0, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue", default=str(ROOT.parent / "shared" / "data" / "glue"))
    ap.add_argument("--seeds", default="42", help="comma-separated; each seed runs both implementations")
    ap.add_argument("--lrs", default="2e-5", help="comma-separated; several = the paper's grid, best dev lr per seed")
    ap.add_argument("--out", default="mrpc_compare.json")
    args = ap.parse_args()
    glue = Path(args.glue).resolve()
    lrs = [float(x) for x in args.lrs.split(",")]
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for lr in lrs:
            ours = run_ours(glue, seed, lr, ROOT / "outputs" / "bench" / f"mrpc_ours_{seed}_{lr:g}")
            hf = run_transformers(glue, seed, lr)
            runs.append({"seed": seed, "lr": lr, "bert_pl": ours, "transformers": hf})
            print(json.dumps(runs[-1]), flush=True)
            Path(args.out).write_text(json.dumps({"threads": torch.get_num_threads(), "runs": runs}, indent=2))
    record = {"threads": torch.get_num_threads(), "runs": runs, **summarize(runs)}
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


def summarize(runs: list) -> dict:
    """Per seed, each implementation's best lr by last-epoch dev accuracy (the paper's dev-set selection), then means."""
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    best = {}
    for seed in dict.fromkeys(r["seed"] for r in runs):
        cells = [r for r in runs if r["seed"] == seed]
        best[seed] = {impl: max(({"lr": r["lr"], "dev_acc": r[impl]["dev_acc_last_epoch"]} for r in cells),
                                key=lambda c: c["dev_acc"]) for impl in ("bert_pl", "transformers")}
    return {"best_lr_per_seed": best,
            "mean_best_dev_acc": {impl: mean([b[impl]["dev_acc"] for b in best.values()])
                                  for impl in ("bert_pl", "transformers")},
            "mean_wall_s": {impl: mean([r[impl]["wall_s"] for r in runs]) for impl in ("bert_pl", "transformers")}}


if __name__ == "__main__":
    main()
