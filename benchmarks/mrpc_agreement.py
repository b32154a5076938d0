"""One fine-tuned MRPC run through every way of using it: do they give the same labels on MRPC dev?

    .venv/bin/python benchmarks/mrpc_agreement.py --run /work/runs/mrpc_minilm --glue ../shared/data/glue

- the Python API: `bert_pl.load(run).predict(pairs)` (the reference);
- predict.py on a tab-separated text file of the pairs (a subprocess, as a user runs it);
- the HTTP server (`serve.py`, a subprocess on 127.0.0.1) under 32 concurrent clients, one request per pair;
- the ONNX exports: plain, `--optimize` and `--quantize` (those the export command offers).

Writes benchmarks/results/serving/mrpc_agreement.json: per path, the share of dev pairs whose label equals the API's,
dev accuracy, and seconds.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def dev_pairs(glue: Path):
    with open(glue / "MRPC" / "dev.tsv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, rows = rows[0], rows[1:]
    a, b, q = header.index("#1 String"), header.index("#2 String"), header.index("Quality")
    return [(r[a], r[b]) for r in rows], [r[q] for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def via_server(run: str, pairs, clients: int = 32):
    port = free_port()
    server = subprocess.Popen([sys.executable, "serve.py", f"model={run}", f"port={port}", "access_log=false"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        start = time.time()
        with ThreadPoolExecutor(clients) as pool:
            out = list(pool.map(lambda p: post(f"http://127.0.0.1:{port}/predict", {"inputs": [list(p)]}), pairs))
        seconds = time.time() - start
        return [o["predictions"][0]["label"] for o in out], seconds
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a fine-tuned MRPC run folder")
    ap.add_argument("--glue", default=str(ROOT.parent / "shared" / "data" / "glue"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving" / "mrpc_agreement.json"))
    args = ap.parse_args()
    import bert_pl

    pairs, gold = dev_pairs(Path(args.glue))
    rows = {}

    def record(name, labels, seconds, reference):
        rows[name] = {"agreement_with_api": round(sum(x == y for x, y in zip(labels, reference)) / len(pairs), 4),
                      "dev_accuracy": round(sum(x == g for x, g in zip(labels, gold)) / len(pairs), 4),
                      "seconds": round(seconds, 2), "n": len(labels)}
        print(name, rows[name], flush=True)

    start = time.time()
    api = [r["label"] for r in bert_pl.load(args.run).predict(pairs, progress=False)]
    record("api", api, time.time() - start, api)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "pairs.txt").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
        start = time.time()
        subprocess.run([sys.executable, "predict.py", f"model={args.run}", f"input={tmp / 'pairs.txt'}",
                        f"output={tmp / 'out.jsonl'}"], cwd=ROOT, check=True, capture_output=True)
        cli = [json.loads(line)["label"] for line in (tmp / "out.jsonl").read_text().splitlines()]
        record("predict.py", cli, time.time() - start, api)
        labels, seconds = via_server(args.run, pairs)
        record("server, 32 clients", labels, seconds, api)
        help_text = subprocess.run([sys.executable, "-m", "bert_pl.export", "--help"], cwd=ROOT, capture_output=True,
                                   text=True).stdout
        variants = [("onnx", [])] + [(f"onnx {flag}", [flag]) for flag in ("--optimize", "--quantize")
                                     if flag in help_text]
        for name, flags in variants:
            folder = tmp / name.replace(" ", "").replace("--", "_")
            subprocess.run([sys.executable, "-m", "bert_pl.export", args.run, str(folder), "--format", "onnx", *flags],
                           cwd=ROOT, check=True, capture_output=True)
            start = time.time()
            labels = [r["label"] for r in bert_pl.load(folder).predict(pairs, progress=False)]
            record(name, labels, time.time() - start, api)
    result = {"date": datetime.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{__import__('os').cpu_count()} cores", "command": " ".join(["python", *sys.argv]),
              "run": args.run, "dev_pairs": len(pairs), "paths": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
