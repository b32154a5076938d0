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
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from bert_pl.errors import UserError

IGNORE_INDEX = -100


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


class Task(L.LightningDataModule):
    """The contract. Subclasses set `head` and fill the methods marked 'task'; the loaders are shared.

    Attributes every task has (set in `__init__` from its config): `max_seq_length`, `batch_size`,
    `eval_batch_size`, `num_workers`, `static_shapes` (fixed-width batches for XLA), `seed`, and `tokenizer`
    (set by `set_tokenizer`)."""

    head: str = "classification"  # a key of bert_pl.model.heads.HEADS
    eval_splits: List[str] = ["dev"]

    def __init__(self, max_seq_length: int = 128, batch_size: int = 32, eval_batch_size: int = 64,
                 num_workers: int = 0, static_shapes: bool = False, seed: int = 0):
        super().__init__()
        checks = [(max_seq_length >= 8, f"data.max_seq_length={max_seq_length}: must be at least 8 tokens"),
                  (batch_size >= 1, f"data.batch_size={batch_size}: must be at least 1"),
                  (eval_batch_size >= 1, f"data.eval_batch_size={eval_batch_size}: must be at least 1"),
                  (num_workers >= 0, f"data.num_workers={num_workers}: must be 0 or more")]
        for ok, message in checks:
            if not ok:
                raise TaskDataError(message)
        self.max_seq_length, self.batch_size, self.eval_batch_size = max_seq_length, batch_size, eval_batch_size
        self.num_workers, self.static_shapes, self.seed = num_workers, static_shapes, seed
        self.tokenizer = None

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
        """Splits to predict after training (no labels needed); [] if none."""
        return []

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
