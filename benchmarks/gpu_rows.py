"""The GPU benchmark rows of the README in one process (called by benchmarks/gpu_check.sh on the GPU machine).

    python benchmarks/gpu_rows.py OUT_DIR
    python benchmarks/gpu_rows.py OUT_DIR --smoke     # on CPU, bert_tiny, batch 4: the script's plumbing only
    python benchmarks/gpu_rows.py OUT_DIR --only=profile,base128_b512    # some of it

1. The card's measured bf16 matmul ceiling (8192^3 on random data, CUDA events, median of 10), so MFU can be stated
   against both the datasheet peak and what the card really does.
2. The rows: `python benchmarks/bench.py` (bert-pl vs transformers with SDPA, same weights and inputs, alternating)
   for each configuration in ROWS, called in-process so torch and transformers are imported once. A row that fails
   or overruns its alarm is logged and skipped; the others still run.
3. The largest training batch of each implementation at seq 128 and 512 (bert_base, out-of-memory search).
4. Kernel profiles (torch.profiler, kernels grouped by kind) of one bert_base seq-128 pretraining step and one
   padded fine-tuning step of each implementation, so a missed target can be explained by where the time goes.
Everything lands in OUT_DIR: bench.jsonl, max_batch.jsonl, matmul_peak.json, profile_{ours,hf}.txt, rows.log.
"""
import gc
import json
import pathlib
import signal
import sys
import time
import traceback

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

COMMON = ["--device", "cuda", "--precision", "bf16", "--steps", "10", "--warmup", "3"]
ROWS = [  # (name, extra argv, alarm seconds)
    ("base128", ["--model", "bert_base", "--task", "pretrain", "--batch-size", "128", "--seq-len", "128"], 60),
    ("base128_sdpa", ["--model", "bert_base", "--task", "pretrain", "--batch-size", "128", "--seq-len", "128",
                      "--attention", "sdpa", "--skip-memory"], 45),
    ("base128_packing", ["--model", "bert_base", "--task", "pretrain", "--batch-size", "128", "--seq-len", "128",
                         "--padding-mix", "--packing", "--skip-memory"], 45),
    ("base512", ["--model", "bert_base", "--task", "pretrain", "--batch-size", "32", "--seq-len", "512",
                 "--skip-memory"], 45),
    ("base128_b512", ["--model", "bert_base", "--task", "pretrain", "--batch-size", "512", "--seq-len", "128",
                      "--skip-memory"], 45),
    ("large128", ["--model", "bert_large", "--task", "pretrain", "--batch-size", "64", "--seq-len", "128",
                  "--skip-memory"], 60),
    ("large512", ["--model", "bert_large", "--task", "pretrain", "--batch-size", "16", "--seq-len", "512",
                  "--skip-memory"], 60),
    ("ft_padded", ["--model", "bert_base", "--task", "finetune", "--batch-size", "32", "--seq-len", "128",
                   "--padding-mix"], 45),
    ("ft_padded_sdpa", ["--model", "bert_base", "--task", "finetune", "--batch-size", "32", "--seq-len", "128",
                        "--padding-mix", "--attention", "sdpa", "--skip-memory"], 45),
    ("infer_padded", ["--model", "bert_base", "--task", "inference", "--batch-size", "128", "--seq-len", "128",
                      "--padding-mix", "--skip-memory"], 45),
]
MAX_BATCH = [("max_batch_128", ["--seq-len", "128"], 90), ("max_batch_512", ["--seq-len", "512"], 120)]
COMPILE_ROWS = [  # last: compiling takes a minute each
    ("base128_compile", ["--model", "bert_base", "--task", "pretrain", "--batch-size", "128", "--seq-len", "128",
                         "--compile", "--skip-memory"], 100),
    ("ft_padded_compile", ["--model", "bert_base", "--task", "finetune", "--batch-size", "32", "--seq-len", "128",
                           "--padding-mix", "--compile", "--skip-memory"], 100),
]


class Overrun(Exception):
    pass


def _alarm(signum, frame):
    raise Overrun()


def log(out: pathlib.Path, msg: str):
    line = f"[gpu_rows {time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    with open(out / "rows.log", "a") as f:
        f.write(line + "\n")


def guarded(out, name, seconds, fn):
    signal.alarm(seconds)
    t0 = time.perf_counter()
    try:
        result = fn()
        log(out, f"{name}: done in {time.perf_counter() - t0:.0f} s")
        return result
    except Overrun:
        log(out, f"{name}: stopped after {seconds} s")
    except BaseException as e:  # noqa: BLE001 - one failed row must not cost the others (SystemExit included)
        log(out, f"{name}: failed: {type(e).__name__}: {e}")
        (out / f"{name}.err").write_text(traceback.format_exc())
    finally:
        signal.alarm(0)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def smoke(argv: list) -> list:
    """--smoke: the same calls on CPU at bert_tiny size, batch 4, seq 32, one step."""
    swap = {"--device": "cpu", "--model": "bert_tiny", "--batch-size": "4", "--seq-len": "32", "--steps": "1",
            "--warmup": "1"}
    return [swap.get(prev, a) for prev, a in zip([None, *argv], argv)]


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_ceiling(n=8192, reps=10) -> dict:
    if not torch.cuda.is_available():  # --smoke
        return {"n": 0, "tflops": bench.matmul_peak_tflops(torch.device("cpu"), "bf16"), "gpu": None}
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    t = sorted(times)[len(times) // 2]
    return {"n": n, "dtype": "bf16", "median_s": t, "tflops": round(2 * n ** 3 / t / 1e12, 1),
            "gpu": torch.cuda.get_device_name()}


def profile(out: pathlib.Path, fix, row="base128"):
    from torch.profiler import ProfilerActivity, profile as prof

    args = bench.parse_args(fix(dict((name, argv) for name, argv, _ in ROWS)[row] + COMMON))
    suffix = "" if row == "base128" else f"_{row}"
    device = torch.device(args.device)
    cfg, ours, hf = bench.build(args, device)
    fns = bench.step_fns(args, ours, hf, bench.bench_inputs(args, cfg), device)
    for name, fn in zip(("ours", "hf"), fns):
        for _ in range(3):
            fn()
        sync()
        with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            for _ in range(3):
                fn()
            sync()
        table = p.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=70)
        (out / f"profile_{name}{suffix}.txt").write_text(table)
        kernels = [e for e in p.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
        total = sum(e.self_device_time_total for e in kernels) or 1
        top = sorted(kernels, key=lambda e: -e.self_device_time_total)[:12]
        summary = [{"kernel": e.key[:90], "share": round(e.self_device_time_total / total, 3)} for e in top]
        classes = {}
        for e in kernels:
            kind = kernel_class(e.key)
            classes[kind] = classes.get(kind, 0) + e.self_device_time_total / total
        (out / f"profile_{name}{suffix}.json").write_text(json.dumps(
            {"kernel_ms_per_step": total / 3e3, "classes": {k: round(v, 3) for k, v in sorted(classes.items())},
             "top": summary}, indent=1))


def kernel_class(name: str) -> str:
    """A coarse kind for a CUDA kernel's name, so a profile reads as 'where the time goes'."""
    n = name.lower()
    for kind, keys in (("attention", ("flash", "fmha", "cudnn", "attention", "softmax")),
                       ("matmul", ("gemm", "nvjet", "cutlass", "sm90_xmma", "cublas")),
                       ("layernorm", ("layer_norm", "layernorm", "gammabeta")),
                       ("optimizer", ("adam", "foreach", "multi_tensor")),
                       ("dtype casts/copies", ("copy",)),
                       ("reductions", ("reduce",)),
                       ("elementwise", ("elementwise", "gelu", "dropout", "fused"))):
        if any(k in n for k in keys):
            return kind
    return "other"


def main(out: pathlib.Path, fix=lambda argv: argv, only=None):
    """`only`: a set of row names (and/or 'ceiling', 'profile', 'max_batch_128', ...) to run; default all."""
    out.mkdir(parents=True, exist_ok=True)
    want = (lambda name: True) if not only else (lambda name: name in only)
    signal.signal(signal.SIGALRM, _alarm)
    ceiling = guarded(out, "matmul ceiling", 30, matmul_ceiling) if want("ceiling") else None
    if ceiling:
        (out / "matmul_peak.json").write_text(json.dumps(ceiling))
        log(out, f"bf16 matmul ceiling {ceiling['tflops']} TFLOP/s on {ceiling['gpu']}")
    for name, argv, seconds in ROWS:
        if want(name):
            guarded(out, name, seconds, lambda: bench.main(fix(argv + COMMON) + ["--out", str(out / "bench.jsonl")]))
    for name, argv, seconds in MAX_BATCH:
        budget = [] if torch.cuda.is_available() else ["--memory-budget-gb", "0.5"]
        if want(name):
            guarded(out, name, seconds, lambda: bench.main(
                fix(["--model", "bert_base", "--task", "pretrain", "--max-batch", *argv, *COMMON])
                + budget + ["--out", str(out / "max_batch.jsonl")]))
    if want("profile"):
        guarded(out, "profile", 60, lambda: profile(out, fix))
    if want("profile_ft_padded"):
        guarded(out, "profile_ft_padded", 60, lambda: profile(out, fix, "ft_padded"))
    for name, argv, seconds in COMPILE_ROWS:
        if want(name):
            guarded(out, name, seconds, lambda: bench.main(fix(argv + COMMON) + ["--out", str(out / "bench.jsonl")]))


if __name__ == "__main__":
    only = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)
    main(pathlib.Path(sys.argv[1]), smoke if "--smoke" in sys.argv else (lambda argv: argv), set(only or ()))
