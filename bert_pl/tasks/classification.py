"""Sequence classification on your own data: single-label, regression or multi-label, one text or a pair.

    python finetune.py task=text_classification pretrained=PATH data.train_file=train.csv data.validation_file=dev.csv

Files are read by extension (`.csv`, `.tsv`, `.json` (an array or JSON lines), `.jsonl`, `.parquet`) or from a
`datasets` hub dataset (`data.hub=NAME`, online). Rows stream through tokenisation in chunks into flat arrays
(`FeatureTable`), so a large file costs its token ids, not Python objects per row. The GLUE preset
(`bert_pl.tasks.glue`) is this task with GLUE's readers, label sets and submission files.
"""
from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bert_pl.tasks.base import (Task, TaskDataError, limits_per_split, softmax, with_row_ids,
                                write_jsonl_predictions)
from bert_pl.tasks.metrics import check_main_metric, classification_metrics, learning_check
from bert_pl.tasks.predictor import PredictError, Predictor
from bert_pl.tasks.readers import (CHUNK, ID_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES, hub_has_split, read_hub_rows,
                                   read_rows, text_value)

log = logging.getLogger(__name__)

# -- features ------------------------------------------------------------------------------------------------------
class FeatureTable(torch.utils.data.Dataset):
    """Tokenised rows in flat arrays: token ids (int32), row offsets, where segment B starts, labels, row ids.
    Indexing builds one feature dict for the collator."""

    def __init__(self):
        self._chunks: List[np.ndarray] = []  # token ids of CHUNK rows each, concatenated once at the end
        self._pending: List[np.ndarray] = []
        self._lengths: List[int] = []
        self._b_start: List[int] = []
        self.labels: list = []
        self.row_ids: List[str] = []
        self.gold: list = []  # the label as read (strings / list / float), for prediction files
        self.ids = np.zeros(0, dtype=np.int32)
        self.offsets = np.zeros(1, dtype=np.int64)

    def add(self, ids: Sequence[int], b_start: int, label, row_id: str, gold) -> None:
        self._pending.append(np.asarray(ids, dtype=np.int32))
        self._lengths.append(len(ids))
        self._b_start.append(b_start)
        self.labels.append(label)
        self.row_ids.append(row_id)
        self.gold.append(gold)
        if len(self._pending) >= CHUNK:
            self._chunks.append(np.concatenate(self._pending))
            self._pending = []

    def finish(self) -> "FeatureTable":
        self.ids = np.concatenate([np.zeros(0, dtype=np.int32), *self._chunks, *self._pending])
        self.offsets = np.concatenate([[0], np.cumsum(self._lengths, dtype=np.int64)])
        self.b_start = np.asarray(self._b_start, dtype=np.int32)
        if self.labels and all(x is not None for x in self.labels):  # one array instead of a Python object per row
            first = self.labels[0]
            dtype = np.float32 if isinstance(first, (list, float)) else np.int64
            self.labels = np.asarray(self.labels, dtype=dtype)
        del self._chunks, self._pending, self._lengths, self._b_start
        return self

    def __len__(self) -> int:
        return len(self.row_ids)

    def __getitem__(self, i: int) -> dict:
        ids = self.ids[self.offsets[i]:self.offsets[i + 1]]
        types = np.zeros(len(ids), dtype=np.int64)
        types[self.b_start[i]:] = 1
        f = {"input_ids": ids.astype(np.int64), "token_type_ids": types, "example_index": i}
        if isinstance(self.labels, np.ndarray):
            f["labels"] = self.labels[i]
        return f


def predictions(logits: np.ndarray, kind: str) -> np.ndarray:
    """Class ids (single_label), 0/1 rows (multi_label: sigmoid > 0.5) or scores (regression)."""
    if kind == "regression":
        return logits[:, 0]
    if kind == "multi_label":
        return (logits > 0).astype(np.int64)
    return logits.argmax(-1)


def decode_logits(logits: np.ndarray, labels: List[str], kind: str) -> List[dict]:
    """Per row: {"label", "probabilities"} (single_label), {"labels", "probabilities"} (multi_label, per-label
    sigmoid) or {"score"} (regression). Shared by prediction files, predict.py and the Python API."""
    preds = predictions(logits, kind)
    if kind == "regression":
        return [{"score": round(float(p), 6)} for p in preds]
    probs = 1 / (1 + np.exp(-logits)) if kind == "multi_label" else softmax(logits)
    rows = []
    for p, q in zip(preds, probs):
        row = {"labels": [labels[j] for j in np.flatnonzero(p)]} if kind == "multi_label" else {"label": labels[int(p)]}
        row["probabilities"] = {name: round(float(x), 6) for name, x in zip(labels, q)}
        rows.append(row)
    return rows


def _one_spaced(label) -> str:
    """A class label with its spaces normalised: " pos", "pos " and "pos" are one class."""
    return " ".join(str(label).split())


def _as_number(label: str) -> Optional[float]:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _natural_key(label: str):
    """Integers in numeric order, then everything else alphabetically: ["1", "2", "10", "neg", "pos"]."""
    try:
        value = float(label)
    except ValueError:
        return (1, 0.0, label)
    return (0, value, label) if np.isfinite(value) else (1, 0.0, label)  # nan would make the order random


class TextClassificationTask(Task):
    """`task=text_classification`: the user's own files, or a hub dataset. See conf/task/text_classification.yaml
    for every key."""

    head = "classification"
    feature_state = ("_pairs",)

    def __init__(self, train_file: Optional[str] = None, validation_file: Optional[str] = None,
                 test_file: Optional[str] = None, hub: Optional[str] = None, hub_config: Optional[str] = None,
                 hub_splits: Optional[dict] = None, text_columns: Optional[Sequence[str]] = None,
                 label_column: str = "label", id_column: Optional[str] = None, labels: Optional[Sequence] = None,
                 label_type: str = "str", multi_label: bool = False, label_separator: str = ",",
                 main_metric: Optional[str] = None, on_bad_row: str = "error", max_seq_length: int = 128,
                 batch_size: int = 32, eval_batch_size: int = 64, num_workers: int = 0, static_shapes: bool = False,
                 limit_train_examples: Optional[int] = None, limit_eval_examples: Optional[int] = None,
                 seed: int = 0, **shared):
        super().__init__(max_seq_length, batch_size, eval_batch_size, num_workers, static_shapes, seed, **shared)
        if label_type not in ("str", "float"):
            raise TaskDataError(f"data.label_type={label_type!r}: use str (classes) or float (regression)")
        if multi_label and label_type == "float":
            raise TaskDataError("data.multi_label=true takes class labels: drop data.label_type=float")
        if on_bad_row not in ("skip", "error"):
            raise TaskDataError(f"data.on_bad_row={on_bad_row!r}: use skip or error")
        if text_columns is not None and not 1 <= len(text_columns) <= 2:
            raise TaskDataError(f"data.text_columns={list(text_columns)}: give one column, or two for a pair")
        self.files = {"train": train_file, "dev": validation_file, "test": test_file}
        if hub is None and not train_file:
            raise TaskDataError("no training data: pass data.train_file=PATH (and data.validation_file=PATH), or "
                                "data.hub=NAME for a `datasets` hub dataset (online)")
        if hub is None and not validation_file:
            raise TaskDataError("no validation data: pass data.validation_file=PATH (the best epoch is chosen on it)")
        self.hub, self.hub_config = hub, hub_config
        self.hub_splits = {"train": "train", "dev": "validation", "test": "test", **dict(hub_splits or {})}
        self.text_columns = list(text_columns) if text_columns is not None else None
        self.label_column, self.id_column = label_column, id_column
        self.kind = "multi_label" if multi_label else "regression" if label_type == "float" else "single_label"
        self.label_separator = label_separator
        self._labels = [str(x) for x in labels] if labels is not None else None
        self._main_metric = main_metric
        self.on_bad_row = on_bad_row
        self.limits = limits_per_split(limit_train_examples, limit_eval_examples)
        self._features: Dict[str, FeatureTable] = {}
        self._pairs: Optional[bool] = None  # whether rows are text pairs (saved for prediction)
        self._hub_label_names: Dict[str, List[str]] = {}
        self._class_of_spelling: Dict[str, str] = {}  # "1.0" -> "1": spellings of one number read as one class

    # -- contract: what the model needs -------------------------------------------------------------------------
    @property
    def labels(self) -> List[str]:
        if self.kind == "regression":
            return ["score"]
        if self._labels is None:
            self._labels = self._labels_from_train()
        return self._labels

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def head_kwargs(self) -> dict:
        return {"num_labels": self.num_labels, "problem_type": self.kind}

    @property
    def main_metric(self) -> str:
        try:
            return check_main_metric(self._main_metric, self.kind, self.num_labels)
        except ValueError as e:
            raise TaskDataError(f"data.main_metric: {e}") from None

    def prepare(self) -> None:
        """Fix the label set, check data.main_metric, and read and tokenise every split now, so that a bad row in
        a dev or test file stops the run before training, not after it."""
        if self.kind != "regression" and len(self.labels) < (1 if self.kind == "multi_label" else 2):
            raise TaskDataError(f"{self._describe('train')}: only the label(s) {self.labels} occur; a classifier "
                                f"needs at least two (or pass data.labels=[...])")
        self.main_metric  # noqa: B018 - validates data.main_metric before training
        for split in ["train", *self.eval_splits, *self.test_splits()]:
            self.features(split)

    def test_splits(self) -> List[str]:
        if self.files["test"]:
            return ["test"]
        return ["test"] if self.hub and self._hub_has("test") else []

    def split_kind(self, split: str) -> str:
        """train, dev (labelled, evaluated) or test (labels optional, predicted only)."""
        return split if split in ("train", "test") else "dev"

    # -- reading ------------------------------------------------------------------------------------------------
    def _describe(self, split: str) -> str:
        return str(self.files.get(split) or f"{self.hub}[{self.hub_splits.get(split)}]")

    def _hub_has(self, split: str) -> bool:
        return hub_has_split(self.hub, self.hub_config, self.hub_splits[split])

    def rows(self, split: str) -> Tuple[List[str], Iterator[Tuple[int, dict]]]:
        """(columns, (line, row) iterator) of a split: a local file when given, else the hub split."""
        if self.files.get(split):
            return read_rows(Path(self.files[split]))
        columns, rows, names = read_hub_rows(self.hub, self.hub_config, self.hub_splits[split])
        if self.label_column in names:
            self._hub_label_names[split] = names[self.label_column]
        return columns, rows

    def _text_columns(self, columns: List[str], where: str) -> List[str]:
        if self.text_columns is not None:
            missing = [c for c in self.text_columns if c not in columns]
            if missing:
                raise TaskDataError(f"{where}: no column(s) {missing}; columns found: {columns}. Set "
                                    f"data.text_columns=[...] to the text column(s)")
            return self.text_columns
        for candidate in TEXT_COLUMN_CANDIDATES:
            if all(c in columns for c in candidate):
                return list(candidate)
        raise TaskDataError(f"{where}: no text column found among {columns}; set data.text_columns=[COLUMN] or "
                            f"[COLUMN_A,COLUMN_B] for pairs")

    def _label_value(self, raw, split: str):
        """The label as strings (list for multi-label) or a float; raises ValueError with the reason."""
        names = self._hub_label_names.get(split)
        if names is not None and isinstance(raw, int) and not isinstance(raw, bool):
            raw = names[raw] if 0 <= raw < len(names) else None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if self.kind == "multi_label" and raw is not None:
                return []  # an empty cell: a row with none of the labels
            raise ValueError("the label is empty")
        if self.kind == "regression":
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"label {raw!r} is not a number (data.label_type=float)") from None
            if not np.isfinite(value):
                raise ValueError(f"label {raw!r} is not a finite number")
            return value
        if self.kind == "multi_label":
            items = raw if isinstance(raw, (list, tuple)) else str(raw).split(self.label_separator)
            return sorted({_one_spaced(x) for x in items if str(x).strip()})
        if isinstance(raw, (list, tuple, dict, np.ndarray)):
            raise ValueError(f"label {raw!r} is a {type(raw).__name__}; a single-label row has one label (for "
                             f"several per row set data.multi_label=true)")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)  # 1.0 in a parquet/JSON column is the class "1"
        return _one_spaced(raw)

    def _same_class(self, gold):
        """A label as its class in self.labels: a spelling of the same number ("1.0", "01" for "1") is that class,
        with a note the first time (merged spellings of the training file were reported when they were found)."""
        if self.kind == "regression":
            return gold
        if isinstance(gold, list):
            return sorted({self._same_class(g) for g in gold})
        labels = self.labels
        if gold in self._class_of_spelling:
            return self._class_of_spelling[gold]
        if gold in labels or _as_number(gold) is None:
            return gold
        same = [x for x in labels if _as_number(x) == _as_number(gold)]
        if len(same) == 1:
            log.warning("label %r read as the class %r (the same number)", gold, same[0])
            self._class_of_spelling[gold] = same[0]
            return same[0]
        return gold

    def _labels_from_train(self) -> List[str]:
        seen = collections.Counter()
        columns, rows = self.rows("train")
        if self.label_column not in columns:
            raise TaskDataError(f"{self._describe('train')}: no label column {self.label_column!r}; columns found: "
                                f"{columns}. Set data.label_column=NAME")
        limit = self.limits["train"]
        for n, (lineno, row) in enumerate(rows):
            if limit and n >= limit:
                break
            try:
                value = self._label_value(row.get(self.label_column), "train")
            except ValueError:
                continue  # reported with the row when the split is read
            seen.update(value if isinstance(value, list) else [value])
        if not seen:
            raise TaskDataError(f"{self._describe('train')}: no usable label in column {self.label_column!r}")
        # "1", "1.0" and "01" are one class, named by its most common spelling, never three classes without a word
        by_number = collections.defaultdict(list)
        for spelling in seen:
            if _as_number(spelling) is not None:
                by_number[_as_number(spelling)].append(spelling)
        for spellings in by_number.values():
            if len(spellings) > 1:
                spellings.sort(key=lambda x: (-seen[x], _natural_key(x)))
                for other in spellings[1:]:
                    self._class_of_spelling[other] = spellings[0]
                log.warning("%s: labels %s are the same number: read as one class %r", self._describe("train"),
                            ", ".join(f"{x!r} ({seen[x]} rows)" for x in spellings), spellings[0])
        return sorted({self._class_of_spelling.get(x, x) for x in seen}, key=_natural_key)

    def features(self, split: str) -> FeatureTable:
        if split not in self._features:
            self._features[split] = self.cached_features(split, lambda: self._featurize(split))
        return self._features[split]

    def _featurize(self, split: str) -> FeatureTable:
        where = self._describe(split)
        columns, rows = self.rows(split)
        text_cols = self._text_columns(columns, where)
        self._pairs = len(text_cols) == 2
        kind = self.split_kind(split)
        labelled = self.label_column in columns and kind != "test"
        if kind != "test" and not labelled:
            raise TaskDataError(f"{where}: no label column {self.label_column!r}; columns found: {columns}. Set "
                                f"data.label_column=NAME")
        id_col = self.id_column or next((c for c in ID_COLUMN_CANDIDATES if c in columns), None)
        if self.id_column and self.id_column not in columns:
            raise TaskDataError(f"{where}: no id column {self.id_column!r}; columns found: {columns}")
        label_index = {name: i for i, name in enumerate(self.labels)} if self.kind != "regression" else None
        limit = self.limits.get(kind)
        table, bad, n = FeatureTable(), [], 0
        chunk: List[tuple] = []

        def flush():
            texts = [c[1] for c in chunk]
            enc = self._encode(texts)
            for (row_id, _, label, gold), ids, b_start in zip(chunk, *enc):
                table.add(ids, b_start, label, row_id, gold)
            chunk.clear()

        for row_number, (lineno, row) in enumerate(rows):
            if limit and n >= limit:
                break
            problem, label, gold = None, None, None
            try:
                texts = tuple(text_value(row.get(c), c) for c in text_cols)
                if not texts[0].strip() or (len(texts) == 2 and not texts[1].strip()):
                    raise ValueError(f"empty text in column {text_cols[0] if not texts[0].strip() else text_cols[1]!r}")
                if labelled:
                    gold = self._same_class(self._label_value(row.get(self.label_column), split))
                    label = self._encode_label(gold, label_index)
            except ValueError as e:
                problem = str(e)
            if problem:
                bad.append(f"{where}: row {lineno}: {problem}")
                if self.on_bad_row == "error":
                    raise TaskDataError(f"{bad[-1]}; fix the row, or set data.on_bad_row=skip to skip such rows")
                continue
            row_id = str(row[id_col]) if id_col and row.get(id_col) is not None else str(row_number)
            chunk.append((row_id, texts, label, gold))
            n += 1
            if len(chunk) >= CHUNK:
                flush()
                self.progress(n)
        if chunk:
            flush()
        if bad:
            log.warning("%s: skipped %d bad row(s), e.g. %s", where, len(bad), "; ".join(bad[:3]))
        if n == 0:  # a test split too: with nothing to predict, writing its predictions would fail after training
            raise TaskDataError(f"{where}: no usable rows" + ("; leave data.test_file unset to predict nothing"
                                                              if kind == "test" and self.files.get(split) else ""))
        return table.finish()

    def _encode_label(self, gold, label_index):
        if self.kind == "regression":
            return float(gold)
        unknown = [g for g in (gold if isinstance(gold, list) else [gold]) if g not in label_index]
        if unknown:
            raise ValueError(f"label {unknown[0]!r} is not among the training labels {self.labels} (or data.labels)")
        if self.kind == "multi_label":
            hot = [0.0] * len(label_index)
            for g in gold:
                hot[label_index[g]] = 1.0
            return hot
        return label_index[gold]

    def set_tokenizer(self, tokenizer) -> None:
        super().set_tokenizer(tokenizer)
        # pairs trim the longer segment first, one token at a time (as Google's run_classifier)
        self.tokenizer.enable_truncation(self.max_seq_length, strategy="longest_first")

    def _encode(self, texts: List[tuple]):
        """Token ids and where segment B starts (the row's length for a single text)."""
        tok = self.tokenizer
        if len(texts[0]) == 2:
            enc = tok.encode_batch([(a, b) for a, b in texts])
        else:
            enc = tok.encode_batch([t[0] for t in texts])
        ids = [e.ids for e in enc]
        b_starts = [(e.type_ids.index(1) if 1 in e.type_ids else len(e.ids)) for e in enc]
        return ids, b_starts

    # -- contract: scoring and outputs --------------------------------------------------------------------------
    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return predictions(logits, self.kind)

    def _ordered_logits(self, outputs: dict) -> np.ndarray:
        return outputs["logits"][np.argsort(outputs["example_index"], kind="stable")]

    def evaluate(self, split: str, outputs: dict) -> dict:
        preds = self.predictions(self._ordered_logits(outputs))
        table = self.features(split)
        labels = np.asarray(table.labels)
        return classification_metrics(preds, labels, self.kind, self.num_labels)

    def check_learned(self, split: str, outputs: dict) -> dict:
        preds = self.predictions(self._ordered_logits(outputs))
        return learning_check(preds, self.features(split).labels, self.kind, self.labels, self.main_metric)

    def prediction_rows(self, split: str, outputs: dict) -> List[dict]:
        """One dict per input row, in input order: id, predicted label(s) and probabilities (or score), gold."""
        return with_row_ids(decode_logits(self._ordered_logits(outputs), self.labels, self.kind), self.features(split))

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        return write_jsonl_predictions(self.prediction_rows(split, outputs), out_dir, split)

    def results_info(self) -> dict:
        return {"labels": self.labels, "problem_type": self.kind}

    def checkpoint_info(self) -> dict:
        return {"max_seq_length": self.max_seq_length, "pairs": self._pairs}

    def dataset_info(self) -> dict:
        return {"name": self.hub, "type": self.hub, "config": self.hub_config} if self.hub else {}


class ClassificationPredictor(Predictor):
    """Prediction with a sequence classification head: a text or a (text_a, text_b) pair per input -> {"label",
    "probabilities"} (multi-label: {"labels", "probabilities"}; regression: {"score"})."""

    pipeline_tag = "text-classification"
    example_inputs = [("The cat sat.", "A cat was sitting."), ("Stocks fell.", "Markets rose sharply today.")]

    def check(self, inputs: list) -> None:
        """A pair model gets pairs and a single-text model single texts (the number of the first that differs)."""
        for n, x in enumerate(inputs, 1):
            if not isinstance(x, str) and not (isinstance(x, (list, tuple)) and len(x) == 2
                                               and all(isinstance(t, str) for t in x)):
                raise PredictError(f"input {n}: a classification model takes a text or a pair of texts")
        want_pairs = self.runtime.task_info.get("pairs")
        if want_pairs is None:
            return
        for n, x in enumerate(inputs, 1):
            if isinstance(x, str) == bool(want_pairs):
                raise PredictError(f"input {n}: the model was fine-tuned on {'pairs' if want_pairs else 'single texts'}"
                                   f"; give {'a pair of texts' if want_pairs else 'one text'} per input"
                                   f"{' (two texts separated by a tab on a line of a file)' if want_pairs else ''}")

    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        enc = self.runtime.encode(inputs)
        feats = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in enc]
        logits = np.stack([o["logits"] for o in self.runtime.run(feats, progress)])
        return decode_logits(logits, self.runtime.labels, self.runtime.problem_type)

    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        return ["logits"]
