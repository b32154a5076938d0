"""GLUE as a preset of `text_classification`: a table of the nine tasks (+ AX) with their TSV layouts, label sets,
main metrics, the `datasets` hub version and submission file names. `GlueDataModule` is `TextClassificationTask`
with GLUE's readers (quirks kept: CoLA's header-less files, MRPC's BOM, quotes as text, MNLI matched/mismatched,
AX predicted by the MNLI model) and GLUE's submission files; features, training, metrics and prediction files are
the same code."""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bert_pl.io.atomic import atomic_write_text
from bert_pl.tasks.base import TaskDataError
from bert_pl.tasks.classification import TextClassificationTask
from bert_pl.tasks.readers import refuse_repeated_columns

log = logging.getLogger(__name__)


class GlueDataError(TaskDataError):
    pass


@dataclass(frozen=True)
class GlueTask:
    name: str
    folder: str
    text_columns: Tuple[str, ...]        # TSV header names of the one or two text fields
    label_column: Optional[str]          # TSV header name; CoLA train/dev have no header (positions below)
    labels: Optional[Tuple[str, ...]]    # None: regression
    main_metric: str                     # picks the best epoch; every task reports all metrics of its kind
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
    GlueTask("cola", "CoLA", ("sentence",), "label", _BIN, "mcc", test={"test": ("test.tsv", "CoLA.tsv")},
             hub_config="cola", hub_text_columns=("sentence",), headerless=(3, 1)),
    GlueTask("sst2", "SST-2", ("sentence",), "label", _BIN, "acc", test={"test": ("test.tsv", "SST-2.tsv")},
             hub_config="sst2", hub_text_columns=("sentence",)),
    # MRPC/QQP pick the best epoch by GLUE's own score, mean(acc, F1): by F1 alone, a model that answers
    # "paraphrase" to every pair (F1 0.81 on MRPC dev) beats most real ones; the paper reports F1.
    GlueTask("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", _BIN, "acc_and_f1",
             test={"test": ("test.tsv", "MRPC.tsv")}, hub_config="mrpc", hub_text_columns=("sentence1", "sentence2")),
    GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, "pearson",
             test={"test": ("test.tsv", "STS-B.tsv")}, hub_config="stsb", hub_text_columns=("sentence1", "sentence2")),
    GlueTask("qqp", "QQP", ("question1", "question2"), "is_duplicate", _BIN, "acc_and_f1",
             test={"test": ("test.tsv", "QQP.tsv")}, hub_config="qqp", hub_text_columns=("question1", "question2")),
    GlueTask("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label", ("contradiction", "entailment", "neutral"),
             "acc", dev={"dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
             test={"test_matched": ("test_matched.tsv", "MNLI-m.tsv"),
                   "test_mismatched": ("test_mismatched.tsv", "MNLI-mm.tsv"),
                   "ax": ("../diagnostic/diagnostic.tsv", "AX.tsv")},
             hub_config="mnli", hub_text_columns=("premise", "hypothesis"),
             hub_splits={"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched",
                         "test_matched": "test_matched", "test_mismatched": "test_mismatched"}),
    GlueTask("qnli", "QNLI", ("question", "sentence"), "label", _NLI2, "acc",
             test={"test": ("test.tsv", "QNLI.tsv")}, hub_config="qnli", hub_text_columns=("question", "sentence")),
    GlueTask("rte", "RTE", ("sentence1", "sentence2"), "label", _NLI2, "acc",
             test={"test": ("test.tsv", "RTE.tsv")}, hub_config="rte", hub_text_columns=("sentence1", "sentence2")),
    GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), "label", _BIN, "acc",
             test={"test": ("test.tsv", "WNLI.tsv")}, hub_config="wnli", hub_text_columns=("sentence1", "sentence2")),
    # AX has no training data: it is predicted by the MNLI model (task=mnli writes AX.tsv).
    GlueTask("ax", "diagnostic", ("sentence1", "sentence2"), None, ("contradiction", "entailment", "neutral"),
             "acc", dev={}, test={"ax": ("diagnostic.tsv", "AX.tsv")}, hub_config="ax",
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
    if not lines:
        raise GlueDataError(f"{path}: the file is empty; expected GLUE's {task.folder} {path.name} with "
                            f"{'a header and ' if not task.headerless else ''}one example per line")
    labelled = kind != "test"
    if task.headerless and labelled:
        text_idx, label_idx = [task.headerless[0]], task.headerless[1]
        width, start = None, 0
    else:
        header = lines[0].rstrip("\r").split("\t")
        refuse_repeated_columns(path, header)
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

    from bert_pl.io.hub import require_online

    require_online(f"GLUE {task.name} from nyu-mll/glue", "data_dir=/path/to/glue_data (GLUE's TSV folders)",
                   repo_id="nyu-mll/glue", repo_type="dataset")
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


class GlueDataModule(TextClassificationTask):
    """One GLUE task: train on train, evaluate on dev (MNLI: matched + mismatched), predict test (+ AX for MNLI)."""

    def __init__(self, task: str, data_dir: str = "data/glue", source: str = "auto", max_seq_length: int = 128,
                 batch_size: int = 32, eval_batch_size: int = 64, num_workers: int = 0, on_bad_row: str = "skip",
                 static_shapes: bool = False, limit_train_examples: Optional[int] = None,
                 limit_eval_examples: Optional[int] = None, seed: int = 0, main_metric: Optional[str] = None,
                 **shared):
        self.task = get_task(task)
        if self.task.name == "ax":
            raise GlueDataError("AX has no training data: it is predicted with the MNLI model; run task=mnli "
                                "(which writes AX.tsv when data_dir/diagnostic/diagnostic.tsv exists)")
        if source not in ("auto", "local", "hub"):
            raise GlueDataError(f"data.source={source!r}: use auto, local or hub")
        n_text = len(self.task.text_columns)
        super().__init__(train_file="<glue>", validation_file="<glue>", text_columns=["text_a", "text_b"][:n_text],
                         label_column="label", id_column="id", labels=self.task.labels,
                         label_type="float" if self.task.is_regression else "str",
                         main_metric=main_metric or self.task.main_metric, on_bad_row=on_bad_row,
                         max_seq_length=max_seq_length, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, static_shapes=static_shapes,
                         limit_train_examples=limit_train_examples, limit_eval_examples=limit_eval_examples,
                         seed=seed, **shared)
        self.data_dir, self.source = Path(data_dir), source
        self.eval_splits = list(self.task.dev)
        self.examples: Dict[str, List[Example]] = {}

    # -- GLUE's readers feed the shared featurisation -----------------------------------------------------------
    def split_kind(self, split: str) -> str:
        return "train" if split == "train" else "test" if split in self.task.test else "dev"

    def _use_hub(self) -> bool:
        if self.source == "auto":
            return not (self.data_dir / self.task.folder).is_dir()
        return self.source == "hub"

    def _file(self, split: str) -> str:
        return self.task.train_file if split == "train" else self.task.dev.get(split) or self.task.test[split][0]

    def _describe(self, split: str) -> str:
        if self._use_hub():
            return f"nyu-mll/glue {self.task.hub_config} {split}"
        return str(self.data_dir / self.task.folder / self._file(split))

    def read(self, split: str) -> List[Example]:
        if split in self.examples:
            return self.examples[split]
        kind = self.split_kind(split)
        if self._use_hub():
            if self.source == "auto":
                from bert_pl.io.hub import hub_reachable

                if not hub_reachable():
                    from bert_pl.io.missing import why_missing

                    folder = self.data_dir / self.task.folder
                    raise GlueDataError(f"{self.task.folder}: the folder {folder} {why_missing(folder)} and the hub "
                                        f"is offline; pass data_dir=/path/to/glue_data (GLUE's TSV layout)")
            examples = read_hub(self.task, split)
        else:
            examples = read_tsv(self.data_dir / self.task.folder / self._file(split), self.task, kind,
                                self.on_bad_row)
        if not examples and kind != "test":
            raise GlueDataError(f"{self.task.folder} {split}: no usable rows")
        self.examples[split] = examples
        return examples

    def source_files(self, split: str) -> Optional[List[Path]]:
        return None if self._use_hub() else [self.data_dir / self.task.folder / self._file(split)]

    def rows(self, split: str):
        columns = ["id", *self.text_columns, "label"]
        examples = self.read(split)
        return columns, ((i + 1, {"id": e.guid, **dict(zip(self.text_columns, e.texts)), "label": e.label})
                         for i, e in enumerate(examples))

    def test_splits(self) -> List[str]:
        """Test splits whose files exist (AX is optional)."""
        if self._use_hub():
            return [s for s in self.task.test if s != "ax" or self.source == "hub"]
        return [s for s, (f, _) in self.task.test.items() if (self.data_dir / self.task.folder / f).is_file()]

    # -- GLUE's submission files --------------------------------------------------------------------------------
    def dataset_info(self) -> dict:
        return {"name": f"GLUE {self.task.name.upper()}", "type": "nyu-mll/glue", "config": self.task.name,
                "language": "en"}

    def label_names(self, preds) -> List[str]:
        if self.task.is_regression:
            return [f"{min(5.0, max(0.0, float(p))):.3f}" for p in preds]
        return [self.task.labels[int(p)] for p in preds]

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        """predictions_<split>.jsonl (as every classification task); for a test split also the GLUE submission
        file `submission/<NAME>.tsv` (`index<TAB>prediction`, label names as in train.tsv), whose path is returned."""
        path = super().write_predictions(split, outputs, out_dir, submission)
        if not submission:
            return path
        preds = self.label_names(self.predictions(self._ordered_logits(outputs)))
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "prediction"])
        for e, p in zip(self.read(split), preds):
            w.writerow([e.guid, p])
        sub = out_dir / "submission" / self.task.test[split][1]
        sub.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(sub, buf.getvalue())
        return sub
