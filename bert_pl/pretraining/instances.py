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
import random
import shutil
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from torch.utils.data import IterableDataset

from bert_pl.pretraining.corpus import CorpusError, Progress, with_progress

log = logging.getLogger(__name__)


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> None:
    """Truncate the longer segment one token at a time, from the front or the back at random (Google's rule and
    random draws), counting the cuts and slicing once: linear in the tokens removed, where deleting from the
    front of a list one token at a time was quadratic (a 400k-token line took 13 s)."""
    lengths, cut = [len(tokens_a), len(tokens_b)], [[0, 0], [0, 0]]  # per segment: (front, back) cuts
    while lengths[0] + lengths[1] > max_num_tokens:
        longer = 0 if lengths[0] > lengths[1] else 1
        cut[longer][0 if rng.random() < 0.5 else 1] += 1
        lengths[longer] -= 1
    for tokens, (front, back) in zip((tokens_a, tokens_b), cut):
        if front or back:
            tokens[:] = tokens[front:len(tokens) - back]


def create_instances_from_document(all_documents: Sequence[Sequence[Sequence[int]]], document_index: int,
                                   max_seq_length: int, short_seq_prob: float, rng: random.Random,
                                   nsp: bool = True):
    """Returns (tokens_a, tokens_b, is_random_next) triples for one document (token ids, no specials).

    With nsp=False, segments are contiguous text only (B follows A, or B is empty when a chunk has one segment)."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk: List[Sequence[int]] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = [t for seg in current_chunk[:a_end] for t in seg]
                tokens_b: List[int] = []
                is_random_next = False
                if nsp and (len(current_chunk) == 1 or rng.random() < 0.5) and len(all_documents) > 1:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The unused segments go back, so they are not wasted.
                    i -= len(current_chunk) - a_end
                else:
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if tokens_a and (tokens_b or not nsp):
                    instances.append((tokens_a, tokens_b, is_random_next))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def build_input(tokens_a, tokens_b, cls_id: int, sep_id: int) -> List[int]:
    """[CLS] A [SEP] B [SEP]; token types are derived from the first [SEP] at batch time."""
    ids = [cls_id, *tokens_a, sep_id]
    if tokens_b:
        ids += [*tokens_b, sep_id]
    return ids


class _InstanceBuilder:
    """The `datasets.map` function: a batch of tokenised documents (one shard) -> pretraining instances.

    Random-next segments are drawn from the same shard, so memory is bounded by the shard, as Google's per-file runs,
    and also from `random_pool` when given: the validation split, often a handful of documents, draws them from
    training documents too, so its NSP pairs are half random-next as in training (with one held-out document they
    would all be IsNext).
    """

    def __init__(self, max_seq_length, short_seq_prob, dupe_factor, nsp, seed, cls_id, sep_id, random_pool=None,
                 progress=None):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def __call__(self, batch, indices):
        docs = [d for d in batch["sentence_ids"] if d]
        pool = docs + list(self.random_pool or [])
        out: Dict[str, list] = {"input_ids": [], "next_sentence_label": []}
        rng = random.Random(f"{self.seed}-{indices[0]}")
        for _ in range(self.dupe_factor):
            for di in range(len(docs)):
                for a, b, is_random in create_instances_from_document(
                        pool, di, self.max_seq_length, self.short_seq_prob, rng, self.nsp):
                    out["input_ids"].append(build_input(a, b, self.cls_id, self.sep_id))
                    out["next_sentence_label"].append(int(is_random))
        if self.progress:
            self.progress(indices[-1] + 1)
        return out


class _SentenceTokenizer:
    """Sentences -> token ids; a sentence longer than `max_tokens` (a line with no sentence breaks) becomes
    consecutive `max_tokens` pieces of its document. Whole, it would give one truncated instance and lose the rest,
    and be copied and truncated in full each time it is drawn as a random next segment: quadratic (a 5 MB line
    beside a 5 MB document had not finished pairing after 14 minutes)."""

    def __init__(self, tokenizer, max_tokens: int, progress=None):
        self.tokenizer, self.max_tokens, self.progress = tokenizer, max_tokens, progress

    def __call__(self, batch, indices=None):
        flat = [s for doc in batch["sentences"] for s in doc]
        enc = self.tokenizer.encode_batch(flat, add_special_tokens=False) if flat else []
        out, k = [], 0
        for doc in batch["sentences"]:
            ids = [e.ids for e in enc[k:k + len(doc)]]
            k += len(doc)
            m = self.max_tokens
            out.append([s[i:i + m] for s in ids for i in range(0, len(s), m)])  # empty sentences drop out
        if self.progress:
            self.progress(indices[-1] + 1)
        return {"sentence_ids": out}


def _doc_generator(source: dict):
    from bert_pl.pretraining.corpus import documents

    for doc in with_progress(documents(source), "reading the corpus"):
        yield {"sentences": doc}


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
                              docs_per_shard: int = 2000):
    """Read, sentence-split, tokenise and pair a corpus into an Arrow `DatasetDict` cached under `cache_dir`.

    The cache key covers the corpus (paths, sizes, mtimes), the tokenizer and every parameter; a cache is
    written to a temporary folder and renamed, so an interrupted build never leaves a half cache behind."""
    import datasets
    from bert_pl.pretraining.corpus import fingerprint

    datasets.disable_progress_bars()
    params = dict(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, dupe_factor=dupe_factor, nsp=nsp,
                  val_fraction=val_fraction, seed=seed, docs_per_shard=docs_per_shard, version=4)
    key = hashlib.sha256(
        (fingerprint(source) + json.dumps(params, sort_keys=True) + tokenizer.to_str()).encode()
    ).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    final = cache_dir / f"pretrain-{key}"
    if (final / "dataset_dict.json").exists():
        return _load_cache(final)

    work = cache_dir / f".tmp-pretrain-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log.info("building pretraining instances from %s into %s", _describe(source), final)
    start = time.monotonic()
    try:
        from bert_pl.pretraining.corpus import documents

        if next(iter(documents(source)), None) is None:
            raise CorpusError(f"the corpus {_describe(source)} holds no text; point data.source at non-empty files")
        docs = datasets.Dataset.from_generator(
            _doc_generator, gen_kwargs={"source": dict(source)}, cache_dir=str(work / "hf"),
            features=datasets.Features({"sentences": datasets.Sequence(datasets.Value("string"))}),
        )
        nproc = max(1, min(num_proc, len(docs) // 200))
        vocab = tokenizer.get_vocab()
        tokenised = docs.map(
            _SentenceTokenizer(tokenizer, max_seq_length - 3, Progress("tokenising", len(docs))), batched=True,
            batch_size=200, with_indices=True, num_proc=_pool(nproc), remove_columns=["sentences"], desc="tokenising",
            features=datasets.Features({"sentence_ids": datasets.Sequence(datasets.Sequence(datasets.Value("int32")))}),
        )
        splits = {"train": tokenised}
        if val_fraction > 0 and len(tokenised) >= 2:
            n_val = max(1, int(round(len(tokenised) * val_fraction)))
            parts = tokenised.train_test_split(test_size=n_val, seed=seed, shuffle=True)
            splits = {"train": parts["train"], "validation": parts["test"]}
        out = {}
        for name, part in splits.items():
            pool = None
            if name == "validation" and nsp:
                train_docs = splits["train"].select(range(min(len(splits["train"]), docs_per_shard)))
                pool = [d for d in train_docs["sentence_ids"] if d]
            builder = _InstanceBuilder(max_seq_length, short_seq_prob, dupe_factor, nsp, seed, vocab["[CLS]"],
                                       vocab["[SEP]"], pool, Progress(f"pairing {name}", len(part)))
            out[name] = part.map(
                builder, batched=True, batch_size=docs_per_shard, with_indices=True, remove_columns=["sentence_ids"],
                num_proc=_pool(min(nproc, len(part) // docs_per_shard or 1)), desc=f"pairing {name}",
                features=datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                            "next_sentence_label": datasets.Value("int8")}),
            )
            if len(out[name]) == 0:
                raise CorpusError(f"the corpus {_describe(source)} gave no {name} instances: documents are too short "
                                  f"or too few; add text or lower data.val_fraction")
            if name == "validation" and nsp and len(set(out[name]["next_sentence_label"])) < 2:
                raise CorpusError(f"the validation split of {_describe(source)} has only one NSP class in "
                                  f"{len(out[name])} pairs, so its NSP accuracy would mean nothing; raise "
                                  f"data.val_fraction or add documents")
        dd = datasets.DatasetDict(out)
        dd.save_to_disk(str(work / "final"))
        log.info("pretraining instances: %s from %s documents in %.0f s", ", ".join(
            f"{len(d):,} {name}" for name, d in out.items()), f"{len(docs):,}", time.monotonic() - start)
        shutil.rmtree(final, ignore_errors=True)
        (work / "final").rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return datasets.load_from_disk(str(final))


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
