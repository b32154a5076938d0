"""Pretraining preparation at corpus scale: generated corpora of 100 MB and 1 GB (no network), prepared the way
`train.py` prepares them, against a plain reference on the same text and machine.

    python benchmarks/corpus_scale.py generate --sizes 100 1000          # corpora under --workdir (not timed)
    python benchmarks/corpus_scale.py prepare --sizes 100 1000 --num-proc 2
    python benchmarks/corpus_scale.py vocab --sizes 1000 --num-proc 2     # the vocab pass alone
    python benchmarks/corpus_scale.py loader --workers 0 1 2              # tokens/s per loader worker

The text: the sentences of the State of the Union addresses in ../shared/data/corpus/state_union, shuffled into
paragraphs (as many sentences as a real paragraph has) and documents of 10-60 paragraphs, a blank line between
documents (`data.source.doc_split=block`); seeded, so the same size gives the same file.

`prepare` runs, for each size, `train.py data=text data.source.doc_split=block data.dupe_factor=1
trainer.max_steps=2` on a new cache folder (so the time is preparation: vocab, then instances), sampling the
process tree (train.py and its preparation workers) every 0.25 s for the sum of RSS and of PSS (shared pages
counted once), then the reference: tokenizers' Rust WordPiece trainer on the file, then `encode_batch` over all
its lines (all cores). Both: wall and CPU seconds (of the whole process tree). Results go to
benchmarks/results/corpus_scale/<date>_<host>.json and the table into docs/pretraining_at_scale.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "corpus" / "state_union"
RESULTS = ROOT / "benchmarks" / "results" / "corpus_scale"
DOC = ROOT / "docs" / "pretraining_at_scale.md"
BEGIN, END = "<!-- corpus_scale:prepare:begin -->", "<!-- corpus_scale:prepare:end -->"
VBEGIN, VEND = "<!-- corpus_scale:vocab:begin -->", "<!-- corpus_scale:vocab:end -->"
LBEGIN, LEND = "<!-- corpus_scale:loader:begin -->", "<!-- corpus_scale:loader:end -->"


# -- corpus ---------------------------------------------------------------------------------------------------
def generate(path: Path, megabytes: float, seed: int = 0) -> Path:
    sys.path.insert(0, str(ROOT))
    from bert_pl.pretraining.sentences import split_rule

    if path.exists() and path.stat().st_size >= megabytes * 2 ** 20:
        return path
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: the corpus is generated from it")
    paragraphs = [split_rule(line) for f in sorted(DATA.glob("*.txt"))
                  for line in f.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    sentences = [s for p in paragraphs for s in p]
    lengths = [len(p) for p in paragraphs]
    rng = random.Random(seed)
    target, size = int(megabytes * 2 ** 20), 0
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        while size < target:
            doc = "\n".join(" ".join(rng.choices(sentences, k=rng.choice(lengths)))
                            for _ in range(rng.randint(10, 60)))
            f.write(doc + "\n\n")
            size += len(doc.encode("utf-8")) + 2
    tmp.rename(path)
    return path


def corpus_path(workdir: Path, mb: int) -> Path:
    return workdir / f"corpus_{mb}mb.txt"


# -- measuring a process tree ---------------------------------------------------------------------------------
def _children(pid: int) -> list:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _tree(pid: int) -> list:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Peak of the summed RSS and PSS of a process and its descendants; also the peak while preparing (until
    the log shows the instances' summary line), with the processes' share at that moment."""

    def __init__(self, pid: int, log_path: Path, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.log_path, self.every, self.stop = pid, log_path, every, threading.Event()
        self.peak = {"rss": 0, "pss": 0, "prep_rss": 0, "prep_pss": 0}
        self.at_prep_peak: list = []
        self.preparing = True

    def run(self):
        while not self.stop.is_set():
            pids = _tree(self.pid)
            each = [(p, _kb(f"/proc/{p}/status", "VmRSS:"), _kb(f"/proc/{p}/smaps_rollup", "Pss:")) for p in pids]
            rss, pss = sum(e[1] for e in each), sum(e[2] for e in each)
            self.peak["rss"], self.peak["pss"] = max(self.peak["rss"], rss), max(self.peak["pss"], pss)
            if self.preparing:
                try:
                    self.preparing = "] - pretraining instances: " not in self.log_path.read_text(errors="replace")
                except OSError:
                    pass
            if self.preparing and rss > self.peak["prep_rss"]:
                self.peak["prep_rss"] = rss
                self.at_prep_peak = [(_name(p), round(r / 1024), round(q / 1024)) for p, r, q in each]
            if self.preparing:
                self.peak["prep_pss"] = max(self.peak["prep_pss"], pss)
            self.stop.wait(self.every)


def _name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    text = " ".join(c.decode(errors="replace") for c in cmd[:3])
    return "preparation worker" if b"spawn_main" in b" ".join(cmd) else text[-60:]


def measured(cmd: list, log_path: Path, env=None) -> dict:
    """Run cmd; wall and CPU seconds of its whole tree (RUSAGE_CHILDREN counts every reaped descendant), peaks."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        sampler = TreeSampler(proc.pid, log_path)
        sampler.start()
        code = proc.wait()
    wall = time.monotonic() - start
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({code}); see {log_path}")
    pk = sampler.peak
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(pk["rss"] / 1024),
            "peak_pss_mb": round(pk["pss"] / 1024), "preparation_peak_rss_mb": round(pk["prep_rss"] / 1024),
            "preparation_peak_pss_mb": round(pk["prep_pss"] / 1024),
            "processes_at_preparation_peak": sampler.at_prep_peak}


REFERENCE = r"""
import sys, time
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer
path = sys.argv[1]
tok = Tokenizer(WordPiece(unk_token="[UNK]"))
tok.normalizer = normalizers.BertNormalizer(lowercase=True)
tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
start = time.monotonic()
tok.train([path], WordPieceTrainer(vocab_size=8000, min_frequency=2, show_progress=False,
                                   special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
trained = time.monotonic()
tokens, lines = 0, []
with open(path, encoding="utf-8") as f:
    for line in f:
        if line.strip():
            lines.append(line)
        if len(lines) == 10000:
            tokens += sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
            lines = []
tokens += sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False)) if lines else 0
print(f"REFERENCE train_s={trained - start:.1f} encode_s={time.monotonic() - trained:.1f} tokens={tokens}")
"""


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prepare_one(mb: int, args) -> dict:
    corpus = corpus_path(args.workdir, mb)
    if not corpus.exists():
        sys.exit(f"{corpus} is missing: run `{sys.argv[0]} generate --sizes {mb}` first")
    cache = args.workdir / f"cache_{mb}mb"
    subprocess.run(["rm", "-rf", str(cache), str(args.workdir / f"run_{mb}mb")], check=True)
    text_mb = corpus.stat().st_size / 2 ** 20
    cmd = [sys.executable, "train.py", "data=text", f"data.source.paths=[{corpus}]", "data.source.doc_split=block",
           "data.dupe_factor=1", f"data.num_proc={args.num_proc}", "trainer.max_steps=2",
           f"paths.cache_dir={cache}", f"hydra.run.dir={args.workdir / f'run_{mb}mb'}"]
    print(f"[{mb} MB] {' '.join(cmd)}", flush=True)
    ours = measured(cmd, args.workdir / f"train_{mb}mb.log")
    log = (args.workdir / f"train_{mb}mb.log").read_text()
    vocab = re.search(r"vocab: (\d+) words trained on ([\d.]+) MB in ([\d.]+) s: counting ([\d.]+) s \(([\d.]+) MB/s "
                      r"per core, (\d+) processes\), trainer ([\d.]+) s", log)
    (build_json,) = cache.glob("pretrain-*/build.json")
    build = json.loads(build_json.read_text())
    cache_bytes = du(build_json.parent)
    vocab_s = float(vocab.group(3))
    out = {
        "text_mb": round(text_mb, 1), "command": " ".join(cmd[1:]), "train_py": ours,
        "vocab": {"wall_s": vocab_s, "counting_s": float(vocab.group(4)), "trainer_s": float(vocab.group(7)),
                  "counting_mb_s_per_core": float(vocab.group(5)), "mb_s": round(text_mb / vocab_s, 2)},
        "instances": {"wall_s": round(build["seconds"], 1), "mb_s": round(text_mb / build["seconds"], 2),
                      **{f"{k}_mb_s_per_core": round(text_mb / build[f"cpu_{k}"], 2)
                         for k in ("read", "tokenise", "pair", "write")},
                      "train": build["n_train"], "validation": build.get("n_validation", 0),
                      "tokens": build["tokens"], "documents": build["docs"]},
        "preparation_wall_s": round(vocab_s + build["seconds"], 1),
        "cache_bytes": cache_bytes, "cache_bytes_per_text_mb": round(cache_bytes / text_mb),
    }
    print(f"[{mb} MB] ours: {json.dumps(out)}", flush=True)
    ref = measured([sys.executable, "-c", REFERENCE, str(corpus)], args.workdir / f"reference_{mb}mb.log")
    m = re.search(r"train_s=([\d.]+) encode_s=([\d.]+) tokens=(\d+)",
                  (args.workdir / f"reference_{mb}mb.log").read_text())
    ref.update(train_s=float(m.group(1)), encode_s=float(m.group(2)), tokens=int(m.group(3)))
    out["reference"] = ref
    out["preparation_over_reference"] = round(out["preparation_wall_s"] / ref["wall_s"], 2)
    print(f"[{mb} MB] reference: {json.dumps(ref)}", flush=True)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
            "python": platform.python_version()}


def cmd_prepare(args):
    started = datetime.datetime.now(datetime.timezone.utc)
    result = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "num_proc": args.num_proc,
              "command": " ".join(["python", "benchmarks/corpus_scale.py", *sys.argv[1:]]), "sizes": {}}
    for mb in args.sizes:
        result["sizes"][str(mb)] = prepare_one(mb, args)
    if len(args.sizes) >= 2:
        small, large = (result["sizes"][str(m)] for m in (min(args.sizes), max(args.sizes)))
        result["scaling"] = {
            "text": round(large["text_mb"] / small["text_mb"], 2),
            "preparation_time": round(large["preparation_wall_s"] / small["preparation_wall_s"], 2),
            "cpu_time": round(large["train_py"]["cpu_s"] / small["train_py"]["cpu_s"], 2),
            "preparation_peak_rss": round(large["train_py"]["preparation_peak_rss_mb"]
                                          / small["train_py"]["preparation_peak_rss_mb"], 2),
            "preparation_peak_pss": round(large["train_py"]["preparation_peak_pss_mb"]
                                          / small["train_py"]["preparation_peak_pss_mb"], 2),
            "run_peak_rss": round(large["train_py"]["peak_rss_mb"] / small["train_py"]["peak_rss_mb"], 2)}
    result["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"prepare_{started.strftime('%Y%m%d_%H%M')}_{socket.gethostname()}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    write_table(result, BEGIN, END, prepare_table(result, out))


def prepare_table(r: dict, path: Path) -> str:
    m = r["machine"]
    rows = ["| text | preparation (wall) | CPU s (tree) | peak RSS / PSS preparing (tree) | peak RSS whole run | vocab: counting MB/s per core "
            "| vocab wall | tokenising MB/s per core | pairing MB/s per core | reading MB/s per core | cache bytes "
            "per MB of text | reference (wall / CPU s) | over reference |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mb, s in r["sizes"].items():
        t, v, i, ref = s["train_py"], s["vocab"], s["instances"], s["reference"]
        rows.append(f"| {s['text_mb']:.0f} MB | {s['preparation_wall_s']:.0f} s (vocab {v['wall_s']:.0f} + "
                    f"instances {i['wall_s']:.0f}; train.py {t['wall_s']:.0f}) | {t['cpu_s']:.0f} | "
                    f"{t['preparation_peak_rss_mb']:,} / {t['preparation_peak_pss_mb']:,} MB | {t['peak_rss_mb']:,} MB | "
                    f"{v['counting_mb_s_per_core']:.2f} | "
                    f"{v['wall_s']:.0f} s | {i['tokenise_mb_s_per_core']:.2f} | {i['pair_mb_s_per_core']:.1f} | "
                    f"{i['read_mb_s_per_core']:.1f} | {s['cache_bytes_per_text_mb'] / 2 ** 20:.2f} MB | "
                    f"{ref['wall_s']:.0f} s / {ref['cpu_s']:.0f} | {s['preparation_over_reference']:.2f}x |")
    lines = [f"Measured {r['date']} to {r['finished']} on {m['host']} ({m['cpu']}, {m['cores']} cores, "
             f"{m['memory_gb']} GB), data.num_proc={r['num_proc']}; command: `{r['command']}`; "
             f"raw numbers: `{path.relative_to(ROOT)}`.", "", *rows]
    if "scaling" in r:
        sc = r["scaling"]
        lines += ["", f"{sc['text']}x the text: {sc['preparation_time']}x the preparation time, {sc['cpu_time']}x "
                      f"the CPU seconds of the run, {sc['preparation_peak_rss']}x the peak RSS while preparing "
                      f"({sc['preparation_peak_pss']}x the peak PSS), {sc['run_peak_rss']}x the whole run's peak RSS."]
    return "\n".join(lines)


def write_table(result: dict, begin: str, end: str, table: str) -> None:
    text = DOC.read_text() if DOC.exists() else ""
    if begin not in text:
        print(f"{DOC} has no {begin} marker; table:\n{table}")
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    DOC.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    print(f"updated {DOC}")


# -- the vocab alone --------------------------------------------------------------------------------------------
VOCAB = r"""
import logging, sys
sys.path.insert(0, sys.argv[1])
logging.basicConfig(level=logging.INFO, format="%(message)s")
from bert_pl.pretraining.prepare import train_vocab
source = {"format": "plain", "paths": [sys.argv[2]], "doc_split": "block", "sentence_splitter": "rule"}
train_vocab(source, dict(vocab_size=8000, lowercase=True, min_frequency=2, limit_alphabet=1000,
                         handle_chinese_chars=True, strip_accents=None), int(sys.argv[3]))
"""


def cmd_vocab(args):
    """What train.py's vocab pass does (`prepare.train_vocab`, the same settings as data=text), on its own."""
    started = datetime.datetime.now(datetime.timezone.utc)
    result = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "num_proc": args.num_proc,
              "command": " ".join(["python", "benchmarks/corpus_scale.py", *sys.argv[1:]]), "sizes": {}}
    for mb in args.sizes:
        corpus = corpus_path(args.workdir, mb)
        log_path = args.workdir / f"vocab_{mb}mb.log"
        run = measured([sys.executable, "-c", VOCAB, str(ROOT), str(corpus), str(args.num_proc)], log_path)
        m = re.search(r"in ([\d.]+) s: counting ([\d.]+) s \(([\d.]+) MB/s per core, (\d+) processes\), trainer "
                      r"([\d.]+) s", log_path.read_text())
        run.update(text_mb=round(corpus.stat().st_size / 2 ** 20, 1), vocab_s=float(m.group(1)),
                   counting_s=float(m.group(2)), counting_mb_s_per_core=float(m.group(3)), trainer_s=float(m.group(5)))
        run.pop("processes_at_preparation_peak", None)
        result["sizes"][str(mb)] = run
        print(f"[{mb} MB] vocab alone: {json.dumps(run)}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"vocab_{started.strftime('%Y%m%d_%H%M')}_{socket.gethostname()}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    m = result["machine"]
    rows = ["| text | vocab (wall) | counting (wall) | counting MB/s per core | trainer (wall) | CPU s | peak RSS |",
            "|---|---|---|---|---|---|---|"]
    for mb, r in result["sizes"].items():
        rows.append(f"| {r['text_mb']:.0f} MB | {r['vocab_s']:.0f} s | {r['counting_s']:.0f} s | "
                    f"{r['counting_mb_s_per_core']:.1f} | {r['trainer_s']:.0f} s | {r['cpu_s']:.0f} | "
                    f"{r['peak_rss_mb']:,} MB |")
    write_table(result, VBEGIN, VEND, "\n".join([
        f"Measured {result['date']} on {m['host']} ({m['cpu']}, {m['cores']} cores), data.num_proc="
        f"{result['num_proc']}; command: `{result['command']}`; raw numbers: `{out.relative_to(ROOT)}`.", "", *rows]))


# -- loader ---------------------------------------------------------------------------------------------------
LOADER = r"""
import json, sys, time, itertools
sys.path.insert(0, sys.argv[1])
import torch
from torch.utils.data import DataLoader
from bert_pl.io import tokenization
from bert_pl.pretraining.instances import StreamingInstances, build_pretraining_dataset
from bert_pl.pretraining.masking import MaskingCollator
from bert_pl.training.sampling import IndexedDataset, ResumableSampler
corpus, cache, workers, mode, packing, wwm, seconds = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], \
    sys.argv[6] == "1", sys.argv[7] == "1", float(sys.argv[8])
source = {"format": "plain", "paths": [corpus], "doc_split": "block", "sentence_splitter": "rule"}
tok = tokenization.load(cache + "/tokenizer")
coll = MaskingCollator(tok.get_vocab(), max_seq_length=128, packing=packing, whole_word_masking=wwm, seed=1)
bs = 256
if mode == "cached":
    data = build_pretraining_dataset(source, tok, cache, max_seq_length=128, dupe_factor=1, num_proc=2)["train"]
    sampler = ResumableSampler(len(data), shuffle=True, seed=1)
    loader = DataLoader(IndexedDataset(data), batch_size=bs, sampler=sampler, collate_fn=coll, num_workers=workers,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
else:
    data = StreamingInstances(source, tok.to_str(), "train", 128, 0.1, 1, True, 1, 2000)
    loader = DataLoader(data, batch_size=bs, collate_fn=coll, num_workers=workers,
                        prefetch_factor=4 if workers else None)
def batches_forever():  # epoch after epoch (a small cache would end before the time is up)
    epoch = 0
    while True:
        if mode == "cached":
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


it = batches_forever()
first = next(it)  # start-up (workers, first shard) not counted
positions = real = batches = 0
start = time.monotonic()
for batch in it:
    positions += batch["input_ids"].numel()
    real += int((batch["input_ids"] != tok.token_to_id("[PAD]")).sum())
    batches += 1
    if time.monotonic() - start >= seconds:
        break
took = time.monotonic() - start
print("LOADER " + json.dumps({"positions_per_s": round(positions / took), "tokens_per_s": round(real / took),
                              "batches": batches, "seconds": round(took, 1)}))
"""


def cmd_loader(args):
    corpus = generate(corpus_path(args.workdir, args.mb), args.mb)
    cache = args.workdir / f"loader_cache_{args.mb}mb"
    if not (cache / "tokenizer" / "tokenizer.json").exists():
        sys.path.insert(0, str(ROOT))
        from bert_pl.io import tokenization
        from bert_pl.pretraining.prepare import train_vocab

        source = {"format": "plain", "paths": [str(corpus)], "doc_split": "block", "sentence_splitter": "rule"}
        tokenization.save(train_vocab(source, dict(vocab_size=8000, lowercase=True, min_frequency=2,
                                                   limit_alphabet=1000, handle_chinese_chars=True,
                                                   strip_accents=None), 2), cache / "tokenizer")
    started = datetime.datetime.now(datetime.timezone.utc)
    result = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "batch_size": 256,
              "max_seq_length": 128, "text_mb": args.mb,
              "command": " ".join(["python", "benchmarks/corpus_scale.py", *sys.argv[1:]]), "runs": []}
    for mode in ("cached", "streaming"):
        # masking and packing cost the same on both; streaming adds reading, tokenising and pairing
        for packing, wwm in ((0, 0), (0, 1), (1, 0)) if mode == "cached" else ((0, 0),):
            for workers in args.workers:
                proc = subprocess.run([sys.executable, "-c", LOADER, str(ROOT), str(corpus), str(cache), str(workers),
                                       mode, str(packing), str(wwm), str(args.seconds)], cwd=ROOT,
                                      capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("LOADER ")), None)
                if line is None:
                    sys.exit(proc.stderr[-3000:])
                run = {"mode": mode, "packing": bool(packing), "whole_word_masking": bool(wwm), "workers": workers,
                       **json.loads(line[7:])}
                result["runs"].append(run)
                print(json.dumps(run), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"loader_{started.strftime('%Y%m%d_%H%M')}_{socket.gethostname()}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    write_table(result, LBEGIN, LEND, loader_table(result, out))


def loader_table(r: dict, path: Path) -> str:
    m = r["machine"]
    rows = ["| data | masking | packing | loader workers | tokens/s (non-padding) | positions/s (rows x width) |",
            "|---|---|---|---|---|---|"]
    for x in r["runs"]:
        rows.append(f"| {x['mode']} | {'whole-word' if x['whole_word_masking'] else 'token'} | "
                    f"{'on' if x['packing'] else 'off'} | {x['workers'] or '0 (main process)'} | "
                    f"{x['tokens_per_s']:,} | {x['positions_per_s']:,} |")
    return "\n".join([f"Measured {r['date']} on {m['host']} ({m['cpu']}, {m['cores']} cores); batch "
                      f"{r['batch_size']}, max_seq_length {r['max_seq_length']}, {r['text_mb']} MB of generated "
                      f"text; command: `{r['command']}`; raw numbers: `{path.relative_to(ROOT)}`.", "", *rows])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["generate", "prepare", "vocab", "loader"])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="MB of text")
    p.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "bert_pl_corpus_scale")
    p.add_argument("--num-proc", type=int, default=os.cpu_count())
    p.add_argument("--keep", action="store_true", help="keep the caches")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mb", type=int, default=20, help="loader: MB of text behind the cache")
    p.add_argument("--seconds", type=float, default=8.0, help="loader: seconds measured per setting")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.command == "generate":
        for mb in args.sizes:
            start = time.monotonic()
            path = generate(corpus_path(args.workdir, mb), mb)
            print(f"{path}: {path.stat().st_size / 2 ** 20:.0f} MB in {time.monotonic() - start:.0f} s")
    elif args.command == "prepare":
        cmd_prepare(args)
    elif args.command == "vocab":
        cmd_vocab(args)
    else:
        cmd_loader(args)


if __name__ == "__main__":
    main()
