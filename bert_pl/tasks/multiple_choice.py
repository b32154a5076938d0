"""Multiple choice, as the BERT paper does SWAG (section 4.4): a context and k candidate continuations; each choice
goes through the encoder as [CLS] context [SEP] choice [SEP] (truncated longest-first to max_seq_length), one linear
layer on the pooled [CLS] gives it a score, and a softmax over the k scores is trained with cross-entropy on the gold
choice (head `multiple_choice`: inputs (B, K, S), logits (B, K)).

    python finetune.py task=swag pretrained=PATH data_dir=DIR     # SWAG's train.csv, val.csv [, test.csv]
    python finetune.py task=multiple_choice pretrained=PATH data.train_file=train.jsonl data.validation_file=dev.jsonl

A row holds a context, its choices and the index of the right one (`label`, 0..k-1). The choices are either one
list-valued column (`{"context": ..., "choices": [...], "label": i}` per JSON line; in a csv/tsv the cell holds a JSON
array) or one column per choice (`ending0..`, `choice0..`, `option0..`, or data.choice_columns). An optional prefix
column is put before every choice: SWAG's `sent2`, the start of the continuation, so that each choice is
`sent2 + " " + endingN` (as the paper and Hugging Face's run_swag). k is taken from the data and must be the same for
every row of every split. Files are read by `bert_pl.tasks.classification.read_rows` (csv, tsv, json, jsonl,
parquet); `task=swag` reads SWAG's own CSVs from data_dir, or `allenai/swag` from the `datasets` hub when online.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bert_pl.tasks.base import (PaddingCollator, Task, TaskDataError, limits_per_split, softmax, with_row_ids,
                                write_jsonl_predictions)
from bert_pl.tasks.metrics import accuracy, learning_check
from bert_pl.tasks.predictor import PredictError, Predictor
from bert_pl.tasks.readers import CHUNK, ID_COLUMN_CANDIDATES, hub_has_split, read_hub_rows, read_rows, text_value

log = logging.getLogger(__name__)

# Numbered columns taken as one column per choice when no `choices` column is there: ending0.., choice0.., option0..
CHOICE_COLUMN_PREFIXES = ("ending", "choice", "option")


# -- features ------------------------------------------------------------------------------------------------------
class ChoiceTable(torch.utils.data.Dataset):
    """k tokenised choices per row in flat arrays: token ids (int32), the offset of every (row, choice) sequence and
    where its segment B starts; labels as one int64 array when every row has one. Indexing builds one feature:
    `input_ids` and `token_type_ids` as k arrays, `example_index`, and `labels` when known."""

    def __init__(self, k: int):
        self.k = k
        self._chunks: List[np.ndarray] = []
        self._lengths: List[int] = []
        self._b_start: List[int] = []
        self.row_ids: List[str] = []
        self.gold: List[Optional[int]] = []  # the gold index as read (None where unknown), for prediction files
        self.labels: Optional[np.ndarray] = None

    def add_chunk(self, encodings: list, row_ids: List[str], gold: List[Optional[int]]) -> None:
        """`encodings`: k `tokenizers.Encoding`s per row, rows after each other."""
        assert len(encodings) == self.k * len(row_ids)
        self._chunks.append(np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encodings]))
        self._lengths.extend(len(e.ids) for e in encodings)
        self._b_start.extend(e.type_ids.index(1) if 1 in e.type_ids else len(e.ids) for e in encodings)
        self.row_ids.extend(row_ids)
        self.gold.extend(gold)

    def finish(self) -> "ChoiceTable":
        self.ids = np.concatenate([np.zeros(0, dtype=np.int32), *self._chunks])
        self.offsets = np.concatenate([[0], np.cumsum(self._lengths, dtype=np.int64)])
        self.b_start = np.asarray(self._b_start, dtype=np.int32)
        if self.gold and all(g is not None for g in self.gold):
            self.labels = np.asarray(self.gold, dtype=np.int64)
        del self._chunks, self._lengths, self._b_start
        return self

    def __len__(self) -> int:
        return len(self.row_ids)

    def __getitem__(self, i: int) -> dict:
        ids, types = [], []
        for j in range(i * self.k, (i + 1) * self.k):
            seq = self.ids[self.offsets[j]:self.offsets[j + 1]].astype(np.int64)
            t = np.zeros(len(seq), dtype=np.int64)
            t[self.b_start[j]:] = 1
            ids.append(seq)
            types.append(t)
        f = {"input_ids": ids, "token_type_ids": types, "example_index": i}
        if self.labels is not None:
            f["labels"] = self.labels[i]
        return f


class MultipleChoiceCollator(PaddingCollator):
    """Pads all K sequences of a batch to one width (a multiple of 8, or `fixed_width` for XLA): `input_ids`,
    `token_type_ids` and `attention_mask` of shape (B, K, S); the per-row values (`labels`, `example_index`) are
    stacked to (B,)."""

    def __call__(self, features: List[dict]) -> dict:
        k = len(features[0]["input_ids"])
        if any(len(f["input_ids"]) != k for f in features):
            raise ValueError(f"a batch mixes rows with {sorted({len(f['input_ids']) for f in features})} choices")
        longest = max(len(s) for f in features for s in f["input_ids"])
        width = self.fixed_width or -(-longest // self.multiple) * self.multiple
        ids = np.full((len(features), k, width), self.pad_id, dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, f in enumerate(features):
            for j, (seq, t) in enumerate(zip(f["input_ids"], f["token_type_ids"])):
                ids[i, j, :len(seq)], types[i, j, :len(seq)], mask[i, j, :len(seq)] = seq, t, 1
        batch = {"input_ids": torch.from_numpy(ids), "token_type_ids": torch.from_numpy(types),
                 "attention_mask": torch.from_numpy(mask)}
        for key in features[0]:
            if key not in self.SEQ_KEYS:
                batch[key] = torch.tensor([int(f[key]) for f in features], dtype=torch.long)
        return batch


# -- the task ------------------------------------------------------------------------------------------------------
class MultipleChoiceTask(Task):
    """`task=multiple_choice`: the user's own files (or a hub dataset). See conf/task/multiple_choice.yaml for every
    key."""

    head = "multiple_choice"
    feature_state = ("num_choices", "_k_first")

    def __init__(self, train_file: Optional[str] = None, validation_file: Optional[str] = None,
                 test_file: Optional[str] = None, hub: Optional[str] = None, hub_config: Optional[str] = None,
                 hub_splits: Optional[dict] = None, context_column: str = "context", choices_column: str = "choices",
                 choice_columns: Optional[Sequence[str]] = None, choice_prefix_column: Optional[str] = None,
                 label_column: str = "label", id_column: Optional[str] = None, on_bad_row: str = "error",
                 max_seq_length: int = 128, batch_size: int = 16, eval_batch_size: int = 64, num_workers: int = 0,
                 static_shapes: bool = False, limit_train_examples: Optional[int] = None,
                 limit_eval_examples: Optional[int] = None, seed: int = 0, **shared):
        super().__init__(max_seq_length, batch_size, eval_batch_size, num_workers, static_shapes, seed, **shared)
        if on_bad_row not in ("skip", "error"):
            raise TaskDataError(f"data.on_bad_row={on_bad_row!r}: use skip or error")
        if choice_columns is not None and len(choice_columns) < 2:
            raise TaskDataError(f"data.choice_columns={list(choice_columns)}: give one column per choice, at least "
                                f"two")
        self.files = {"train": train_file, "dev": validation_file, "test": test_file}
        self.hub, self.hub_config = hub, hub_config
        self.hub_splits = {"train": "train", "dev": "validation", "test": "test", **dict(hub_splits or {})}
        self._check_sources()
        self.context_column, self.choices_column = context_column, choices_column
        self.choice_columns = list(choice_columns) if choice_columns is not None else None
        self.choice_prefix_column = choice_prefix_column
        self.label_column, self.id_column = label_column, id_column
        self.on_bad_row = on_bad_row
        self.limits = limits_per_split(limit_train_examples, limit_eval_examples)
        self.num_choices: Optional[int] = None
        self._k_first = ""  # where k was first seen, for the error on a row with another number of choices
        self._features: Dict[str, ChoiceTable] = {}

    def _check_sources(self) -> None:
        if self.hub is None and not self.files["train"]:
            raise TaskDataError("no training data: pass data.train_file=PATH (and data.validation_file=PATH), or "
                                "data.hub=NAME for a `datasets` hub dataset (online)")
        if self.hub is None and not self.files["dev"]:
            raise TaskDataError("no validation data: pass data.validation_file=PATH (the best epoch is chosen on it)")

    # -- contract: what the model needs -------------------------------------------------------------------------
    @property
    def main_metric(self) -> str:
        return "acc"

    def prepare(self) -> None:
        """Read and tokenise every split now (k is fixed by the first training row), so that a bad row in a dev or
        test file stops the run before training, not after it."""
        for split in ["train", *self.eval_splits, *self.test_splits()]:
            self.features(split)

    def test_splits(self) -> List[str]:
        if self.files["test"]:
            return ["test"]
        return ["test"] if self.hub and self._hub_has("test") else []

    def set_tokenizer(self, tokenizer) -> None:
        super().set_tokenizer(tokenizer)
        # context and choice trimmed one token at a time from the longer (as run_swag / Google's run_classifier)
        self.tokenizer.enable_truncation(self.max_seq_length, strategy="longest_first")

    def collator(self):
        return MultipleChoiceCollator(self.tokenizer.get_vocab()["[PAD]"],
                                      self.max_seq_length if self.static_shapes else None)

    # -- reading ------------------------------------------------------------------------------------------------
    def _hub_has(self, split: str) -> bool:
        return hub_has_split(self.hub, self.hub_config, self.hub_splits[split])

    def describe(self, split: str) -> str:
        """The file (or hub split) a split is read from, as error messages name it."""
        if self.files.get(split):
            return str(self.files[split])
        return f"{self.hub}[{self.hub_config + '/' if self.hub_config else ''}{self.hub_splits[split]}]"

    def rows(self, split: str) -> Tuple[List[str], Iterator[Tuple[int, dict]]]:
        """(columns, iterator of (line or row number, row dict)): the local file when given, else the hub split."""
        if self.files.get(split):
            return read_rows(Path(self.files[split]))
        columns, rows, _ = read_hub_rows(self.hub, self.hub_config, self.hub_splits[split])
        return columns, rows

    def _unit(self, split: str) -> str:
        """'line' where the number counted is a line of a text file (csv, tsv, JSON lines), else 'row'."""
        path = self.files.get(split)
        if not path:
            return "row"
        suffix = Path(path).suffix.lower()
        if suffix in (".csv", ".tsv", ".jsonl"):
            return "line"
        if suffix == ".json":
            with open(path, encoding="utf-8-sig", errors="replace") as f:
                return "row" if f.read(4096).lstrip().startswith("[") else "line"
        return "row"

    def _layout(self, columns: List[str], where: str, kind: str) -> dict:
        """Which columns hold the context, the choices (one list column, or one column per choice), the prefix,
        the label and the id; names what is missing and the columns found."""
        found = f"columns found: {columns}"
        if self.context_column not in columns:
            raise TaskDataError(f"{where}: no context column {self.context_column!r}; {found}. Set "
                                f"data.context_column=NAME")
        if self.choice_columns is not None:
            missing = [c for c in self.choice_columns if c not in columns]
            if missing:
                raise TaskDataError(f"{where}: no choice column(s) {missing}; {found}. Set data.choice_columns=[...] "
                                    f"to the columns holding the choices")
            choices = list(self.choice_columns)
        elif self.choices_column in columns:
            choices = self.choices_column
        else:
            choices = _numbered_columns(columns)
            if choices is None:
                raise TaskDataError(f"{where}: no choices: expected a column {self.choices_column!r} holding a list, "
                                    f"or one column per choice (ending0, ending1, ... or choice0, ... or option0, "
                                    f"...); {found}. Set data.choices_column=NAME or data.choice_columns=[A,B,...]")
        if self.choice_prefix_column and self.choice_prefix_column not in columns:
            raise TaskDataError(f"{where}: no column {self.choice_prefix_column!r} (data.choice_prefix_column, put "
                                f"before every choice); {found}. Set data.choice_prefix_column=NAME or null")
        labelled = self.label_column in columns
        if kind != "test" and not labelled:
            raise TaskDataError(f"{where}: no label column {self.label_column!r} (the index of the right choice); "
                                f"{found}. Set data.label_column=NAME")
        if self.id_column and self.id_column not in columns:
            raise TaskDataError(f"{where}: no id column {self.id_column!r}; {found}. Set data.id_column=NAME or null")
        id_col = self.id_column or next((c for c in ID_COLUMN_CANDIDATES if c in columns), None)
        return {"choices": choices, "labelled": labelled, "id": id_col}

    def _parse(self, row: dict, layout: dict, kind: str) -> Tuple[str, List[str], Optional[int]]:
        """(context, choices, gold index or None) of one row; raises ValueError with the reason."""
        context = text_value(row.get(self.context_column), self.context_column)
        if not context.strip():
            raise ValueError(f"empty context in column {self.context_column!r}")
        spec = layout["choices"]
        if isinstance(spec, list):
            endings, names = [text_value(row.get(c), c) for c in spec], [f"column {c!r}" for c in spec]
        else:
            endings = _as_list(row.get(spec), spec)
            names = [f"choice {j} of column {spec!r}" for j in range(len(endings))]
        for ending, name in zip(endings, names):
            if not ending.strip():
                raise ValueError(f"empty choice ({name})")
        k = len(endings)
        if k < 2:
            raise ValueError(f"{k} choice(s); a multiple-choice row needs at least two")
        if self.num_choices is not None and k != self.num_choices:
            raise ValueError(f"{k} choices, but the rows before have {self.num_choices} (first: {self._k_first}); "
                             f"every row needs the same number of choices")
        prefix = text_value(row.get(self.choice_prefix_column), self.choice_prefix_column).strip() \
            if self.choice_prefix_column else ""
        choices = [f"{prefix} {e.strip()}" if prefix else e for e in endings]
        gold = None
        if layout["labelled"]:
            gold = _label(row.get(self.label_column), k, unknown_ok=kind == "test")
        return context, choices, gold

    # -- features -----------------------------------------------------------------------------------------------
    def features(self, split: str) -> ChoiceTable:
        if split not in self._features:
            self._features[split] = self.cached_features(split, lambda: self._featurize(split))
        return self._features[split]

    def split_kind(self, split: str) -> str:
        return split if split in ("train", "test") else "dev"

    def _featurize(self, split: str) -> ChoiceTable:
        where, kind, unit = self.describe(split), self.split_kind(split), self._unit(split)
        columns, rows = self.rows(split)
        layout = self._layout(columns, where, kind)
        limit = self.limits.get(kind)
        table: Optional[ChoiceTable] = None
        chunk: List[tuple] = []
        bad, n = [], 0

        def flush():
            pairs = [(context, choice) for _, context, choices, _ in chunk for choice in choices]
            table.add_chunk(self.tokenizer.encode_batch(pairs), [c[0] for c in chunk], [c[3] for c in chunk])
            chunk.clear()

        for row_number, (lineno, row) in enumerate(rows):
            if limit and n >= limit:
                break
            try:
                context, choices, gold = self._parse(row, layout, kind)
            except ValueError as e:
                bad.append(f"{where}: {unit} {lineno}: {e}")
                if self.on_bad_row == "error":
                    raise TaskDataError(f"{bad[-1]}; fix the row, or set data.on_bad_row=skip to skip such rows") \
                        from None
                continue
            if self.num_choices is None:
                self.num_choices, self._k_first = len(choices), f"{where} {unit} {lineno}"
            if table is None:
                table = ChoiceTable(self.num_choices)
            row_id = str(row[layout["id"]]) if layout["id"] and row.get(layout["id"]) is not None else str(row_number)
            chunk.append((row_id, context, choices, gold))
            n += 1
            if len(chunk) >= CHUNK:
                flush()
                self.progress(n)
        if bad:
            log.warning("%s: skipped %d bad row(s), e.g. %s", where, len(bad), "; ".join(bad[:3]))
        if n == 0:
            raise TaskDataError(f"{where}: no usable rows" + ("; leave data.test_file unset to predict nothing"
                                                              if kind == "test" and self.files.get(split) else ""))
        if chunk:
            flush()
        return table.finish()

    # -- contract: scoring and outputs --------------------------------------------------------------------------
    def _ordered_logits(self, outputs: dict) -> np.ndarray:
        return outputs["logits"][np.argsort(outputs["example_index"], kind="stable")]

    def evaluate(self, split: str, outputs: dict) -> dict:
        preds = self._ordered_logits(outputs).argmax(-1)
        return {"acc": accuracy(preds, self.features(split).labels)}

    def check_learned(self, split: str, outputs: dict) -> dict:
        logits = self._ordered_logits(outputs)
        names = [f"choice {j}" for j in range(logits.shape[-1])]
        return learning_check(logits.argmax(-1), self.features(split).labels, "single_label", names, "acc")

    def prediction_rows(self, split: str, outputs: dict) -> List[dict]:
        """One dict per input row, in input order: id, the chosen index (`label`), the k probabilities, and the gold
        index (`gold`) when known."""
        probs = softmax(self._ordered_logits(outputs).astype(np.float64))
        rows = [{"label": int(p.argmax()), "probabilities": [round(float(q), 6) for q in p]} for p in probs]
        return with_row_ids(rows, self.features(split))

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        return write_jsonl_predictions(self.prediction_rows(split, outputs), out_dir, split)

    def results_info(self) -> dict:
        return {"num_choices": self.num_choices}

    def checkpoint_info(self) -> dict:
        """The column layout too, so `predict.py` reads files in the training data's layout (SWAG's CSV)."""
        return {"max_seq_length": self.max_seq_length, "columns": {
            "context_column": self.context_column, "choices_column": self.choices_column,
            "choice_columns": self.choice_columns, "choice_prefix_column": self.choice_prefix_column,
            "label_column": self.label_column, "id_column": self.id_column}}

    def dataset_info(self) -> dict:
        return {"name": self.hub, "type": self.hub, "config": self.hub_config} if self.hub else {}

    @classmethod
    def prediction_examples(cls, columns: List[str], rows, where: str, layout: Optional[dict] = None):
        """(ids, [{"context", "choices"}]) from the rows of an input file read in a layout saved by
        `checkpoint_info` (default: a `context` column and a `choices` list or ending0.. columns)."""
        reader = cls(train_file=where, validation_file=where, **(layout or {}))  # reads nothing: its column rules
        spec = reader._layout(columns, where, "test")
        ids, examples = [], []
        for n, (lineno, row) in enumerate(rows):
            try:
                context, choices, _ = reader._parse(row, spec, "test")
            except ValueError as e:
                raise TaskDataError(f"{where}: line {lineno}: {e}") from None
            ids.append(str(row[spec["id"]]) if spec["id"] and row.get(spec["id"]) is not None else str(n))
            examples.append({"context": context, "choices": choices})
        return ids, examples


class SwagTask(MultipleChoiceTask):
    """`task=swag`: SWAG's CSVs (`train.csv`, `val.csv`, optional `test.csv`) from data_dir, or `allenai/swag`
    (config `regular`) from the hub when data_dir does not exist and the hub is reachable. The context is `sent1`;
    each choice is `sent2 + " " + endingN`."""

    FILES = {"train": "train.csv", "dev": "val.csv", "test": "test.csv"}

    def __init__(self, data_dir: str = "data/swag", source: str = "auto", hub: str = "allenai/swag",
                 hub_config: Optional[str] = "regular", on_bad_row: str = "error", max_seq_length: int = 128,
                 batch_size: int = 16, eval_batch_size: int = 64, num_workers: int = 0, static_shapes: bool = False,
                 limit_train_examples: Optional[int] = None, limit_eval_examples: Optional[int] = None,
                 seed: int = 0, **shared):
        if source not in ("auto", "local", "hub"):
            raise TaskDataError(f"data.source={source!r}: use auto (data_dir when it exists, else the hub), local or "
                                f"hub")
        self.data_dir, self.source = Path(data_dir), source
        use_hub = source == "hub" or (source == "auto" and not self.data_dir.is_dir())
        files = {} if use_hub else {s: str(self.data_dir / f) for s, f in self.FILES.items()}
        if not use_hub and not (self.data_dir / self.FILES["test"]).is_file():
            files["test"] = None  # test.csv is optional
        super().__init__(train_file=files.get("train"), validation_file=files.get("dev"),
                         test_file=files.get("test"), hub=hub if use_hub else None, hub_config=hub_config,
                         context_column="sent1", choice_prefix_column="sent2", label_column="label",
                         on_bad_row=on_bad_row, max_seq_length=max_seq_length, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, num_workers=num_workers, static_shapes=static_shapes,
                         limit_train_examples=limit_train_examples, limit_eval_examples=limit_eval_examples,
                         seed=seed, **shared)

    def dataset_info(self) -> dict:
        return {"name": "SWAG", "type": "allenai/swag", "config": "regular", "language": "en"}

    def _check_sources(self) -> None:
        if self.hub is None:
            for split in ("train", "dev"):
                path = Path(self.files[split])
                if not path.is_file():
                    raise TaskDataError(f"SWAG: no {path.name} in {self.data_dir} (looked for {path}); data_dir must "
                                        f"hold SWAG's train.csv and val.csv (test.csv optional)")

    def prepare(self) -> None:
        if self.hub is not None:
            from bert_pl.io.hub import hub_reachable

            if not hub_reachable():
                where = "data.source=hub" if self.source == "hub" else f"no folder {self.data_dir}"
                raise TaskDataError(f"SWAG: {where} and the Hugging Face hub is not reachable (offline); pass "
                                    f"data_dir=FOLDER holding SWAG's train.csv and val.csv (test.csv optional)")
            if not self._features:
                log.info("SWAG: %s; reading %s (%s) from the hub", "data.source=hub" if self.source == "hub" else
                         f"no folder {self.data_dir}", self.hub, self.hub_config)
        super().prepare()

    def test_splits(self) -> List[str]:
        if self.hub is not None:
            return ["test"] if self._hub_has("test") else []
        return ["test"] if self.files["test"] else []


# -- helpers -------------------------------------------------------------------------------------------------------
def _numbered_columns(columns: List[str]) -> Optional[List[str]]:
    """ending0, ending1, ... (or choice/option, from 0 or 1), when at least two are there, in number order."""
    for prefix in CHOICE_COLUMN_PREFIXES:
        numbered = {int(m.group(1)): c for c in columns for m in [re.fullmatch(rf"{prefix}(\d+)", c)] if m}
        for start in (0, 1):
            run = []
            while start + len(run) in numbered:
                run.append(numbered[start + len(run)])
            if len(run) >= 2:
                return run
    return None


def _as_list(value, column: str) -> List[str]:
    """A list-valued cell: a list (JSON, parquet, hub) or a JSON array in a csv/tsv cell."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"column {column!r} is not a valid JSON array ({e.msg})") from None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"column {column!r} holds {type(value).__name__} {str(value)[:40]!r}, not a list of choices "
                         f"(in a csv/tsv file: a JSON array such as [\"first\", \"second\"])")
    return [text_value(v, f"{column}[{j}]") for j, v in enumerate(value)]


def _label(raw, k: int, unknown_ok: bool) -> Optional[int]:
    """The gold index 0..k-1; None for an unknown label where allowed (test: empty, or -1 as the hub's test split)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if unknown_ok:
            return None
        raise ValueError(f"the label is empty; it must be the index of the right choice, 0..{k - 1}")
    value = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, (int, np.integer)):
        value = int(raw)
    elif isinstance(raw, (float, np.floating)) and float(raw).is_integer():
        value = int(raw)
    elif isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+(\.0*)?\s*", raw):
        value = int(float(raw))
    if value is None:
        raise ValueError(f"label {raw!r} is not an integer; it must be the index of the right choice, 0..{k - 1}")
    if value == -1 and unknown_ok:
        return None
    if not 0 <= value < k:
        raise ValueError(f"label {value} is out of range: the row has {k} choices, so the label must be 0..{k - 1}")
    return value


class ChoicePredictor(Predictor):
    """Prediction with a multiple-choice head: {"context", "choices": [...]} per input -> {"label": the chosen
    index, "probabilities": [...]}. Files: rows in the column layout the model was trained on (e.g. SWAG's
    sent1/sent2/ending0..), else a `context` column with a `choices` list or ending0.. columns; text lines are
    context<TAB>choice 1<TAB>choice 2..."""

    line_format = "context<TAB>choice 1<TAB>choice 2... per line"
    onnx_input_axes = {0: "batch", 1: "choices", 2: "sequence"}
    example_inputs = [{"context": "She opened the umbrella", "choices": ["because it rained.", "and it flew.",
                                                                        "to eat it."]},
                      {"context": "He missed the bus,", "choices": ["so he walked.", "so he flew home."]}]

    def from_fields(self, fields: List[str], where: str):
        if len(fields) < 3:
            raise PredictError(f"{where}: a multiple-choice model takes 'context<TAB>choice 1<TAB>choice 2...' per line")
        return {"context": fields[0], "choices": fields[1:]}

    def text_columns(self, columns: List[str]) -> Optional[List[str]]:
        return ["context", "choices"]

    def from_row(self, row: dict, columns: List[str], where: str):
        context = super().from_row(row, columns[:1], where)
        choices = row[columns[1]]
        if isinstance(choices, str):
            try:
                choices = json.loads(choices)
            except ValueError:
                raise PredictError(f"{where}: {columns[1]!r} must be a list of choices (a JSON array in a csv/tsv "
                                   f"cell)") from None
        return {"context": context, "choices": choices}  # checked by predict

    def read_rows(self, path: str, columns: List[str], rows, text_columns, id_column):
        if text_columns:  # given: CONTEXT and a CHOICES list column
            return super().read_rows(path, columns, rows, text_columns, id_column)
        rows = list(rows)
        saved = self.runtime.task_info.get("columns")
        error = None
        for layout in ([saved] if saved else []) + [None]:  # None: the default layout
            try:
                return MultipleChoiceTask.prediction_examples(columns, rows, str(path), layout)
            except TaskDataError as e:
                error = error or e
        raise PredictError(f"{error}; or pass text_columns=[CONTEXT,CHOICES_LIST]") from None

    def check(self, inputs: list) -> None:
        for n, x in enumerate(inputs, 1):
            if not isinstance(x, dict) or not isinstance(x.get("context"), str) or not x["context"].strip() \
                    or not isinstance(x.get("choices"), (list, tuple)) or not x["choices"] \
                    or not all(isinstance(c, (str, int, float)) for c in x["choices"]):
                raise PredictError(f"input {n}: a multiple-choice model takes {{'context': ..., 'choices': [...]}}"
                                   f" (a text and a non-empty list of texts)")

    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        rt = self.runtime
        enc = iter(rt.encode([(x["context"], str(c)) for x in inputs for c in x["choices"]]))
        feats = []
        for x in inputs:
            parts = [next(enc) for _ in x["choices"]]
            feats.append({"input_ids": [e.ids for e in parts], "token_type_ids": [e.type_ids for e in parts]})
        results: List[Optional[dict]] = [None] * len(inputs)
        for k in sorted({len(x["choices"]) for x in inputs}):  # a batch holds one number of choices
            idx = [i for i, x in enumerate(inputs) if len(x["choices"]) == k]
            outs = rt.run([feats[i] for i in idx], progress, MultipleChoiceCollator(rt.vocab["[PAD]"]))
            for i, o in zip(idx, outs):
                p = softmax(o["logits"].astype(np.float64))
                results[i] = {"label": int(p.argmax()), "probabilities": [round(float(q), 6) for q in p]}
        return results

    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        return ["logits"]

    @classmethod
    def onnx_output_axes(cls, name: str) -> Dict[int, str]:
        return {0: "batch", 1: "choices"}
