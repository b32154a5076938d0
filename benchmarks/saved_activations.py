"""Activation memory that autograd keeps for backward, bert-pl vs `transformers`, one pretraining forward pass:
the bytes of the distinct storages saved (`torch.autograd.graph.saved_tensors_hooks`), at two batch sizes, and the
difference per sample (weights saved for backward cancel out).

    python benchmarks/saved_activations.py --model bert_base --seq-len 128 --batches 2,8
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import bench_inputs, build, parse_args  # noqa: E402


def saved_mb(loss_fn) -> float:
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn()
    return sum(storages.values()) / 2 ** 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bert_base")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batches", default="2,8")
    a = ap.parse_args()
    sizes = [int(b) for b in a.batches.split(",")]
    result = {}
    for b in sizes:
        # the bench's own options and derived defaults (MLM predictions per sequence, ...)
        args = parse_args(["--model", a.model, "--task", "pretrain", "--batch-size", str(b),
                           "--seq-len", str(a.seq_len), "--precision", "32", "--device", "cpu"])
        cfg, ours, hf = build(args, torch.device("cpu"))
        x = bench_inputs(args, cfg)
        result[b] = (
            saved_mb(lambda: ours(x["ids"], x["types"], x["mask"], mlm_positions=x["positions"],
                                  mlm_labels=x["mlm_labels"], next_sentence_label=x["nsp"])["loss"]),
            saved_mb(lambda: hf(input_ids=x["ids"], token_type_ids=x["types"], attention_mask=x["mask"],
                                labels=x["full_labels"], next_sentence_label=x["nsp"]).loss))
        print(f"batch {b}: bert-pl {result[b][0]:.1f} MB, transformers {result[b][1]:.1f} MB saved for backward")
    lo, hi = sizes[0], sizes[-1]
    per = [(result[hi][i] - result[lo][i]) / (hi - lo) for i in (0, 1)]
    print(f"per sample: bert-pl {per[0]:.1f} MB, transformers {per[1]:.1f} MB")


if __name__ == "__main__":
    main()
