"""Google's `create_pretraining_data` algorithm, on Arrow, cached, and a masking collator applied at batch time.

Pairing (`create_instances_from_document`) follows Google's code step by step: segments are filled up to a target
length (a shorter random target with probability `short_seq_prob`), split at a random point into A and B, B is
replaced by text from another document half of the time (`is_random_next`, unused segments are put back), and the
pair is truncated from a random end. Masking is done later, in `MaskingCollator`, so every epoch sees new masks.
One departure: a sentence longer than a whole instance is first cut into instance-sized pieces (see
`_SentenceTokenizer`), where Google's code keeps one truncated instance of it and drops the rest.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset

from bert_pl.pretraining.corpus import CorpusError
from bert_pl.pretraining.pairing import (  # noqa: F401  (also imported from here)
    _InstanceBuilder, _SentenceTokenizer, build_input, create_instances_from_document, truncate_seq_pair)

log = logging.getLogger(__name__)


class StreamingInstances(IterableDataset):
    """Pretraining instances made on the fly from a streamed corpus (`data.streaming=true`), for corpora that do not
    fit on disk: nothing is cached. Each (rank, loader worker) reads its own documents (`corpus.documents` part),
    builds Google's instances `docs_per_shard` documents at a time (random-next segments from the same shard, as
    the cached path), shuffles them within the shard and yields them; training cycles the stream (epoch 0, 1, ...),
    so every rank always has data and `trainer.max_steps` ends the run. `validation` holds out every
    `holdout_every`-th document and is read once. On resume, `start_at(batches)` skips the samples already trained
    on: they are re-read and re-paired, not masked or trained, so the run continues at the exact next sample."""

    def __init__(self, source: dict, tokenizer_json: str, split: str, max_seq_length: int, short_seq_prob: float,
                 dupe_factor: int, nsp: bool, seed: int, docs_per_shard: int, holdout_every: int = 0,
                 rank: int = 0, world_size: int = 1, batch_size: int = 1):
        self.__dict__.update({k: v for k, v in locals().items() if k != "self"})
        self.skip_batches = 0

    def start_at(self, batches_done: int) -> None:
        self.skip_batches = batches_done

    def _worker(self):
        import torch

        info = torch.utils.data.get_worker_info()
        return (info.id, info.num_workers) if info else (0, 1)

    def _documents(self, part: int, parts: int):
        from bert_pl.pretraining.corpus import documents

        every = self.holdout_every
        for i, doc in enumerate(documents(self.source, part, parts)):
            held_out = bool(every) and i % every == 0
            if held_out == (self.split == "validation"):
                yield doc

    def __iter__(self):
        from bert_pl.io.tokenization import from_json_string

        worker, workers = self._worker()
        # The DataLoader takes batches from its workers in turn, starting with worker 0; after `skip_batches`,
        # worker 0 must make the batch that worker (skip_batches % workers) would have made next, so roles rotate.
        role = (worker + self.skip_batches) % workers
        part, parts = self.rank * workers + role, self.world_size * workers
        skip = len(range(role, self.skip_batches, workers)) * self.batch_size
        tokenizer = from_json_string(self.tokenizer_json)
        vocab = tokenizer.get_vocab()
        builder = _InstanceBuilder(self.max_seq_length, self.short_seq_prob, self.dupe_factor, self.nsp, self.seed,
                                   vocab["[CLS]"], vocab["[SEP]"])
        to_ids = _SentenceTokenizer(tokenizer, self.max_seq_length - 3)
        count, epoch = 0, 0
        while True:
            produced = False
            docs = self._documents(part, parts)
            for shard_index in itertools.count():
                shard = list(itertools.islice(docs, self.docs_per_shard))
                if not shard:
                    break
                ids = to_ids({"sentences": shard})["sentence_ids"]
                made = builder({"sentence_ids": ids}, [shard_index * parts + part])
                order = np.random.default_rng([self.seed, epoch, part, shard_index]).permutation(
                    len(made["input_ids"]))
                for j in order:
                    produced = True
                    count += 1
                    if skip:
                        skip -= 1
                        continue
                    # a unique index per sample seeds its mask, as the cached path's row index does
                    yield {"input_ids": made["input_ids"][j], "next_sentence_label": made["next_sentence_label"][j],
                           "index": (count - 1) * parts + part, "epoch": epoch}
            if self.split == "validation":
                return
            if not produced:
                raise CorpusError(f"the corpus {_describe(self.source)} gave no instances for part {part} of "
                                  f"{parts} (ranks x loader workers): add text or use fewer workers")
            epoch += 1


def build_pretraining_dataset(source: dict, tokenizer, cache_dir, max_seq_length: int = 128,
                              short_seq_prob: float = 0.1, dupe_factor: int = 1, nsp: bool = True,
                              val_fraction: float = 0.0, seed: int = 12345, num_proc: int = 1,
                              docs_per_shard: int = 2000, lock_timeout: float = 6 * 3600):
    """Read, sentence-split, tokenise and pair a corpus into an Arrow `DatasetDict` cached under `cache_dir`,
    streaming chunk by chunk on `num_proc` processes (`prepare.py`): memory does not grow with the corpus.

    The cache key covers the corpus (paths, sizes, mtimes), the tokenizer and every parameter. One process builds
    a cache while the others (ranks, nodes on a shared filesystem) wait for it (`cachelock.py`); it is written to
    a temporary folder and renamed, so an interrupted build never leaves a half cache behind.

    Validation documents (`val_fraction`) are every (1/val_fraction)-th document of each chunk from a seeded
    offset; their random-next segments come from the chunk's training documents."""
    from bert_pl.pretraining import prepare
    from bert_pl.pretraining.cachelock import cache_lock
    from bert_pl.pretraining.corpus import fingerprint

    params = dict(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, dupe_factor=dupe_factor, nsp=nsp,
                  val_fraction=val_fraction, seed=seed, docs_per_shard=docs_per_shard, version=5,
                  chunk_bytes=prepare.CHUNK_BYTES)
    key = hashlib.sha256(
        (fingerprint(source) + json.dumps(params, sort_keys=True) + tokenizer.to_str()).encode()
    ).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    final = cache_dir / f"pretrain-{key}"
    ready = (final / "dataset_dict.json").exists
    if ready():
        return _load_cache(final)
    with cache_lock(cache_dir / f".pretrain-{key}.lock", f"the pretraining cache {final}", timeout=lock_timeout,
                    ready=ready) as holder:
        if holder and not ready():
            _build(source, tokenizer, final, key, num_proc, params)
    return _load_cache(final)


def _build(source: dict, tokenizer, final: Path, key: str, num_proc: int, params: dict) -> None:
    from bert_pl.pretraining import prepare
    from bert_pl.pretraining.sentences import _warn

    work = final.with_name(f".tmp-pretrain-{key}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log.info("building pretraining instances from %s into %s", _describe(source), final)
    build = {k: v for k, v in params.items() if k not in ("version", "chunk_bytes")}
    try:
        totals = prepare.build_instances(source, tokenizer.to_str(), work, num_proc, key, **build)
        if not totals.get("docs"):
            raise CorpusError(f"the corpus {_describe(source)} holds no text; point data.source at non-empty files")
        if totals.get("single") and source.get("format") in ("plain", "hub"):
            _warn(totals["single"], totals["docs"], source.get("sentence_splitter") or "rule",
                  source.get("name") or str(source.get("paths", source.get("format"))), "")
        splits = ["train"] + (["validation"] if params["val_fraction"] > 0 and totals["docs"] >= 2 else [])
        for name in splits:
            n, random_next = totals.get(f"n_{name}", 0), totals.get(f"random_next_{name}", 0)
            if n == 0:
                raise CorpusError(f"the corpus {_describe(source)} gave no {name} instances: documents are too "
                                  f"short or too few; add text or lower data.val_fraction")
            if name == "validation" and params["nsp"] and random_next in (0, n):
                raise CorpusError(f"the validation split of {_describe(source)} has only one NSP class in {n:,} "
                                  f"pairs, so its NSP accuracy would mean nothing; raise data.val_fraction or add "
                                  f"documents")
        (work / "build.json").write_text(json.dumps(totals, indent=1))  # what the build measured (benchmarks)
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load_cache(final: Path):
    """A finished cache; one that was damaged afterwards (a truncated or overwritten Arrow file) is named, with the
    fix, instead of pyarrow's "Expected to be able to read N bytes"."""
    import datasets

    try:
        return datasets.load_from_disk(str(final))
    except Exception as e:  # noqa: BLE001 (pyarrow reports damage as OSError, ArrowInvalid, ValueError, ...)
        import pyarrow as pa

        damaged = []
        for path in sorted(final.rglob("*.arrow")):
            try:
                pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
            except Exception:  # noqa: BLE001
                damaged.append(path)
        what = damaged[0] if damaged else final
        raise CorpusError(f"the pretraining cache file {what} is damaged ({str(e).splitlines()[0][:160]}); delete "
                          f"the cache folder {final} and run again to rebuild it") from None


def _pool(num_proc: int):
    """`datasets.map`'s num_proc: None for one process, which then runs here (num_proc=1 forks a pool of one)."""
    return num_proc if num_proc > 1 else None


def _describe(source: dict) -> str:
    return str(source.get("paths") or source.get("name") or source.get("format"))
