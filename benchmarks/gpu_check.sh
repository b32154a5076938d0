#!/usr/bin/env bash
# Every GPU check in one run (issue "GPU: the fast path on CUDA"), at most ~10 minutes on one H100/H200:
#   the benchmark rows of the README (bert-pl vs transformers/SDPA, same card, same run; benchmarks/gpu_rows.py, with
#   the card's measured matmul ceiling and a kernel profile), pytest -m gpu, and a short
#   `train.py accelerator=gpu model=bert_base`. Every number lands as JSON in OUT_DIR; a table is printed last.
#
#   bash benchmarks/gpu_check.sh OUT_DIR            # on the GPU machine, from a clean copy of the repository
#   bash benchmarks/gpu_check.sh --download         # here (CPU, online to PyPI): fill gpu_wheels/ first
# It also leaves everything as one archive, OUT_DIR.tgz: the device tool brings back only a few files, so run it as
#   bash benchmarks/gpu_check.sh /tmp/gpu; cp /tmp/gpu.tgz "$OUT/"
#
# The GPU machine has Python 3.12 with torch (2.11), lightning, transformers, tokenizers and onnxruntime, but no
# hydra-core/omegaconf/datasets and no network: what it lacks is carried as wheels in gpu_wheels/ (git-ignored;
# pass it with the device tool's carry=["gpu_wheels"]). `datasets`/pyarrow (~66 MB) are not carried: the training
# run streams its corpus (data.streaming=true), which needs neither.
set -u
cd "$(dirname "$0")/.."
WHEELS=gpu_wheels
PY=${PYTHON:-python3}

if [ "${1:-}" = "--download" ]; then
  mkdir -p "$WHEELS"
  # pure-Python wheels (any interpreter); antlr4 4.9.3 (omegaconf's pin) is a source release: build its wheel here
  $PY -m pip download --only-binary=:all: --no-deps -d "$WHEELS" hydra-core==1.3.2 omegaconf==2.3.0 PyYAML \
      --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --implementation cp
  $PY -m pip download --only-binary=:all: --no-deps -d "$WHEELS" rich markdown-it-py mdurl pygments
  $PY -m pip wheel --no-deps -w "$WHEELS" antlr4-python3-runtime==4.9.3
  du -sh "$WHEELS"; ls "$WHEELS"
  exit 0
fi

OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR  (or --download)}
mkdir -p "$OUT"
START=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - START ))s] $*"; }

log "installing what this machine lacks from $WHEELS/"
$PY -m pip install --quiet --no-index --find-links "$WHEELS" hydra-core omegaconf antlr4-python3-runtime rich \
    >"$OUT/pip.log" 2>&1 || log "pip install reported a problem (see $OUT/pip.log)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>&1
$PY - > "$OUT/env.json" <<'PY'
import json, platform, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported()}))
PY
cat "$OUT/env.json"

log "benchmark rows, largest batches, matmul ceiling, kernel profile (benchmarks/gpu_rows.py)"
timeout 320 $PY benchmarks/gpu_rows.py "$OUT" > "$OUT/rows_stdout.log" 2>&1 || log "gpu_rows ended with rc=$?"
grep "^\[gpu_rows" "$OUT/rows_stdout.log" | tail -16

log "pytest -m gpu"
timeout 130 $PY -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py --junitxml="$OUT/pytest_gpu.xml" \
    > "$OUT/pytest_gpu.log" 2>&1
echo "rc=$?" >> "$OUT/pytest_gpu.log"; tail -3 "$OUT/pytest_gpu.log"

log "train.py accelerator=gpu model=bert_base, 70 s of training"
timeout 110 $PY train.py accelerator=gpu model=bert_base data.streaming=true data.batch_size=64 data.num_workers=4 \
    +trainer.max_time=00:00:01:10 trainer.max_steps=1000000 trainer.log_every_n_steps=20 logger=csv \
    callbacks.progress_bar=null hydra.run.dir="$OUT/train_run" > "$OUT/train.log" 2>&1
echo "rc=$?" >> "$OUT/train.log"; tail -6 "$OUT/train.log"

log "summary"
$PY - "$OUT" <<'PY'
import json, sys, pathlib, xml.etree.ElementTree as ET
out = pathlib.Path(sys.argv[1])
summary = {"env": json.loads((out / "env.json").read_text() or "{}"), "bench": [], "max_batch": [], "pytest": None}
ceiling = json.loads((out / "matmul_peak.json").read_text()) if (out / "matmul_peak.json").exists() else {}
summary["matmul_ceiling_tflops"] = ceiling.get("tflops")
for name in ("bench", "max_batch"):
    f = out / f"{name}.jsonl"
    if f.exists():
        summary[name] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
if (out / "pytest_gpu.xml").exists():
    suite = ET.parse(out / "pytest_gpu.xml").getroot().find("testsuite")
    suite = suite if suite is not None else ET.parse(out / "pytest_gpu.xml").getroot()
    summary["pytest"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
train_log = (out / "train.log").read_text(errors="replace") if (out / "train.log").exists() else ""
summary["train"] = [line for line in train_log.splitlines() if "tokens/s" in line or line.startswith("rc=")][-2:]
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(f"\n{summary['env'].get('gpu')}  torch {summary['env'].get('torch')}  pytest -m gpu: {summary['pytest']}")
print(f"{'model':11}{'task':10}{'lengths':>8}{'seq':>5}{'batch':>6}{'attn':>7}{'compile':>8}{'ours tok/s':>12}{'HF tok/s':>11}"
      f"{'ratio':>7}{'MFU':>7}{'HF MFU':>8}{'of meas.':>9}")
for r in summary["bench"]:
    lengths = ("packed" if r.get("packed_rows") else "20-seq") if r.get("padding_mix") else "full"
    print(f"{r['model']:11}{r['task']:10}{lengths:>8}{r['seq_len']:>5}{r['batch_size']:>6}{r.get('attention', ''):>7}"
          f"{str(r.get('compile', '')):>8}{r['ours_tokens_per_s']:>12.0f}{r['hf_tokens_per_s']:>11.0f}{r['ratio']:>7.2f}"
          f"{r['mfu']:>7.1%}{r['hf_mfu']:>8.1%}"
          f"{r['mfu'] * r['peak_tflops'] / (summary['matmul_ceiling_tflops'] or float('nan')):>9.1%}")
print(f"bf16 matmul ceiling measured: {summary['matmul_ceiling_tflops']} TFLOP/s (MFU above is of the datasheet peak; "
      f"'of meas.' is bert-pl's share of the measured ceiling)")
for name in ("ours", "hf"):
    f = out / f"profile_{name}.json"
    if f.exists():
        p = json.loads(f.read_text())
        print(f"profile {name}: {p['kernel_ms_per_step']:.1f} ms of kernels a step;",
              "; ".join(f"{k['share']:.0%} {k['kernel'][:40]}" for k in p["top"][:5]))
for r in summary["max_batch"]:
    print("largest batch:", {k: v for k, v in r.items() if k in ("model", "seq_len", "ours", "hf", "largest")} or r)
print("train.py:", *summary["train"], sep="\n  ")
PY
tar czf "$OUT.tgz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
log "done (everything also in $OUT.tgz)"
