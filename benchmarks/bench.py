"""Speed benchmark: bert-pl vs `transformers` BERT, same config, same weights, same inputs, one process, alternating.

    python benchmarks/bench.py --model bert_base --task pretrain --batch-size 8 --seq-len 128 --precision 32 --device cpu
    python benchmarks/bench.py --model bert_base --task inference --padding-mix

Prints a table, appends one JSON line to --out, and ends with that JSON object on stdout. Not part of the tests.
Tokens/s counts real (non-padding) tokens. MFU = model FLOPs/s / device peak; model FLOPs per token are
6 x encoder matmul weights + attention, plus the MLM head on the masked positions (the same count for both, so
ratio and MFU agree). On CPU the peak is a measured large fp32/bf16 matmul, stated as such. Peak memory is what
one training step adds on top of the weights: CUDA's allocator peak, or on CPU the peak RSS growth in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python benchmarks/bench.py
from bert_pl.model.bert import BertConfig, BertForPreTraining, model_flops_per_token
from bert_pl.model.heads import BertForSequenceClassification

PRESETS = {"bert_tiny": (128, 2, 2, 512), "bert_mini": (256, 4, 4, 1024), "bert_small": (512, 4, 8, 2048),
           "bert_medium": (512, 8, 8, 2048), "bert_base": (768, 12, 12, 3072), "bert_large": (1024, 24, 16, 4096)}
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def make_inputs(batch: int, seq: int, vocab: int, padding_mix: bool, max_pred: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, seq + 1, (batch,), generator=g) if padding_mix else torch.full((batch,), seq)
    ids = torch.randint(1000, vocab, (batch, seq), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    ids = ids * mask
    types = ((torch.arange(seq)[None] >= (lengths // 2)[:, None]).long()) * mask
    n_pred = torch.clamp((lengths.float() * 0.15).round().long(), 1, max_pred)
    positions = torch.zeros(batch, max_pred, dtype=torch.long)
    mlm_labels = torch.full((batch, max_pred), -100)
    full_labels = torch.full((batch, seq), -100)
    for b in range(batch):
        pos = torch.randperm(int(lengths[b]) - 2, generator=g)[: int(n_pred[b])].sort().values + 1
        positions[b, : len(pos)] = pos
        mlm_labels[b, : len(pos)] = ids[b, pos]
        full_labels[b, pos] = ids[b, pos]
    nsp = torch.randint(0, 2, (batch,), generator=g)
    cls_labels = torch.randint(0, 2, (batch,), generator=g)
    return dict(ids=ids, types=types, mask=mask, positions=positions, mlm_labels=mlm_labels,
                full_labels=full_labels, nsp=nsp, cls_labels=cls_labels, real_tokens=int(mask.sum()),
                predictions=int(n_pred.sum()))


def packed_batch(x: dict, seq: int, vocab: int) -> dict:
    """The same sequences as `x`, packed into fewer rows by the training collator (`data.packing=true`)."""
    from bert_pl.pretraining.masking import MaskingCollator

    cls, sep = 101, 102
    names = {"[PAD]": 0, "[UNK]": 100, "[CLS]": cls, "[SEP]": sep, "[MASK]": 103}
    vocab_map = {**{f"w{i}": i for i in range(vocab)}, **names}
    examples = []
    for i in range(x["ids"].shape[0]):
        n = int(x["mask"][i].sum())
        ids = [cls, *x["ids"][i, 1:n // 2 - 1].tolist(), sep, *x["ids"][i, n // 2:n - 1].tolist(), sep]
        examples.append({"input_ids": ids, "next_sentence_label": int(x["nsp"][i]), "index": i})
    return MaskingCollator(vocab_map, max_seq_length=seq, packing=True)(examples)


def bench_inputs(args, cfg) -> dict:
    x = make_inputs(args.batch_size, args.seq_len, cfg.vocab_size, args.padding_mix, args.max_pred)
    if getattr(args, "packing", False) and args.task == "pretrain":
        x["packed"] = packed_batch(x, args.seq_len, cfg.vocab_size)
    return x


def bench_config(args) -> BertConfig:
    h, layers, heads, inter = PRESETS[args.model]
    return BertConfig(hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
                      unpad=not args.no_unpad, attention=args.attention)


def build(args, device):
    import transformers

    cfg = bench_config(args)
    hf_cfg = transformers.BertConfig(**{k: v for k, v in cfg.to_dict().items() if k not in cfg.FAST_PATH_KEYS},
                                     attn_implementation="sdpa")
    torch.manual_seed(0)
    if args.task == "pretrain":
        ours, hf = BertForPreTraining(cfg), transformers.BertForPreTraining(hf_cfg)
    else:
        ours, hf = BertForSequenceClassification(cfg, 2), transformers.BertForSequenceClassification(hf_cfg)
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and all("decoder" in k for k in missing), (missing, unexpected)
    hf.tie_weights()
    ours, hf = ours.to(device), hf.to(device)
    if args.compile:  # both, in place (the same torch.compile the training configs' module.compile=true uses)
        ours.compile()
        hf.compile()
    return cfg, ours, hf


def step_fns(args, ours, hf, x, device):
    dev = {k: v.to(device) if torch.is_tensor(v) else v for k, v in x.items()}
    if "packed" in x:
        dev["packed"] = {k: v.to(device) for k, v in x["packed"].items()}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    train = args.task != "inference"
    opts = {}
    if train:  # the same fused AdamW for both: the comparison is about the model's work
        opts = {m: torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True) for m in (ours, hf)}

    def run_ours():
        with autocast, torch.set_grad_enabled(train):
            if args.task == "pretrain" and "packed" in dev:
                loss = ours(**dev["packed"])["loss"]
            elif args.task == "pretrain":
                loss = ours(dev["ids"], dev["types"], dev["mask"], mlm_positions=dev["positions"],
                            mlm_labels=dev["mlm_labels"], next_sentence_label=dev["nsp"])["loss"]
            else:
                out = ours(dev["ids"], dev["types"], dev["mask"], labels=dev["cls_labels"] if train else None)
                loss = out["loss"] if train else out["logits"]
        if train:
            loss.backward()
            opts[ours].step()
            opts[ours].zero_grad(set_to_none=True)

    def run_hf():
        with autocast, torch.set_grad_enabled(train):
            if args.task == "pretrain":
                loss = hf(input_ids=dev["ids"], token_type_ids=dev["types"], attention_mask=dev["mask"],
                          labels=dev["full_labels"], next_sentence_label=dev["nsp"]).loss
            else:
                out = hf(input_ids=dev["ids"], token_type_ids=dev["types"], attention_mask=dev["mask"],
                         labels=dev["cls_labels"] if train else None)
                loss = out.loss if train else out.logits
        if train:
            loss.backward()
            opts[hf].step()
            opts[hf].zero_grad(set_to_none=True)

    for m in (ours, hf):
        m.train(train)
    return run_ours, run_hf


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_alternating(fns, steps: int, warmup: int, device):
    for _ in range(warmup):
        for f in fns:
            f()
    sync(device)
    totals = [0.0] * len(fns)
    for _ in range(steps):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            sync(device)
            totals[i] += time.perf_counter() - t0
    return [t / steps for t in totals]


def matmul_peak_tflops(device, precision: str) -> float:
    """A measured large-matmul rate, the practical peak of this device for this precision."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = 4096 if device.type == "cuda" else 1536
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps = 20 if device.type == "cuda" else 5
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12


def device_peak(device, precision: str):
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        for key, tflops in GPU_PEAK_TFLOPS.items():
            if key in name and precision == "bf16":
                return tflops, f"{name} dense bf16 spec"
        return matmul_peak_tflops(device, precision), f"{name} measured matmul"
    return matmul_peak_tflops(device, precision), f"CPU ({os.cpu_count()} cores) measured {precision} matmul"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _cpu_step_memory(args, which: str) -> float:
    """In a fresh process: peak RSS growth over two steps of one implementation (activations, grads, optimizer).
    The high-water mark is reset first (/proc/self/clear_refs), so building the models does not count."""
    import gc

    device = torch.device("cpu")
    cfg, ours, hf = build(args, device)
    x = bench_inputs(args, cfg)
    fn = step_fns(args, ours, hf, x, device)[0 if which == "ours" else 1]
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _rss_mb()
    for _ in range(2):
        fn()
    return _peak_rss_mb() - base


def peak_memory_mb(args, fn, which: str, device) -> float:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        try:
            return pool.submit(_cpu_step_memory, args, which).result()
        except BrokenProcessPool:  # the kernel's out-of-memory killer ended the measuring process
            raise SystemExit(f"measuring {which} at batch {args.batch_size} was killed (out of memory?); "
                             f"use a smaller --batch-size or --seq-len") from None


def largest_batch(args, device, which: str, budget_mb: float) -> dict:
    """The largest training batch of one implementation that fits `budget_mb` (weights included).
    CUDA: real out-of-memory search (doubling, then bisection). CPU, where running out of memory would take the
    machine down: the step's peak memory measured at two batch sizes in fresh processes, and the linear fit
    (fixed + per-sample) solved for the budget; the result says which."""
    import copy

    if device.type == "cuda":
        cfg, ours, hf = build(args, device)
        model = ours if which == "ours" else hf

        def fits(b):
            a = copy.copy(args)
            a.batch_size = b
            try:
                fn = step_fns(a, ours, hf, bench_inputs(a, cfg), device)[0 if which == "ours" else 1]
                fn()
                fn()
                sync(device)
                return True
            except torch.OutOfMemoryError:
                return False
            finally:
                for p in model.parameters():
                    p.grad = None
                torch.cuda.empty_cache()

        lo, hi = 0, 1
        while fits(hi):
            lo, hi = hi, hi * 2
        while hi - lo > max(1, lo // 32):  # to within 3%: each probe is two steps at a large batch
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return {"max_batch": lo, "method": "cuda out-of-memory search (doubling, then bisection to within 3%)"}
    with torch.device("meta"):  # a parameter count, without allocating two models here beside the measurements
        weights_mb = sum(p.numel() for p in BertForPreTraining(bench_config(args)).parameters()) * 4 / 2 ** 20

    def peak(b):
        a = copy.copy(args)
        a.batch_size = b
        return peak_memory_mb(a, None, which, device)

    # Second point: as large as fits in half the budget (a measurement must not exhaust RAM; a wider spread gives a
    # steadier slope), up to 16. Batch 1's step peak less gradients + AdamW's two moments (3x the weights) is roughly
    # one sample's activations.
    first = peak(1)
    per_sample_guess = max(first - 3 * weights_mb, 1.0)
    sizes = (1, max(2, min(16, int((budget_mb / 2 - 4 * weights_mb) // per_sample_guess))))
    peaks = [first, peak(sizes[1])]
    per_sample = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    fixed = peaks[0] - per_sample * sizes[0]
    return {"max_batch": int((budget_mb - weights_mb - fixed) // per_sample), "per_sample_mb": round(per_sample, 1),
            "fixed_mb": round(fixed + weights_mb, 1),
            "method": f"linear fit of measured step peaks at batch {sizes[0]} and {sizes[1]}"}


def parse_args(argv=None) -> argparse.Namespace:
    """The bench's options, with the derived MLM prediction count (`max_pred`)."""
    ap = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bert_base", choices=sorted(PRESETS))
    ap.add_argument("--task", default="pretrain", choices=["pretrain", "finetune", "inference"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--precision", default="32", choices=["32", "bf16"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--padding-mix", action="store_true", help="sequence lengths spread uniformly 20..seq-len")
    ap.add_argument("--max-predictions", type=int, default=None, help="MLM predictions per sequence (default: "
                                                                      "Google's 20 at 128, 80 at 512)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-unpad", action="store_true", help="disable the unpadding fast path")
    ap.add_argument("--attention", default="auto", choices=["auto", "sdpa", "varlen"],
                    help="with unpadding: varlen (no padding in the attention product) or sdpa (re-padded)")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--packing", action="store_true", help="pretrain: pack the batch's sequences into fewer rows "
                                                           "(data.packing=true); transformers gets them padded")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--max-batch", action="store_true", help="instead of timing: the largest training batch of each "
                                                             "implementation within --memory-budget-gb")
    ap.add_argument("--memory-budget-gb", type=float, default=None, help="default: the GPU's memory; on CPU 16")
    ap.add_argument("--out", default="bench_results.jsonl")
    args = ap.parse_args(argv)
    args.max_pred = args.max_predictions or (20 if args.seq_len <= 128 else round(args.seq_len * 0.15 + 0.5))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    steps = args.steps or (20 if device.type == "cuda" else 5)
    if args.max_batch:
        return max_batch_main(args, device)
    cfg, ours, hf = build(args, device)
    x = bench_inputs(args, cfg)
    run_ours, run_hf = step_fns(args, ours, hf, x, device)
    t_ours, t_hf = time_alternating([run_ours, run_hf], steps, args.warmup, device)
    tokens = x["real_tokens"]
    mem_ours = mem_hf = None
    if not args.skip_memory:
        mem_ours = peak_memory_mb(args, run_ours, "ours", device)
        mem_hf = peak_memory_mb(args, run_hf, "hf", device)
    peak, peak_src = device_peak(device, args.precision)
    per_tok = model_flops_per_token(cfg, args.seq_len, x["predictions"] / tokens if args.task == "pretrain" else 0)
    if args.task == "inference":
        per_tok /= 3  # forward only
    record = {
        "model": args.model, "task": args.task, "batch_size": args.batch_size, "seq_len": args.seq_len,
        "precision": args.precision, "device": args.device, "padding_mix": args.padding_mix,
        "real_tokens_per_batch": tokens, "steps": steps, "unpad": cfg.unpad, "attention": cfg.attention,
        "compile": args.compile, "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "packed_rows": int(x["packed"]["input_ids"].shape[0]) if "packed" in x else None,
        "ours_step_s": round(t_ours, 4), "hf_step_s": round(t_hf, 4),
        "ours_tokens_per_s": round(tokens / t_ours, 1), "hf_tokens_per_s": round(tokens / t_hf, 1),
        "ratio": round(t_hf / t_ours, 3),
        "ours_peak_mem_mb": None if mem_ours is None else round(mem_ours, 1),
        "hf_peak_mem_mb": None if mem_hf is None else round(mem_hf, 1),
        "mfu": round(per_tok * tokens / t_ours / (peak * 1e12), 4),
        "hf_mfu": round(per_tok * tokens / t_hf / (peak * 1e12), 4),
        "peak_tflops": round(peak, 2), "peak_source": peak_src,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "host": platform.node(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"{'':10}{'tokens/s':>12}{'step s':>10}{'peak MB':>10}")
    print(f"{'bert-pl':10}{record['ours_tokens_per_s']:>12}{record['ours_step_s']:>10}{record['ours_peak_mem_mb']!s:>10}")
    print(f"{'HF':10}{record['hf_tokens_per_s']:>12}{record['hf_step_s']:>10}{record['hf_peak_mem_mb']!s:>10}")
    print(f"ratio {record['ratio']}x   MFU {record['mfu']:.1%} (HF {record['hf_mfu']:.1%}) of {peak:.1f} TFLOP/s "
          f"[{peak_src}]")
    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record))
    return record


def max_batch_main(args, device) -> dict:
    if args.task == "inference":
        raise SystemExit("--max-batch measures training steps: use --task pretrain or finetune")
    if args.memory_budget_gb is None:
        args.memory_budget_gb = torch.cuda.get_device_properties(0).total_memory / 2 ** 30 \
            if device.type == "cuda" else 16.0
    budget = args.memory_budget_gb * 1024
    ours, hf = (largest_batch(args, device, which, budget) for which in ("ours", "hf"))
    record = {"model": args.model, "task": args.task, "seq_len": args.seq_len, "precision": args.precision,
              "device": args.device, "memory_budget_gb": args.memory_budget_gb, "ours": ours, "hf": hf,
              "ours_max_batch": ours["max_batch"], "hf_max_batch": hf["max_batch"],
              "torch": torch.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
