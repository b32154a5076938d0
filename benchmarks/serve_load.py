"""HTTP serving under load, on 127.0.0.1 only: requests/s and p50/p99 latency at 1, 8 and 64 concurrent clients
(`--clients`), for bert-pl's server (`serve.py`, batching concurrent requests), the same run exported to int8 ONNX
(`python -m bert_pl.export RUN OUT --format onnx --optimize --quantize`) served by serve.py, and transformers'
`pipeline("text-classification")` on the same weights (`--format hf` export) behind the same HTTP framework (FastAPI
+ uvicorn), one pipeline call per request: concurrent calls in FastAPI's thread pool ("pipeline") and one at a time
("pipeline-serial"); speed-ups are against the faster of the two at each level.

    flock /tmp/heavy.lock python benchmarks/serve_load.py --model /work/runs/mrpc_minilm \
        --out benchmarks/results/serving/mrpc_minilm_cpu.json

Each request is one MRPC dev pair (408 pairs, cycled), `{"inputs": [[sentence1, sentence2]]}`; each client sends
its next request when the last is answered, over one keep-alive connection. Every level is bounded: at most
`--requests-per-client` x clients requests (at least `--min-requests`) and `--max-seconds`; 20 warm-up requests per
server are not counted. Every answer's label is compared with `bert_pl.load(RUN).predict` on the same pair (the
agreement column). Each server runs in its own process, started and stopped (SIGTERM, exit code checked) here.
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# -- the pipeline server --------------------------------------------------------------------------------------------
def pipeline_server(hf_dir: str, serial: bool) -> None:
    """transformers' text-classification pipeline behind FastAPI + uvicorn, as one would deploy it: one pipeline
    call per request, in FastAPI's thread pool (concurrent calls), or one at a time (`serial`, a lock: torch already
    uses every core within a call)."""
    import contextlib
    import threading

    import torch
    import transformers
    import uvicorn
    from fastapi import FastAPI

    from bert_pl.inference.server import bind

    pipe = transformers.pipeline("text-classification", model=hf_dir, device="cpu", truncation=True, max_length=128)
    lock = threading.Lock() if serial else contextlib.nullcontext()
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict):  # a plain def: FastAPI runs it in its thread pool
        inputs = [{"text": a, "text_pair": b} for a, b in body["inputs"]]
        with lock:
            out = pipe(inputs)
        return {"predictions": out}

    sock = bind("127.0.0.1", 0)
    print(f"serving {hf_dir} (transformers pipeline) on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


# -- the load generator ---------------------------------------------------------------------------------------------
async def _client(port, bodies, state, latencies, answers):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            i = state["next"]
            if i >= state["limit"] or time.perf_counter() > state["deadline"]:
                return
            state["next"] += 1
            body = bodies[i % len(bodies)]
            head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            start = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            data = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            answers.append((i % len(bodies), status, data))
    finally:
        writer.close()


def load(port, bodies, clients, limit, seconds):
    """`clients` concurrent keep-alive clients until `limit` requests or `seconds`: (wall s, latencies, answers)."""
    state = {"next": 0, "limit": limit, "deadline": time.perf_counter() + seconds}
    latencies, answers = [], []

    async def run():
        await asyncio.gather(*[_client(port, bodies, state, latencies, answers) for _ in range(clients)])

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start, latencies, answers


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def start_server(cmd, env=None):
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
    line = proc.stdout.readline()
    found = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"error: {' '.join(cmd)} did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, int(found.group(1))


def stop_server(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def export(run: str, out: Path, *flags) -> str:
    """`python -m bert_pl.export RUN OUT FLAGS`; None and the reason when it fails."""
    res = subprocess.run([sys.executable, "-m", "bert_pl.export", run, str(out), *flags], cwd=ROOT,
                         capture_output=True, text=True)
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["?"])[-1]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="/work/runs/mrpc_minilm", help="a fine-tuned MRPC run (pairs)")
    p.add_argument("--glue", default=str(ROOT.parent / "shared/data/glue"))
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--requests-per-client", type=int, default=20)
    p.add_argument("--min-requests", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=40.0)
    p.add_argument("--backends", nargs="+", default=["bert-pl", "bert-pl-onnx-int8", "pipeline", "pipeline-serial"])
    p.add_argument("--serve-args", nargs="*", default=[], help="extra serve.py settings, e.g. max_wait_ms=2")
    p.add_argument("--out", default=None)
    p.add_argument("--pipeline-server", default=None, help=argparse.SUPPRESS)  # internal: run the pipeline server
    p.add_argument("--serial", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.pipeline_server:
        return pipeline_server(args.pipeline_server, args.serial)

    import torch
    import transformers

    import bert_pl
    from bert_pl.training.hardware import cpu_model

    dev = Path(args.glue) / "MRPC" / "dev.tsv"
    if not dev.is_file():
        raise SystemExit(f"error: {dev} not found; pass --glue PATH")
    rows = [line.split("\t") for line in dev.read_text(encoding="utf-8-sig").splitlines()[1:]]
    pairs = [(r[3], r[4]) for r in rows]
    bodies = [json.dumps({"inputs": [list(pair)]}).encode() for pair in pairs]
    model = bert_pl.load(args.model)
    reference = [r["label"] for r in model.predict(pairs, progress=False)]
    pipeline_labels = {}  # the export's id2label name -> bert-pl's label of that index

    results, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        if "bert-pl" in args.backends:
            servers["bert-pl"] = [sys.executable, "serve.py", f"model={args.model}", "port=0", "access_log=false",
                                  *args.serve_args]
        if "bert-pl-onnx-int8" in args.backends:
            why = export(args.model, Path(tmp) / "onnx", "--format", "onnx", "--optimize", "--quantize")
            if why:
                notes.append(f"bert-pl-onnx-int8 skipped: the export failed: {why}")
            else:
                servers["bert-pl-onnx-int8"] = [sys.executable, "serve.py", f"model={Path(tmp) / 'onnx'}", "port=0",
                                                "access_log=false", *args.serve_args]
        if {"pipeline", "pipeline-serial"} & set(args.backends):
            why = export(args.model, Path(tmp) / "hf", "--format", "hf")
            if why:
                notes.append(f"pipeline skipped: the hf export failed: {why}")
            else:
                id2label = json.loads((Path(tmp) / "hf" / "config.json").read_text())["id2label"]
                pipeline_labels = {name: model.labels[int(i)] for i, name in id2label.items()}
                for name in {"pipeline", "pipeline-serial"} & set(args.backends):
                    servers[name] = [sys.executable, str(Path(__file__).resolve()), "--pipeline-server",
                                     str(Path(tmp) / "hf")] + (["--serial"] if name == "pipeline-serial" else [])
        for name, cmd in servers.items():
            proc, port = start_server(cmd)
            try:
                load(port, bodies, 4, 20, 60)  # warm-up
                for clients in args.clients:
                    limit = max(args.min_requests, args.requests_per_client * clients)
                    wall, lat, answers = load(port, bodies, clients, limit, args.max_seconds)
                    ok = [(i, json.loads(d)) for i, s, d in answers if s == 200]
                    agree = 0
                    for i, answer in ok:
                        label = answer["predictions"][0]["label"]
                        if name.startswith("pipeline"):
                            label = pipeline_labels[label]
                        agree += label == reference[i]
                    row = {"backend": name, "clients": clients, "requests": len(answers),
                           "errors": len(answers) - len(ok), "seconds": round(wall, 2),
                           "requests_per_s": round(len(answers) / wall, 1),
                           "p50_ms": round(1000 * statistics.median(lat), 1),
                           "p99_ms": round(1000 * percentile(lat, 99), 1),
                           "label_agreement": round(agree / max(1, len(ok)), 4)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                code = stop_server(proc)
                err = proc.stderr.read()
            if code != 0:
                notes.append(f"{name}: exit code {code} after SIGTERM: {err[-500:]}")

    speedup = {}  # against the faster of the two pipeline servers at each level
    for clients in args.clients:
        rate = {r["backend"]: r["requests_per_s"] for r in results if r["clients"] == clients}
        base = max((v for b, v in rate.items() if b.startswith("pipeline")), default=None)
        if base:
            speedup[str(clients)] = {b: round(v / base, 2) for b, v in rate.items() if not b.startswith("pipeline")}
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
        "command": " ".join(["python", *sys.argv]),
        "model": args.model, "inputs": f"MRPC dev pairs ({len(pairs)}), one per request",
        "results": results, "speedup_vs_pipeline": speedup, "notes": notes,
    }
    print(json.dumps({"speedup_vs_pipeline": speedup, "notes": notes}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
