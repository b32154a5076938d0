"""Where pretraining text comes from. Every reader yields documents as lists of sentences, streaming.

- `google`: Google's format: one sentence per line, a blank line between documents.
- `plain`: free text; a file, or each blank-line-separated block (`doc_split=block`), is a document, and
  sentences are split by `data.sentence_splitter` (`sentences.py`).
- `hub`: a `datasets` dataset (online, or a local folder/`save_to_disk` copy) with a text column.
- `embedded`: the docstrings of Python's own standard library, parsed (not imported): always there, offline.
"""
from __future__ import annotations

import ast
import hashlib
import itertools
import logging
import os
import re
import sys
import sysconfig
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

from bert_pl.errors import UserError
from bert_pl.pretraining.sentences import get_splitter, version_of, warn_unsplit

Document = List[str]
log = logging.getLogger(__name__)
PROGRESS_EVERY = 30.0  # seconds between progress lines of a long step; a short one (a test) logs none



class CorpusError(UserError, ValueError):
    """Bad pretraining input: the message names the file (and line) and what to do."""


class Progress:
    """Logs how far a long step got every PROGRESS_EVERY seconds: a line, not a bar, so a terminal, a pipe and a
    log file all get a few lines and no flood. A call costs a clock read."""

    def __init__(self, what: str, total: Optional[int] = None):
        self.what, self.total = what, total
        self.start = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            of = f" of {self.total:,}" if self.total else ""
            log.info("%s: document %s%s, %.0f s", self.what, f"{done:,}", of, now - self.start)


def with_progress(docs: Iterable[Document], what: str) -> Iterator[Document]:
    progress = Progress(what)
    for i, doc in enumerate(docs, 1):
        progress(i)
        yield doc


def split_sentences(text: str, splitter: str = "rule") -> List[str]:
    return get_splitter(splitter)(text)


def _expand(paths: Sequence[str]) -> List[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: List[Path] = []
    for p in paths:
        path = Path(os.path.expanduser(str(p)))
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not found:
                raise CorpusError(f"corpus folder {path} holds no files; point data.source.paths at text files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            from bert_pl.io.missing import why_missing

            raise CorpusError(f"corpus path {path} {why_missing(path)}; set data.source.paths to existing files or "
                              f"folders")
    return files


def _lines(path: Path, encoding_errors: str) -> Iterator[str]:
    """Lines of a UTF-8 file; invalid bytes stop with file:line unless encoding_errors='replace'."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if encoding_errors == "strict":
                    raise CorpusError(
                        f"{path}:{lineno}: invalid UTF-8 at byte {e.start} of the line; re-encode the file as UTF-8 "
                        f"or set data.source.encoding_errors=replace to replace bad bytes"
                    ) from None
                yield raw.decode("utf-8", errors=encoding_errors)


def google_documents(paths, encoding_errors: str = "strict") -> Iterator[Document]:
    for path in _expand(paths):
        doc: Document = []
        for line in _lines(path, encoding_errors):
            line = line.strip()
            if line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
        if doc:
            yield doc


def plain_documents(paths, doc_split: str = "file", encoding_errors: str = "strict",
                    splitter: str = "rule") -> Iterator[Document]:
    if doc_split not in ("file", "block"):
        raise CorpusError(f"data.doc_split={doc_split!r}: use 'file' or 'block'")
    split_text = get_splitter(splitter)
    for path in _expand(paths):
        block: List[str] = []
        for line in _lines(path, encoding_errors):
            if line.strip():
                block.extend(split_text(line))
            elif doc_split == "block" and block:
                yield block
                block = []
        if block:
            yield block


def hub_documents(name: str, config: Optional[str] = None, split: str = "train", text_column: str = "text",
                  streaming: bool = True, revision: Optional[str] = None, part: int = 0,
                  parts: int = 1, splitter: str = "rule") -> Iterator[Document]:
    """A `datasets` dataset: a hub name (online), or a local folder saved with `save_to_disk` / of data files.
    `part` of `parts`: `datasets`' own split by node (whole files per node where the shards divide evenly)."""
    import datasets

    local = Path(os.path.expanduser(name))
    saved = ("dataset_info.json", "state.json", "dataset_dict.json")
    if local.is_dir() and any((local / f).exists() for f in saved):
        ds = datasets.load_from_disk(str(local))
        ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    else:
        from bert_pl.io.hub import require_online

        if os.path.lexists(local) and not local.exists():  # a link that leads nowhere: not a hub name
            from bert_pl.io.missing import why_missing

            raise CorpusError(f"data.source.name={name} {why_missing(local)}; point it at a dataset folder")
        if not local.exists():
            require_online(f"dataset {name!r}", "data.source.name=/path/to/a/local/copy or data=text "
                           "data.source.paths=[FILES]", repo_id=name, repo_type="dataset")
        ds = datasets.load_dataset(name, config, split=split, streaming=streaming, revision=revision)
    if parts > 1:
        from datasets.distributed import split_dataset_by_node

        ds = split_dataset_by_node(ds, rank=part, world_size=parts)
    columns = getattr(ds, "column_names", None)
    if columns is not None and text_column not in columns:
        raise CorpusError(f"dataset {name!r} has no column {text_column!r} (columns: {columns}); set data.text_column")
    split_text = get_splitter(splitter)
    for row in ds:
        sentences = split_text(row[text_column] or "")
        if sentences:
            yield sentences


def _stdlib_files() -> List[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__", "turtledemo"}
    return sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts))


def embedded_documents(max_chars: int = 3_000_000) -> Iterator[Document]:
    """One document per standard-library module: its module, class and function docstrings, in source order."""
    total = 0
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        doc: Document = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node)
                if text:
                    for para in re.split(r"\n\s*\n", text):
                        if len(para.split()) >= 4 and not para.lstrip().startswith(">>>"):
                            doc.extend(split_sentences(para))
        if len(doc) >= 2:
            yield doc
            total += sum(map(len, doc))
            if total >= max_chars:
                return


def fingerprint(source: dict) -> str:
    """Identifies a corpus for the on-disk cache: file paths, sizes and mtimes, or the dataset's name."""
    h = hashlib.sha256(repr(sorted((k, str(v)) for k, v in source.items())).encode())
    kind = source.get("format")
    if kind in ("google", "plain"):
        for f in _expand(source["paths"]):
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    elif kind == "embedded":
        h.update(f"{sys.version}|{sysconfig.get_paths()['stdlib']}".encode())
    if source.get("sentence_splitter"):  # a library's version or your module's file, not only the name
        h.update(version_of(source["sentence_splitter"]).encode())
    return h.hexdigest()[:16]


def documents(source: dict, part: int = 0, parts: int = 1) -> Iterator[Document]:
    """Dispatch on `source['format']`; the dict is the `data.source` config. `part` of `parts`: every
    `parts`-th document from the `part`-th on (ranks x loader workers read disjoint documents)."""
    kind = source.get("format")
    splitter = source.get("sentence_splitter") or "rule"
    if kind == "hub":
        docs = hub_documents(source["name"], source.get("config"), source.get("split", "train"),
                             source.get("text_column", "text"), source.get("streaming", True), source.get("revision"),
                             part, parts, splitter)
    else:
        docs = _documents(source, splitter)
        docs = docs if parts == 1 else itertools.islice(docs, part, None, parts)
    return warn_unsplit(docs, splitter, source.get("name") or str(source.get("paths", kind))) \
        if kind in ("plain", "hub") else docs


def _documents(source: dict, splitter: str) -> Iterator[Document]:
    kind = source.get("format")
    enc = source.get("encoding_errors", "strict")
    if kind == "google":
        return google_documents(source["paths"], enc)
    if kind == "plain":
        return plain_documents(source["paths"], source.get("doc_split", "file"), enc, splitter)
    if kind == "embedded":
        return embedded_documents(source.get("max_chars", 3_000_000))
    raise CorpusError(f"data.source.format={kind!r}: use one of google, plain, hub, embedded")
