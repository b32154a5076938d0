"""What the machine can do, for the configs' precision defaults and for the benchmarks' records."""
from __future__ import annotations

import functools
import platform
from pathlib import Path


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them PyTorch emulates bf16 on CPU, which ran 2.4x slower than fp32 (bert_mini)."""
    flags = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_precision() -> str:
    """`${cpu_precision:}`: bf16 autocast where the CPU does bf16 natively, else fp32 (never emulated bf16)."""
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def gpu_precision() -> str:
    """`${gpu_precision:}`: bf16 mixed precision where the card has bf16 (Ampere and newer), else fp16 mixed
    precision (Lightning adds the gradient scaler)."""
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
