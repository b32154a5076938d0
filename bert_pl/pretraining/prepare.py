"""Corpus preparation that streams: memory bounded by a chunk of text, not by the corpus, and every core used.

A corpus is cut into chunks of about CHUNK_BYTES: a file is cut only after a blank line (a document boundary, so
each chunk reads the same documents as reading the file from the start would), and with `doc_split=file` only
between files. Sources that are not files (`hub`, `embedded`) are cut into batches of whole documents as they
stream. `data.num_proc` worker processes (started fresh: no copy of the training process, its threads or its
memory) then take the chunks in order, at most two each in flight:

- the vocab: each worker counts the chunk's whitespace pieces after BERT's normaliser; the counts are merged
  and split into words once per distinct piece (`count_words`), then `tokenization.train_from_counts` builds the vocab;
- the instances: each worker reads, sentence-splits and tokenises its chunk, holds out validation documents,
  pairs them `docs_per_shard` documents at a time (Google's algorithm; random-next segments from the same shard)
  and writes its own Arrow files straight into the cache folder; nothing is concatenated or copied afterwards.

Progress lines (MB done, MB/s, time left) every PROGRESS_EVERY seconds; a summary line per stage with the
MB/s per core of each step (the CPU seconds its workers spent in it).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

from bert_pl.pretraining import corpus
from bert_pl.pretraining.corpus import CorpusError, Document

log = logging.getLogger(__name__)

CHUNK_BYTES = 8 * 2 ** 20  # a chunk's text: what one worker holds (its token ids and instances ~25x this)
WRITE_ROWS = 10_000  # instances per Arrow record batch


# -- chunks ---------------------------------------------------------------------------------------------------
def _is_blank(raw: bytes) -> bool:
    return not raw.decode("utf-8", errors="replace").strip()


def _file_chunks(path: Path, chunk_bytes: int, whole_files: bool) -> List[tuple]:
    size = path.stat().st_size
    if whole_files or size <= chunk_bytes:
        return [("file", str(path), 0, size)]
    out, pos = [], 0
    with open(path, "rb") as f:
        while pos < size:
            target = pos + chunk_bytes
            if target >= size:
                end = size
            else:
                f.seek(target)
                f.readline()  # the rest of the line the target falls in
                while True:  # up to and including the next blank line: a document ends there
                    line = f.readline()
                    if not line or _is_blank(line):
                        break
                end = f.tell()
            out.append(("file", str(path), pos, end))
            pos = end
    return out


def plan(source: dict, chunk_bytes: int = CHUNK_BYTES) -> Optional[List[tuple]]:
    """The chunks of a file corpus (google, plain) as (kind, path, start, end), in reading order; None for a
    source that is not files (its documents are batched as they stream)."""
    if source.get("format") not in ("google", "plain"):
        return None
    whole = source.get("format") == "plain" and source.get("doc_split", "file") == "file"
    chunks: List[tuple] = []
    group: List[tuple] = []
    for path in corpus._expand(source["paths"]):
        for c in _file_chunks(path, chunk_bytes, whole):
            if whole:  # small files together, so a folder of many small documents is not a task per file
                group.append(c)
                if sum(g[3] - g[2] for g in group) >= chunk_bytes:
                    chunks.append(("files", tuple(group)))
                    group = []
            else:
                chunks.append(c)
    if group:
        chunks.append(("files", tuple(group)))
    return chunks


def chunk_bytes_of(task: tuple) -> int:
    if task[0] == "file":
        return task[3] - task[2]
    if task[0] == "files":
        return sum(g[3] - g[2] for g in task[1])
    return sum(len(s) for doc in task[1] for s in doc)  # "docs": characters


def _doc_batches(source: dict, chunk_bytes: int) -> Iterator[tuple]:
    batch: List[Document] = []
    size = 0
    for doc in corpus.documents(source):
        batch.append(doc)
        size += sum(map(len, doc))
        if size >= chunk_bytes:
            yield ("docs", batch)
            batch, size = [], 0
    if batch:
        yield ("docs", batch)


def tasks(source: dict, chunk_bytes: int = CHUNK_BYTES):
    """(the chunks, their total bytes or None when the source streams)."""
    chunks = plan(source, chunk_bytes)
    if chunks is None:
        return _doc_batches(source, chunk_bytes), None
    return chunks, sum(chunk_bytes_of(c) for c in chunks)


def _chunk_lines(path: str, start: int, end: int, encoding_errors: str) -> Iterator[str]:
    """The lines of bytes [start, end) of a file, decoded; invalid UTF-8 stops with file:line (as corpus._lines)."""
    with open(path, "rb") as f:
        f.seek(start)
        pos, lineno = start, 0
        while pos < end:
            raw = f.readline()
            if not raw:
                return
            pos += len(raw)
            lineno += 1
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if encoding_errors == "strict":
                    with open(path, "rb") as g:
                        before = g.read(start).count(b"\n")
                    raise CorpusError(
                        f"{path}:{before + lineno}: invalid UTF-8 at byte {e.start} of the line; re-encode the file "
                        f"as UTF-8 or set data.source.encoding_errors=replace to replace bad bytes") from None
                yield raw.decode("utf-8", errors=encoding_errors)


def _file_parts(task: tuple) -> Sequence[tuple]:
    return task[1] if task[0] == "files" else (task,)


def chunk_documents(source: dict, task: tuple) -> List[Document]:
    """The documents of one chunk, exactly as `corpus.documents(source)` reads them there."""
    if task[0] == "docs":
        return task[1]
    kind, enc = source.get("format"), source.get("encoding_errors", "strict")
    docs: List[Document] = []
    if kind == "plain":
        split_text = corpus.get_splitter(source.get("sentence_splitter") or "rule")
        per_file = source.get("doc_split", "file") == "file"
    for _, path, start, end in _file_parts(task):
        doc: Document = []
        for line in _chunk_lines(path, start, end, enc):
            if kind == "google":
                line = line.strip()
                if line:
                    doc.append(line)
                elif doc:
                    docs.append(doc)
                    doc = []
            elif line.strip():
                doc.extend(split_text(line))
            elif not per_file and doc:
                docs.append(doc)
                doc = []
        if doc:
            docs.append(doc)
    return docs


def _vocab_texts(source: dict, task: tuple) -> Iterator[str]:
    """Texts with the same words as the chunk's sentences, without splitting sentences where that cannot change
    the words: Google's lines are the sentences; the `rule` splitter only cuts at whitespace or after
    punctuation (both word boundaries) of the line with its whitespace runs made one space (Python's whitespace,
    which includes separators such as \x1c that BERT's normaliser deletes instead). Other splitters run."""
    splitter = source.get("sentence_splitter") or "rule"
    if task[0] == "docs" or (source.get("format") == "plain" and splitter != "rule"):
        for doc in chunk_documents(source, task):
            yield from doc
        return
    enc = source.get("encoding_errors", "strict")
    collapse = source.get("format") == "plain" and splitter == "rule"
    for _, path, start, end in _file_parts(task):
        for line in _chunk_lines(path, start, end, enc):
            yield " ".join(line.split()) if collapse else line


# -- counting words -------------------------------------------------------------------------------------------
# BERT's normaliser on ASCII text: control characters (all but tab, newline, carriage return) deleted; the rest
# of what it does (accents, CJK spacing) touches no ASCII character, and lowercasing is str.lower's
_ASCII_CONTROLS = dict.fromkeys([c for c in range(32) if chr(c) not in "\t\n\r"] + [127])


def count_pieces(texts: Iterable[str], normalize: Callable[[str], str], lowercase: bool,
                 batch_chars: int = 2 ** 20) -> Counter:
    """Whitespace-separated pieces of the normalised texts, counted. The normaliser (BERT's: clean text, CJK
    spacing, lowercase, accents) works character by character, so normalising a batch of texts joined by spaces
    is normalising each; after it every whitespace is a space (control characters are dropped). ASCII texts
    take Python's string methods, which do the same there (the tests compare with `tokenization.train`)."""
    pieces: Counter = Counter()
    batches: dict = {True: [], False: []}
    size = 0

    def flush():
        for ascii_only, batch in batches.items():
            if not batch:
                continue
            text = " ".join(batch)
            if ascii_only:
                text = text.translate(_ASCII_CONTROLS)
                pieces.update((text.lower() if lowercase else text).split())
            else:
                pieces.update(normalize(text).split())
            batch.clear()

    for text in texts:
        batches[text.isascii()].append(text)
        size += len(text)
        if size >= batch_chars:
            flush()
            size = 0
    flush()
    return pieces


def words_of(pieces: Counter, pre_tokenize: Callable) -> Counter:
    """BERT's pre-tokeniser (whitespace and punctuation) applied once per distinct piece: an ASCII letters-and-
    digits piece is one word; any other goes through the pre-tokeniser itself."""
    counts: Counter = Counter()
    for piece, n in pieces.items():
        if piece.isascii() and piece.isalnum():
            counts[piece] += n
        else:
            for word, _ in pre_tokenize(piece):
                counts[word] += n
    return counts


def _pipeline(settings: dict):
    from bert_pl.io import tokenization

    return tokenization._assemble(tokenization.WordPiece(unk_token="[UNK]"), settings["lowercase"],
                                  handle_chinese_chars=settings["handle_chinese_chars"],
                                  strip_accents=settings["strip_accents"])


def count_words(texts: Iterable[str], settings: dict) -> Counter:
    """The word counts `tokenization.train` makes of `texts` (its normaliser and pre-tokeniser), faster."""
    pipe = _pipeline(settings)
    return words_of(count_pieces(texts, pipe.normalizer.normalize_str, settings["lowercase"]),
                    pipe.pre_tokenizer.pre_tokenize_str)


def _count_task(source: dict, task: tuple, settings: dict) -> dict:
    cpu = time.process_time()
    normalize = _pipeline(settings).normalizer.normalize_str
    pieces = count_pieces(_vocab_texts(source, task), normalize, settings["lowercase"])
    return {"pieces": pieces, "cpu": time.process_time() - cpu}


def train_vocab(source: dict, settings: dict, num_proc: int = 1):
    """A WordPiece vocab for the corpus: words counted by `num_proc` processes, chunk by chunk."""
    from bert_pl.io import tokenization

    start = time.monotonic()
    work, total = tasks(source)
    pieces: Counter = Counter()
    stats = {"bytes": 0, "cpu": 0.0}
    progress = Progress("counting words for the vocab", total)

    def merge(task, result):
        pieces.update(result["pieces"])
        stats["bytes"] += chunk_bytes_of(task)
        stats["cpu"] += result["cpu"]
        progress(stats["bytes"])

    procs = run_tasks(_count_task, work, num_proc, merge, source=source, settings=settings)
    counting = time.monotonic() - start
    counts = words_of(pieces, _pipeline(settings).pre_tokenizer.pre_tokenize_str)
    pieces.clear()
    train_start = time.monotonic()
    tok = tokenization.train_from_counts(counts, **settings)
    mb = stats["bytes"] / 2 ** 20
    log.info("vocab: %d words trained on %.1f MB in %.1f s: counting %.1f s (%.2f MB/s per core, %d processes), "
             "trainer %.1f s", tok.get_vocab_size(), mb, time.monotonic() - start, counting,
             mb / max(stats["cpu"], 1e-9), procs, time.monotonic() - train_start)
    return tok


# -- running tasks on every core ------------------------------------------------------------------------------
_WORKER_STATE: dict = {}


def _init_worker():
    # one core per worker: the tokenizers library's own threads would only compete with the other workers
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"


def _call(fn, task, kwargs):
    return fn(task=task, **kwargs)


@contextlib.contextmanager
def _without_main():
    """Workers need only this module: hide the main script from `spawn`, which would run it again in each worker
    (a script without an `if __name__ == "__main__"` guard, `python -c`, a notebook: recursion or an error)."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    for k in saved:
        setattr(main, k, None) if k == "__spec__" else delattr(main, k)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def run_tasks(fn, work: Iterable[tuple], num_proc: int, on_result: Callable, **kwargs) -> int:
    """fn(task=..., **kwargs) for every task, on `num_proc` fresh processes (here, for 1), results handed to
    `on_result(task, result)` in task order; at most two tasks per process in flight, so a streamed source is
    not read ahead of the workers. Returns the number of processes used."""
    work = iter(work)
    first = next(work, None)
    if first is None:
        return 0
    second = next(work, None)
    if num_proc <= 1 or second is None:  # one chunk (a small corpus): starting processes would cost more
        for task in (first, second):
            if task is not None:
                on_result(task, fn(task=task, **kwargs))
        for task in work:
            on_result(task, fn(task=task, **kwargs))
        return 1
    work = itertools.chain([second], work)
    from collections import deque

    ctx = multiprocessing.get_context("spawn")
    with _without_main():
        pool = ctx.Pool(num_proc, initializer=_init_worker)
    with pool:
        pending: deque = deque()
        task = first
        while task is not None or pending:
            while task is not None and len(pending) < 2 * num_proc:
                pending.append((task, pool.apply_async(_call, (fn, task, kwargs))))
                task = next(work, None)
            done, result = pending.popleft()
            on_result(done, result.get())
    return num_proc


class Progress:
    """A line every PROGRESS_EVERY seconds: how far (MB, or documents for a streamed source), how fast, and the
    time left when the total is known."""

    def __init__(self, what: str, total_bytes: Optional[int]):
        self.what, self.total = what, total_bytes
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, docs: Optional[int] = None) -> None:
        now = time.monotonic()
        if now - self.last < corpus.PROGRESS_EVERY:
            return
        self.last = now
        took = now - self.start
        mb = done / 2 ** 20
        rate = mb / took if took > 0 else 0.0
        if self.total:
            left = (self.total - done) / 2 ** 20 / rate if rate > 0 else float("inf")
            log.info("%s: %.1f of %.1f MB (%.0f%%), %.2f MB/s, %s left", self.what, mb, self.total / 2 ** 20,
                     100 * done / self.total, rate, _duration(left))
        else:
            log.info("%s: %.1f MB%s so far (%.2f MB/s), %s", self.what, mb,
                     f" in {docs:,} documents" if docs is not None else "", rate, _duration(took))


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- instances ------------------------------------------------------------------------------------------------
def _tokenizer(tokenizer_json: str):
    tok = _WORKER_STATE.get(tokenizer_json)
    if tok is None:
        from bert_pl.io.tokenization import from_json_string

        _WORKER_STATE.clear()
        tok = _WORKER_STATE[tokenizer_json] = from_json_string(tokenizer_json)
    return tok


def held_out(n_docs: int, val_fraction: float, seed: int, index: int) -> set:
    """Which of a chunk's `n_docs` documents are validation: every k-th (k = 1/val_fraction) from a seeded
    offset below min(k, n_docs), so any chunk of two or more documents holds out at least one."""
    if not val_fraction or n_docs < 2:
        return set()
    k = max(1, round(1 / val_fraction))
    offset = random.Random(f"{seed}-{index}-validation").randrange(min(k, n_docs))
    return set(range(offset, n_docs, k))


def build_task(task: tuple, source: dict, tokenizer_json: str, out_dir: str, schema,
               max_seq_length: int, short_seq_prob: float, dupe_factor: int, nsp: bool, val_fraction: float,
               seed: int, docs_per_shard: int) -> dict:
    """One chunk: documents -> token ids -> validation held out -> pairs, written as the chunk's Arrow files."""
    from bert_pl.pretraining.pairing import _InstanceBuilder, _SentenceTokenizer
    from bert_pl.pretraining.sentences import UNSPLIT_CHARS

    index, task = task  # (its number, the chunk)
    tok = _tokenizer(tokenizer_json)
    cpu = {"read": time.process_time()}
    docs = chunk_documents(source, task)
    single = sum(1 for d in docs if len(d) == 1 and len(d[0]) >= UNSPLIT_CHARS)
    n_read = len(docs)
    cpu["tokenise"] = time.process_time()
    vocab = tok.get_vocab()
    to_ids = _SentenceTokenizer(tok, max_seq_length - 3)
    ids: list = []
    tokens = 0
    for i in range(0, len(docs), 256):
        for doc in to_ids({"sentences": docs[i:i + 256]})["sentence_ids"]:
            if doc:  # a document whose sentences are all empty after tokenising gives nothing
                ids.append(doc)
                tokens += sum(map(len, doc))
    del docs
    cpu["pair"] = time.process_time()
    val_set = held_out(len(ids), val_fraction, seed, index)
    val = [d for i, d in enumerate(ids) if i in val_set]
    train = [d for i, d in enumerate(ids) if i not in val_set] if val_set else ids
    del ids
    made = {"train": {"input_ids": [], "next_sentence_label": []},
            "validation": {"input_ids": [], "next_sentence_label": []}}
    for s in range(0, len(train), docs_per_shard):
        builder = _InstanceBuilder(max_seq_length, short_seq_prob, dupe_factor, nsp, seed, vocab["[CLS]"],
                                   vocab["[SEP]"])
        out = builder.pair(train[s:s + docs_per_shard], f"{index}-{s}")
        for k in out:
            made["train"][k].extend(out[k])
    if val:  # random-next segments for validation come from training documents too (see _InstanceBuilder)
        builder = _InstanceBuilder(max_seq_length, short_seq_prob, dupe_factor, nsp, seed, vocab["[CLS]"],
                                   vocab["[SEP]"], train[:docs_per_shard] if nsp else None)
        made["validation"] = builder.pair(val, f"{index}-validation")
    del train, val
    cpu["write"] = time.process_time()
    result = {"index": index, "docs": n_read, "single": single, "tokens": tokens, "bytes": chunk_bytes_of(task),
              "files": {}}
    for split, cols in made.items():
        n = len(cols["input_ids"])
        result[f"n_{split}"] = n
        result[f"random_next_{split}"] = sum(cols["next_sentence_label"])
        if n:
            name = f"part-{index:05d}.arrow"
            _write_arrow(Path(out_dir) / split / name, cols, schema)
            result["files"][split] = name
    cpu["end"] = time.process_time()
    steps = list(cpu)
    result["cpu"] = {a: cpu[b] - cpu[a] for a, b in zip(steps, steps[1:])}
    return result


def _write_arrow(path: Path, cols: dict, schema) -> None:
    import pyarrow as pa

    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(cols["input_ids"])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for s in range(0, n, WRITE_ROWS):
            writer.write_batch(pa.record_batch(
                [pa.array(cols["input_ids"][s:s + WRITE_ROWS], type=schema.field("input_ids").type),
                 pa.array(cols["next_sentence_label"][s:s + WRITE_ROWS], type=schema.field("next_sentence_label").type)],
                schema=schema))


def build_instances(source: dict, tokenizer_json: str, out_dir: Path, num_proc: int, fingerprint: str,
                    **params) -> dict:
    """Every chunk's instances as Arrow files under out_dir/<split>/, and the `save_to_disk` layout around them
    (`datasets.load_from_disk(out_dir)` opens it). Returns the totals."""
    import datasets

    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "next_sentence_label": datasets.Value("int8")})
    schema = features.arrow_schema
    work, total = tasks(source)
    numbered = ((i, t) for i, t in enumerate(work))
    progress = Progress("building pretraining instances", total)
    totals = Counter()
    cpu = Counter()
    files = {"train": [], "validation": []}

    def merge(task, result):
        for k, v in result.items():
            if isinstance(v, (int, float)) and k != "index":
                totals[k] += v
        cpu.update(result["cpu"])
        for split, name in result["files"].items():
            files[split].append(name)
        progress(totals["bytes"], totals["docs"])

    start = time.monotonic()
    procs = run_tasks(build_task, numbered, num_proc, merge, source=source,
                      tokenizer_json=tokenizer_json, out_dir=str(out_dir), schema=schema, **params)
    splits = [s for s in ("train", "validation") if files[s]]
    for split in splits:
        _write_split_metadata(out_dir / split, files[split], features, f"{fingerprint}-{split}")
    (out_dir / "dataset_dict.json").write_text(json.dumps({"splits": splits}))
    mb = totals["bytes"] / 2 ** 20
    per_core = {k: mb / v if v > 0 else float("inf") for k, v in cpu.items()}
    totals.update({"seconds": time.monotonic() - start, "processes": procs})
    log.info("pretraining instances: %s from %s documents (%.1f MB, %s tokens) in %.0f s; per core: reading "
             "%.2f MB/s, tokenising %.2f MB/s, pairing %.2f MB/s, writing %.2f MB/s (%d processes)",
             ", ".join(f"{totals[f'n_{s}']:,} {s}" for s in ("train", "validation") if totals[f"n_{s}"]),
             f"{totals['docs']:,}", mb, f"{totals['tokens']:,}", totals["seconds"], per_core.get("read", 0),
             per_core.get("tokenise", 0), per_core.get("pair", 0), per_core.get("write", 0), procs)
    totals.update({f"cpu_{k}": v for k, v in cpu.items()})
    return dict(totals)


def _write_split_metadata(folder: Path, names: List[str], features, fingerprint: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": fingerprint,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": None}
    (folder / "state.json").write_text(json.dumps(state, indent=2))
    info = {"citation": "", "description": "", "features": features.to_dict(), "homepage": "", "license": ""}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
