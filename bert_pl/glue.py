"""GLUE: one registry for the nine tasks (+ AX), their TSV layouts, the `datasets` hub version, metrics and
submission files; one LightningDataModule for all of them."""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from .callbacks import atomic_write_text
from .errors import UserError
from .metrics import METRICS

log = logging.getLogger(__name__)


class GlueDataError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class GlueTask:
    name: str
    folder: str
    text_columns: Tuple[str, ...]        # TSV header names of the one or two text fields
    label_column: Optional[str]          # TSV header name; CoLA train/dev have no header (positions below)
    labels: Optional[Tuple[str, ...]]    # None: regression
    metric: str                          # key of metrics.METRICS
    main_metric: str
    dev: Dict[str, str] = field(default_factory=lambda: {"dev": "dev.tsv"})
    test: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # split -> (file, submission file name)
    hub_config: str = ""
    hub_text_columns: Tuple[str, ...] = ()
    hub_splits: Dict[str, str] = field(default_factory=dict)  # our split -> hub split
    headerless: Optional[Tuple[int, int]] = None  # (text, label) column positions of header-less train/dev files
    train_file: str = "train.tsv"

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


_BIN = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
TASKS: Dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", ("sentence",), "label", _BIN, "mcc", "mcc", test={"test": ("test.tsv", "CoLA.tsv")},
             hub_config="cola", hub_text_columns=("sentence",), headerless=(3, 1)),
    GlueTask("sst2", "SST-2", ("sentence",), "label", _BIN, "acc", "acc", test={"test": ("test.tsv", "SST-2.tsv")},
             hub_config="sst2", hub_text_columns=("sentence",)),
    GlueTask("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", _BIN, "acc_f1", "f1",
             test={"test": ("test.tsv", "MRPC.tsv")}, hub_config="mrpc", hub_text_columns=("sentence1", "sentence2")),
    GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, "pearson_spearman", "pearson",
             test={"test": ("test.tsv", "STS-B.tsv")}, hub_config="stsb", hub_text_columns=("sentence1", "sentence2")),
    GlueTask("qqp", "QQP", ("question1", "question2"), "is_duplicate", _BIN, "acc_f1", "f1",
             test={"test": ("test.tsv", "QQP.tsv")}, hub_config="qqp", hub_text_columns=("question1", "question2")),
    GlueTask("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label", ("contradiction", "entailment", "neutral"),
             "acc", "acc", dev={"dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
             test={"test_matched": ("test_matched.tsv", "MNLI-m.tsv"),
                   "test_mismatched": ("test_mismatched.tsv", "MNLI-mm.tsv"),
                   "ax": ("../diagnostic/diagnostic.tsv", "AX.tsv")},
             hub_config="mnli", hub_text_columns=("premise", "hypothesis"),
             hub_splits={"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched",
                         "test_matched": "test_matched", "test_mismatched": "test_mismatched"}),
    GlueTask("qnli", "QNLI", ("question", "sentence"), "label", _NLI2, "acc", "acc",
             test={"test": ("test.tsv", "QNLI.tsv")}, hub_config="qnli", hub_text_columns=("question", "sentence")),
    GlueTask("rte", "RTE", ("sentence1", "sentence2"), "label", _NLI2, "acc", "acc",
             test={"test": ("test.tsv", "RTE.tsv")}, hub_config="rte", hub_text_columns=("sentence1", "sentence2")),
    GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), "label", _BIN, "acc", "acc",
             test={"test": ("test.tsv", "WNLI.tsv")}, hub_config="wnli", hub_text_columns=("sentence1", "sentence2")),
    # AX has no training data: it is predicted by the MNLI model (task=mnli writes AX.tsv).
    GlueTask("ax", "diagnostic", ("sentence1", "sentence2"), None, ("contradiction", "entailment", "neutral"),
             "acc", "acc", dev={}, test={"ax": ("diagnostic.tsv", "AX.tsv")}, hub_config="ax",
             hub_text_columns=("premise", "hypothesis"), train_file=""),
]}


def get_task(name: str) -> GlueTask:
    key = name.lower().replace("-", "")
    if key not in TASKS:
        raise GlueDataError(f"unknown GLUE task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[key]


@dataclass
class Example:
    guid: str          # test: the `index`/`id` column, written back into the submission file
    texts: Tuple[str, ...]
    label: Optional[str]


def read_tsv(path: Path, task: GlueTask, kind: str, on_bad_row: str = "skip") -> List[Example]:
    """kind: train | dev | test. Rows are split on tabs only: quotes are text (as Google's run_classifier)."""
    if not path.is_file():
        raise GlueDataError(f"{task.folder}: missing {path.name}; looked for {path}. Put the GLUE folders under "
                            f"data_dir (data_dir/{task.folder}/{path.name}) or use data.source=hub when online")
    with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig drops MRPC's BOM
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    labelled = kind != "test"
    if task.headerless and labelled:
        text_idx, label_idx = [task.headerless[0]], task.headerless[1]
        width, start = None, 0
    else:
        header = lines[0].rstrip("\r").split("\t")
        need = list(task.text_columns) + ([task.label_column] if labelled else [])
        missing = [c for c in need if c not in header]
        if missing:
            raise GlueDataError(f"{path}: header lacks column(s) {missing}; found {header}. Is this the "
                                f"{task.folder} file in GLUE's original layout?")
        text_idx = [header.index(c) for c in task.text_columns]
        label_idx = header.index(task.label_column) if labelled else None
        id_idx = header.index("index") if "index" in header else header.index("id") if "id" in header else None
        width, start = len(header), 1
    examples, bad = [], []
    for lineno, line in enumerate(lines[start:], start + 1):
        row = line.rstrip("\r").split("\t")
        problem = None
        if width is not None and len(row) != width:
            problem = f"{len(row)} columns, expected {width}"
        elif width is None and len(row) <= max(text_idx + [label_idx]):
            problem = f"{len(row)} columns, expected {max(text_idx + [label_idx]) + 1}"
        else:
            label = row[label_idx].strip() if labelled else None
            if labelled and task.labels is not None and label not in task.labels:
                problem = f"label {label!r} is not one of {list(task.labels)}"
            elif labelled and task.labels is None:
                try:
                    float(label)
                except ValueError:
                    problem = f"score {label!r} is not a number"
        if problem:
            bad.append(f"{path}:{lineno}: {problem}")
            if on_bad_row == "error":
                raise GlueDataError(f"{bad[-1]}; fix the row, or set data.on_bad_row=skip to skip such rows")
            continue
        guid = row[id_idx] if (width is not None and not labelled and id_idx is not None) else str(lineno - start - 1)
        examples.append(Example(guid, tuple(row[i] for i in text_idx), label))
    if bad:
        log.warning("%s: skipped %d malformed row(s), e.g. %s", path, len(bad), "; ".join(bad[:3]))
    return examples


def read_hub(task: GlueTask, split: str) -> List[Example]:
    import datasets

    from .hub import require_online

    require_online(f"GLUE {task.name} from nyu-mll/glue", "data_dir=/path/to/glue_data (GLUE's TSV folders)")
    config, hub_split = task.hub_config, task.hub_splits.get(split, {"dev": "validation"}.get(split, split))
    if split == "ax":  # the diagnostic set is its own config on the hub
        config, hub_split = "ax", "test"
    ds = datasets.load_dataset("nyu-mll/glue", config, split=hub_split)
    names = ds.features["label"].names if hasattr(ds.features["label"], "names") else None
    out = []
    for row in ds:
        label = None
        if row["label"] is not None and row["label"] >= 0:
            label = str(float(row["label"])) if task.is_regression else (
                str(row["label"]) if task.labels == _BIN else names[row["label"]])
        out.append(Example(str(row["idx"]), tuple(row[c] for c in task.hub_text_columns), label))
    return out


class PaddingCollator:
    """Pads token sequences per batch (to a multiple of 8; or to a fixed width for XLA) and stacks the rest."""

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
            if key not in self.SEQ_KEYS:
                values = [f[key] for f in features]
                dtype = torch.float32 if isinstance(values[0], float) else torch.long
                batch[key] = torch.tensor(values, dtype=dtype)
        return batch


def padded_loader(feats: List[dict], dm, shuffle: bool, batch_size: int) -> DataLoader:
    """The fine-tuning loader (GLUE and SQuAD): seeded shuffling for training, per-batch padding (fixed width and
    drop_last with `static_shapes`, for XLA). `dm` supplies tokenizer, seed, num_workers, max_seq_length."""
    collate = PaddingCollator(dm.tokenizer.get_vocab()["[PAD]"], dm.max_seq_length if dm.static_shapes else None)
    g = torch.Generator().manual_seed(dm.seed)
    return DataLoader(feats, batch_size=batch_size, shuffle=shuffle, generator=g if shuffle else None,
                      collate_fn=collate, num_workers=dm.num_workers, drop_last=shuffle and dm.static_shapes)


class GlueDataModule(L.LightningDataModule):
    """Train on train, evaluate on dev (MNLI: matched + mismatched), predict test (+ AX for MNLI)."""

    def __init__(self, task: str, data_dir: str = "data/glue", source: str = "auto", max_seq_length: int = 128,
                 batch_size: int = 32, eval_batch_size: int = 64, num_workers: int = 0, on_bad_row: str = "skip",
                 static_shapes: bool = False, limit_train_examples: Optional[int] = None,
                 limit_eval_examples: Optional[int] = None, seed: int = 0):
        super().__init__()
        self.task = get_task(task)
        if self.task.name == "ax":
            raise GlueDataError("AX has no training data: it is predicted with the MNLI model; run task=mnli "
                                "(which writes AX.tsv when data_dir/diagnostic/diagnostic.tsv exists)")
        if source not in ("auto", "local", "hub"):
            raise GlueDataError(f"data.source={source!r}: use auto, local or hub")
        if on_bad_row not in ("skip", "error"):
            raise GlueDataError(f"data.on_bad_row={on_bad_row!r}: use skip or error")
        self.data_dir, self.source = Path(data_dir), source
        self.max_seq_length, self.batch_size, self.eval_batch_size = max_seq_length, batch_size, eval_batch_size
        self.num_workers, self.on_bad_row, self.static_shapes = num_workers, on_bad_row, static_shapes
        self.limit_train_examples, self.limit_eval_examples, self.seed = (limit_train_examples, limit_eval_examples,
                                                                         seed)
        self.tokenizer = None
        self.examples: Dict[str, List[Example]] = {}
        self.features: Dict[str, List[dict]] = {}

    # -- what the fine-tuning module needs to know -----------------------------------------------------------------
    head = "classification"

    @property
    def num_labels(self) -> int:
        return self.task.num_labels

    @property
    def labels(self):
        return list(self.task.labels) if self.task.labels else ["score"]

    @property
    def main_metric(self) -> str:
        return self.task.main_metric

    # -- reading ------------------------------------------------------------------------------------------------
    def _use_hub(self) -> bool:
        if self.source == "auto":
            return not (self.data_dir / self.task.folder).is_dir()
        return self.source == "hub"

    def read(self, split: str) -> List[Example]:
        if split in self.examples:
            return self.examples[split]
        kind = "train" if split == "train" else "test" if split in self.task.test else "dev"
        if self._use_hub():
            if self.source == "auto":
                from .hub import hub_reachable

                if not hub_reachable():
                    raise GlueDataError(f"{self.task.folder}: no folder {self.data_dir / self.task.folder} and the hub "
                                        f"is offline; pass data_dir=/path/to/glue_data (GLUE's TSV layout)")
            examples = read_hub(self.task, split)
        else:
            name = self.task.train_file if split == "train" else self.task.dev.get(split) or self.task.test[split][0]
            examples = read_tsv(self.data_dir / self.task.folder / name, self.task, kind, self.on_bad_row)
        # test splits are never cut: a submission file must answer every row
        limit = {"train": self.limit_train_examples, "dev": self.limit_eval_examples}.get(kind)
        if limit:
            examples = examples[:limit]
        if not examples and kind != "test":
            raise GlueDataError(f"{self.task.folder} {split}: no usable rows")
        self.examples[split] = examples
        return examples

    def test_splits(self) -> List[str]:
        """Test splits whose files exist (AX is optional)."""
        if self._use_hub():
            return [s for s in self.task.test if s != "ax" or self.source == "hub"]
        return [s for s, (f, _) in self.task.test.items() if (self.data_dir / self.task.folder / f).is_file()]

    # -- features -----------------------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tokenizer.to_str())  # own copy: truncation settings are per tokenizer
        tok.enable_truncation(self.max_seq_length, strategy="longest_first")  # trims the longer segment first
        tok.no_padding()
        self.tokenizer = tok

    def featurize(self, split: str) -> List[dict]:
        if split not in self.features:
            examples = self.read(split)
            if len(self.task.text_columns) == 2:
                enc = self.tokenizer.encode_batch([(e.texts[0], e.texts[1]) for e in examples])
            else:
                enc = self.tokenizer.encode_batch([e.texts[0] for e in examples])
            feats = []
            for i, (e, x) in enumerate(zip(examples, enc)):
                f = {"input_ids": x.ids, "token_type_ids": x.type_ids, "example_index": i}
                if e.label is not None:
                    f["labels"] = float(e.label) if self.task.is_regression else self.task.labels.index(e.label)
                feats.append(f)
            self.features[split] = feats
        return self.features[split]

    def setup(self, stage: Optional[str] = None):
        if self.tokenizer is None:
            raise RuntimeError("GlueDataModule.set_tokenizer must be called before setup")
        if stage in (None, "fit"):
            self.featurize("train")
        if stage in (None, "fit", "validate"):
            for s in self.task.dev:
                self.featurize(s)

    def _loader(self, feats, shuffle: bool, bs: int) -> DataLoader:
        return padded_loader(feats, self, shuffle, bs)

    def train_dataloader(self):
        return self._loader(self.featurize("train"), True, self.batch_size)

    @property
    def eval_splits(self) -> List[str]:
        return list(self.task.dev)

    def val_dataloader(self):
        return [self._loader(self.featurize(s), False, self.eval_batch_size) for s in self.eval_splits]

    def predict_loader(self, split: str) -> DataLoader:
        return self._loader(self.featurize(split), False, self.eval_batch_size)

    # -- evaluation and outputs ---------------------------------------------------------------------------------
    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits[:, 0] if self.task.is_regression else logits.argmax(-1)

    def evaluate(self, split: str, outputs: dict) -> dict:
        """outputs: {'logits': (N, C), 'example_index': (N,)} gathered over the split."""
        order = np.argsort(outputs["example_index"])
        preds = self.predictions(outputs["logits"][order])
        feats = self.featurize(split)
        labels = np.asarray([f["labels"] for f in feats])
        return METRICS[self.task.metric](preds, labels)

    def label_names(self, preds: np.ndarray) -> List[str]:
        if self.task.is_regression:
            return [f"{min(5.0, max(0.0, float(p))):.3f}" for p in preds]
        return [self.task.labels[int(p)] for p in preds]

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        """GLUE submission file (`index<TAB>prediction`, label names as in train.tsv) or dev predictions."""
        order = np.argsort(outputs["example_index"])
        preds = self.label_names(self.predictions(outputs["logits"][order]))
        examples = self.read(split)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = self.task.test[split][1] if submission else f"dev_predictions_{split}.tsv"
        path = out_dir / name
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "prediction"] if submission else ["index", "prediction", "label"])
        for i, (e, p) in enumerate(zip(examples, preds)):
            w.writerow([e.guid if submission else i, p] + ([] if submission else [e.label]))
        atomic_write_text(path, buf.getvalue())
        return path
