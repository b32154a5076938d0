"""The task contract: everything `finetune.py`, `FinetuneModule` and the results writer need from a task.

A task is a LightningDataModule that also says which head it trains and how its outputs are scored and written.
Every task family (sequence classification and its GLUE preset, SQuAD, ...) fills this one contract, so adding a
family is one module here plus one config in `conf/task/`. The flow, in `finetune.py`:

    task = instantiate(cfg.data)              # reads nothing yet
    task.set_tokenizer(tokenizer)             # the checkpoint's tokenizer
    task.prepare()                            # reads train/dev, fixes the label set (before the model is built)
    module = FinetuneModule(head=task.head, head_kwargs=task.head_kwargs(), labels=task.labels,
                            main_metric=task.main_metric, ...)
    trainer.fit(module, datamodule=task)      # validation: module gathers outputs, task.evaluate(split, outputs)
    results.finish(...)                       # best checkpoint -> task.write_predictions(split, outputs, ...)

Features are dicts of `input_ids`, `token_type_ids` (lists) plus per-feature values; `PaddingCollator` pads the
token lists per batch, pads per-token label lists with -100, and stacks the rest. Keys ending in `_index`
(`example_index`, `feature_index`) are carried through prediction so `evaluate` can put outputs back in order.

A family builds a split's features through `cached_features(split, build)`: with `data.feature_cache` set
(finetune.yaml: data/cache/features) the result is kept on disk, keyed by the split's input file contents, the
tokenizer, the task's settings and the family's code, so the jobs of a sweep tokenise each file once. While building,
a family reports rows done with `self.progress(rows)` (a line every PROGRESS_EVERY seconds: rows/s, time left).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from bert_pl.errors import UserError
from bert_pl.model.bert import MIN_SEQ_LENGTH

IGNORE_INDEX = -100
FEATURE_CACHE_VERSION = 1  # bump when the cached payload's layout changes (the families' code is hashed into the key)
PROGRESS_EVERY = 30.0  # seconds between progress lines of a long tokenisation; a short one (a test) logs none
# Settings that never change a feature: a sweep over them reuses the cached features.
NOT_FEATURE_SETTINGS = {"batch_size", "eval_batch_size", "num_workers", "static_shapes", "seed", "main_metric",
                        "n_best_size", "max_answer_length", "null_score_diff_threshold", "feature_cache",
                        "predict_test"}
LINE_FILES = {".csv", ".tsv", ".jsonl"}  # one row a line: the line count estimates the rows to come
log = logging.getLogger(__name__)


class TaskDataError(UserError, ValueError):
    """Bad task data or settings; the message names the file, the row or the key, and the fix."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def with_row_ids(rows: List[dict], table) -> List[dict]:
    """Prediction rows in input order, each led by its input row's id (`table.row_ids`) and followed by the gold
    answer when the input had one (`table.gold`)."""
    out = []
    for i, row in enumerate(rows):
        row = {"id": table.row_ids[i], **row}
        if table.gold[i] is not None:
            row["gold"] = table.gold[i]
        out.append(row)
    return out


def write_jsonl_predictions(rows: List[dict], out_dir: Path, split: str) -> Path:
    """`<out_dir>/predictions_<split>.jsonl`: one JSON object per input row, in input order (written atomically)."""
    import json

    from bert_pl.io.atomic import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"predictions_{split}.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def limits_per_split(limit_train_examples: Optional[int],
                     limit_eval_examples: Optional[int]) -> Dict[str, Optional[int]]:
    """Rows read per split kind: data.limit_eval_examples cuts the dev and the test splits alike (a quick check then
    predicts a few test rows, not the whole file: not a complete submission)."""
    return {"train": limit_train_examples, "dev": limit_eval_examples, "test": limit_eval_examples}


def no_test_splits() -> List[str]:
    """`Task.test_splits` with data.predict_test=false (a module function, so a task still pickles)."""
    return []


class TokenisingProgress:
    """A line every PROGRESS_EVERY seconds while a split is tokenised: rows done, rows/s and, where the total is
    known or estimated (a line-per-row file's line count), the time left."""

    def __init__(self, what: str, total: Optional[int] = None):
        self.what, self.total = what, total
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        total = total or self.total
        rate = done / max(now - self.start, 1e-9)
        of = f" of ~{total:,}" if total and total >= done else ""
        left = f", ~{(total - done) / rate:.0f} s left" if of and rate > 0 else ""
        log.info("tokenising %s: %s rows%s, %s rows/s%s", self.what, f"{done:,}", of, f"{rate:,.0f}", left)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def file_digest(path: Path) -> str:
    """The content's hash: a copy, a touch or a move of the same bytes keeps the cache; any edit invalidates it."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def plain(value):
    """Settings as JSON-able values: Hydra's DictConfig/ListConfig, paths and tuples included."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class CacheUnpickler(pickle.Unpickler):
    """Loads a cache entry without running code: only numpy's array rebuilding and the plain data classes of
    bert_pl's task modules (no model, task, callback or error) may be named in it; a file that names anything else
    is refused, as a corrupt one."""

    NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
             ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
             ("numpy.core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
             ("numpy.core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.NUMPY or (module.startswith("numpy.dtypes") and name.endswith("DType")):
            return super().find_class(module, name)
        if module.startswith("bert_pl.tasks.") and module in sys.modules:
            obj = getattr(sys.modules[module], name, None)
            if isinstance(obj, type) and obj.__module__ == module and not issubclass(
                    obj, (torch.nn.Module, L.LightningDataModule, L.Callback, logging.Handler, BaseException)):
                return obj
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a feature cache")


class PaddingCollator:
    """Pads token sequences per batch (to a multiple of 8; or to a fixed width for XLA) and stacks the rest.
    List-valued integer fields (per-token labels) are padded with -100 to the batch width; list-valued float fields
    (multi-hot labels) are stacked as they are."""

    SEQ_KEYS = ("input_ids", "token_type_ids", "attention_mask")

    def __init__(self, pad_id: int = 0, fixed_width: Optional[int] = None, multiple: int = 8):
        self.pad_id, self.fixed_width, self.multiple = pad_id, fixed_width, multiple

    def __call__(self, features: List[dict]) -> dict:
        longest = max(len(f["input_ids"]) for f in features)
        width = self.fixed_width or -(-longest // self.multiple) * self.multiple
        batch = {}
        for key in self.SEQ_KEYS:
            pad = self.pad_id if key == "input_ids" else 0
            arr = np.full((len(features), width), pad, dtype=np.int64)
            for i, f in enumerate(features):
                seq = f.get(key) if key != "attention_mask" else [1] * len(f["input_ids"])
                arr[i, :len(seq)] = seq
            batch[key] = torch.from_numpy(arr)
        for key in features[0]:
            if key in self.SEQ_KEYS:
                continue
            values = [f[key] for f in features]
            first = values[0]
            if isinstance(first, (list, tuple, np.ndarray)) and len(first) and isinstance(first[0], (float, np.floating)):
                batch[key] = torch.tensor(np.asarray(values, dtype=np.float32))
            elif isinstance(first, (list, tuple, np.ndarray)):  # per-token labels
                arr = np.full((len(features), width), IGNORE_INDEX, dtype=np.int64)
                for i, v in enumerate(values):
                    arr[i, :len(v)] = v
                batch[key] = torch.from_numpy(arr)
            else:
                dtype = torch.float32 if isinstance(first, (float, np.floating)) else torch.long
                batch[key] = torch.tensor(values, dtype=dtype)
        return batch


class _WarningCollector(logging.Handler):
    def __init__(self, messages: List[str]):
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Task(L.LightningDataModule):
    """The contract. Subclasses set `head` and fill the methods marked 'task'; the loaders are shared.

    Attributes every task has (set in `__init__` from its config): `max_seq_length`, `batch_size`,
    `eval_batch_size`, `num_workers`, `static_shapes` (fixed-width batches for XLA), `seed`, `feature_cache`,
    `predict_test`, and `tokenizer` (set by `set_tokenizer`). A family takes the keyword-only settings every task
    shares (`feature_cache`, `predict_test`) as `**shared` and passes them on here."""

    head: str = "classification"  # a key of bert_pl.model.heads.HEADS
    eval_splits: List[str] = ["dev"]
    # Attributes that building a split's features sets and later steps read (e.g. whether rows are pairs): saved
    # with the cached features and restored when the cache is used.
    feature_state: tuple = ()

    def __new__(cls, *args, **kwargs):
        # The constructor's arguments as given (the outermost class's): the settings the feature cache is keyed by.
        task = super().__new__(cls)
        task._init_arguments = (args, kwargs)
        return task

    def __init__(self, max_seq_length: int = 128, batch_size: int = 32, eval_batch_size: int = 64,
                 num_workers: int = 0, static_shapes: bool = False, seed: int = 0, *,
                 feature_cache: Optional[str] = None, predict_test: bool = True):
        super().__init__()
        checks = [(max_seq_length >= MIN_SEQ_LENGTH,
                   f"data.max_seq_length={max_seq_length}: must be at least {MIN_SEQ_LENGTH} tokens"),
                  (batch_size >= 1, f"data.batch_size={batch_size}: must be at least 1"),
                  (eval_batch_size >= 1, f"data.eval_batch_size={eval_batch_size}: must be at least 1"),
                  (num_workers >= 0, f"data.num_workers={num_workers}: must be 0 or more")]
        for ok, message in checks:
            if not ok:
                raise TaskDataError(message)
        self.max_seq_length, self.batch_size, self.eval_batch_size = max_seq_length, batch_size, eval_batch_size
        self.num_workers, self.static_shapes, self.seed = num_workers, static_shapes, seed
        self.feature_cache = Path(feature_cache) if feature_cache else None
        self.predict_test = predict_test
        if not predict_test:  # data.predict_test=false: no test split is read, tokenised or predicted
            self.test_splits = no_test_splits
        self.tokenizer = None
        self._progress: Optional[TokenisingProgress] = None

    # -- what the model needs (task) ----------------------------------------------------------------------------
    @property
    def labels(self) -> Optional[List[str]]:
        """Label names in the order of the head's outputs (saved in checkpoints and results); None if none."""
        return None

    def head_kwargs(self) -> dict:
        """Arguments of the head's model class besides the config (e.g. num_labels, problem_type)."""
        return {}

    @property
    def main_metric(self) -> str:
        """The `evaluate` key that picks the best epoch (averaged over `eval_splits`)."""
        raise NotImplementedError

    # -- data (task) --------------------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer) -> None:
        """Take the checkpoint's tokenizer (a `tokenizers.Tokenizer`); keep an own copy for own settings."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tokenizer.to_str())
        tok.no_truncation()
        tok.no_padding()
        self.tokenizer = tok

    def prepare(self) -> None:
        """Read what the model's shape depends on (the label set) and check the data; raise TaskDataError early."""

    def features(self, split: str) -> list:
        """The split's features (dicts as described in the module docstring), cached."""
        raise NotImplementedError

    def test_splits(self) -> List[str]:
        """Splits to predict after training (no labels needed); [] if none (always with data.predict_test=false)."""
        return []

    def source_files(self, split: str) -> Optional[List[Path]]:
        """The local files a split's features are read from (their contents key the feature cache); None where a
        split comes from elsewhere (the hub): its features are not cached. Default: `self.files[split]`."""
        name = (getattr(self, "files", None) or {}).get(split)
        return [Path(name)] if name and Path(name).is_file() else None

    # -- scoring and outputs (task) -----------------------------------------------------------------------------
    def evaluate(self, split: str, outputs: Dict[str, np.ndarray]) -> Dict[str, float]:
        """Metrics of one evaluation split from the gathered head outputs (+ `*_index` arrays)."""
        raise NotImplementedError

    def write_predictions(self, split: str, outputs: Dict[str, np.ndarray], out_dir: Path, submission: bool) -> Path:
        """Write one split's predictions (submission=True: a test split) and return the file's path."""
        raise NotImplementedError

    def check_learned(self, split: str, outputs: Dict[str, np.ndarray]) -> dict:
        """{"baseline": what a model that learned nothing scores (e.g. the majority class), "degenerate": why these
        predictions look like such a model's (all one class, no better than the baseline), else None}. Written to
        results.json and said loudly; {} where a family has no such check."""
        return {}

    def results_info(self) -> dict:
        """Extra fields for results.json (e.g. the label set)."""
        return {"labels": self.labels} if self.labels is not None else {}

    def checkpoint_info(self) -> dict:
        """Settings saved in fine-tuned checkpoints, so prediction needs no task config (`bert_pl.load`)."""
        return {"max_seq_length": self.max_seq_length}

    def dataset_info(self) -> dict:
        """The public dataset trained on, for results.json and model cards: {"name", "type" (its Hugging Face hub
        id), "config", "language"}; {} for a user's own files (nothing to link to)."""
        return {}

    # -- the feature cache --------------------------------------------------------------------------------------
    def progress(self, rows_done: int, total: Optional[int] = None) -> None:
        """Called by a family while it tokenises a split: logs rows done, rows/s and the time left now and then."""
        if self._progress is not None:
            self._progress(rows_done, total)

    def feature_settings(self) -> dict:
        """What, besides the input files and the tokenizer, decides a split's features: the task's class and code,
        and its constructor's arguments less those that only batch or score (NOT_FEATURE_SETTINGS)."""
        args, kwargs = self._init_arguments
        signature = inspect.signature(type(self).__init__)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        given.pop("self")
        for name, param in signature.parameters.items():
            if param.kind is param.VAR_KEYWORD:
                given.update(given.pop(name, None) or {})
        code = hashlib.blake2b(digest_size=16)
        for cls in type(self).__mro__:
            if cls.__module__.startswith("bert_pl."):
                code.update(Path(inspect.getfile(cls)).read_bytes())
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "code": code.hexdigest(),
                "version": FEATURE_CACHE_VERSION,
                **{k: plain(v) for k, v in sorted(given.items()) if k not in NOT_FEATURE_SETTINGS}}

    def feature_cache_path(self, split: str, files: List[Path]) -> Path:
        key = hashlib.blake2b(digest_size=16)
        key.update(json.dumps({"split": split, "settings": self.feature_settings(),
                               "files": [file_digest(f) for f in files]}, sort_keys=True).encode())
        key.update(self.tokenizer.to_str().encode())
        return self.feature_cache / f"{type(self).__name__.lower()}-{split}-{key.hexdigest()}.pkl"

    def cached_features(self, split: str, build: Callable[[], object]):
        """`build()`'s result (a split's features, picklable) with `self.progress` lines while it runs; with
        data.feature_cache set, read from / written to the cache (one lock per entry, so of two sweep jobs one builds
        and the other waits and reads)."""
        from filelock import FileLock, Timeout

        files = self.source_files(split)
        what = f"{split} ({', '.join(str(f) for f in files)})" if files else split
        rows = None  # the total for the time left: a line-per-row file's lines, less a csv/tsv header
        if files and all(f.suffix.lower() in LINE_FILES for f in files):
            rows = sum(count_lines(f) - (f.suffix.lower() != ".jsonl") for f in files)
        if not files or self.feature_cache is None:
            return self._build_with_progress(build, what, rows)
        path = self.feature_cache_path(split, files)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path.with_name(f".{path.name}.lock")))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                log.info("features of %s: another job is building them; waiting for its cache entry", what)
                lock.acquire()
        except OSError as e:
            log.warning("feature cache %s is not writable (%s); tokenising %s without it", path.parent,
                        e.strerror or e, what)
            return self._build_with_progress(build, what, rows)
        try:
            cached = self._read_cache(path)
            if cached is not None:
                features, state, warnings = cached
                for name, value in state.items():
                    setattr(self, name, value)
                for message in warnings:
                    log.warning("%s", message)
                log.info("features of %s: from the cache %s (delete it to tokenise again)", what, path)
                return features
            warnings = []
            features = self._build_with_progress(build, what, rows, warnings)
            self._write_cache(path, (features, {n: getattr(self, n) for n in self.feature_state}, warnings))
            log.info("features of %s: cached in %s", what, path)
            return features
        finally:
            lock.release()

    def _build_with_progress(self, build, what: str, total: Optional[int], warnings: Optional[List[str]] = None):
        """Run `build` with progress lines; the warnings it logs (skipped rows, ...) are kept to be said again
        when the cached features are used."""
        collect = _WarningCollector(warnings if warnings is not None else [])
        root = logging.getLogger("bert_pl")
        root.addHandler(collect)
        self._progress = TokenisingProgress(what, total)
        start = time.monotonic()
        try:
            features = build()
        finally:
            self._progress = None
            root.removeHandler(collect)
        seconds = time.monotonic() - start
        if seconds >= PROGRESS_EVERY:
            log.info("tokenised %s in %.0f s", what, seconds)
        return features

    @staticmethod
    def _read_cache(path: Path):
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as f:
                features, state, warnings = CacheUnpickler(f).load()
            if not isinstance(state, dict) or not isinstance(warnings, list):
                raise ValueError("not a feature cache entry")
            return features, state, warnings
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: built again, said
            log.warning("feature cache %s is unreadable (%s: %s); tokenising again and replacing it", path,
                        type(e).__name__, e)
            return None

    @staticmethod
    def _write_cache(path: Path, payload) -> None:
        """Temporary file + rename: a killed or failed write never leaves a partial entry under the final name."""
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError as e:  # a full disk: the run goes on with the features in memory
            log.warning("could not write the feature cache %s (%s); the next run tokenises again", path,
                        e.strerror or e)
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)

    # -- shared plumbing ----------------------------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None):
        if self.tokenizer is None:
            raise RuntimeError(f"{type(self).__name__}.set_tokenizer must be called before setup")
        self.prepare()
        if stage in (None, "fit"):
            self.features("train")
        if stage in (None, "fit", "validate"):
            for split in self.eval_splits:
                self.features(split)

    def collator(self):
        """Turns a list of features into a batch of tensors; a family with other shapes overrides it."""
        return PaddingCollator(self.tokenizer.get_vocab()["[PAD]"], self.max_seq_length if self.static_shapes else None)

    def loader(self, feats, shuffle: bool, batch_size: int) -> DataLoader:
        """Training (shuffle=True): a permutation seeded by (seed, epoch), sharded by rank, that starts mid-epoch on
        resume; per-batch padding (fixed width and drop_last with `static_shapes`)."""
        from bert_pl.training.sampling import ResumableSampler, loader_settings, rank_info

        rank, world = rank_info(self.trainer) if shuffle else (0, 1)
        drop_last = shuffle and self.static_shapes
        sampler = ResumableSampler(len(feats), shuffle=shuffle, seed=self.seed, rank=rank, world_size=world,
                                   drop_last=drop_last, with_epoch=False)
        if shuffle:
            sampler.resume_with(self.trainer, batch_size, drop_last)
        return DataLoader(feats, batch_size=batch_size, sampler=sampler, collate_fn=self.collator(),
                          drop_last=drop_last, **loader_settings(self.trainer, self.num_workers, self.seed))

    def train_dataloader(self):
        return self.loader(self.features("train"), True, self.batch_size)

    def val_dataloader(self):
        return [self.loader(self.features(s), False, self.eval_batch_size) for s in self.eval_splits]

    def predict_loader(self, split: str) -> DataLoader:
        return self.loader(self.features(split), False, self.eval_batch_size)
