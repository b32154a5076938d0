"""Token classification (named entities, chunking, POS) as the BERT paper's NER setup (section 5.3): each word's
first WordPiece gets the word's tag, one linear layer on the final hidden states predicts it, and the continuation
pieces are ignored (-100) in the loss and in scoring.

    python finetune.py task=conll2003 pretrained=PATH data_dir=DIR
    python finetune.py task=token_classification pretrained=PATH data.train_file=train.conll \
        data.validation_file=dev.conll

Files: CoNLL format (any extension but .json/.jsonl): whitespace-separated columns, the token first and the tag in
the last column (or `data.tag_column`), a blank line between sentences, `-DOCSTART-` lines between documents; or
JSON lines (.jsonl, or .json holding lines or one array) with {"tokens": [...], "tags": [...]} per sentence. Tags are
read as given (IOB1, IOB2/BIO, BIOES, ...) and scored by `conlleval`'s rules (`bert_pl.tasks.conlleval`); the label
set is the sorted set of training tags.

A sentence longer than max_seq_length - 2 pieces is cut into windows that start every `doc_stride` pieces, as
SQuAD's contexts; in training every window is an example, and each word is predicted once, from the window where
its first piece has the most context (`run_squad.py`'s max-context rule).

Predictions: `predictions_<split>.txt` in the format `conlleval` reads (`token gold predicted`; `token predicted`
for an unlabelled test file), sentences and `-DOCSTART-` lines kept.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bert_pl.io.atomic import atomic_write_text
from bert_pl.tasks import conlleval
from bert_pl.tasks.base import IGNORE_INDEX, Task, TaskDataError, limits_per_split
from bert_pl.tasks.predictor import PredictError, Predictor
from bert_pl.tasks.readers import read_rows  # the same JSON reading and errors as text_classification

log = logging.getLogger(__name__)

DOCSTART = "-DOCSTART-"
JSON_EXTENSIONS = (".json", ".jsonl")
CHUNK = 4096  # sentences tokenised at a time
MAIN_METRICS = ("f1", "precision", "recall", "accuracy")
LONG_SENTENCE_WINDOWS = 16  # a sentence cut into more windows than this gets a warning (a file without blank lines?)


@dataclass
class Sentence:
    tokens: List[str]
    tags: Optional[List[str]]  # None: unlabelled (a test file without tags)
    line: int                  # CoNLL: the line of the first token (token i is on line + i); JSON: the row's line
    doc_start: bool = False    # a -DOCSTART- line came before it
    problem: Optional[str] = None  # why the sentence cannot be used (bad-row handling decides)

    def where(self, i: int, conll: bool) -> int:
        return self.line + i if conll else self.line


# -- reading -------------------------------------------------------------------------------------------------------
def _missing(path: Path) -> TaskDataError:
    from bert_pl.io.missing import link_problem, resolved_parent

    return TaskDataError(f"data file {path} {link_problem(path) or 'not found'} (looked in {resolved_parent(path)}); "
                         f"check data.train_file / "
                         f"data.validation_file / data.test_file (task=conll2003: data_dir)")


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TaskDataError(f"{path}: line {line}: byte 0x{data[e.start]:02x} is not UTF-8; save the file as "
                            f"UTF-8") from None


def _fields(line: str) -> List[str]:
    """Columns split on spaces and tabs only (a token may hold other Unicode spaces, as conlleval allows)."""
    return [f for f in line.rstrip("\r\n").replace("\t", " ").split(" ") if f]


def _token_for_file(token: str) -> str:
    """A token as one column of a prediction file: ASCII whitespace inside it becomes _."""
    return "_".join(t for t in token.replace("\t", " ").replace("\n", " ").replace("\r", " ").split(" ") if t) or "_"


def read_conll(path: Path, tag_column: int = -1, limit: Optional[int] = None, labelled: Optional[bool] = None) \
        -> Tuple[List[Sentence], bool]:
    """Sentences of a CoNLL file and whether it has tags. Every token line must have the same number of columns as
    the file's first one; a file whose lines have one column has no tags (allowed for test files: labelled=None).
    `-DOCSTART-` lines end a sentence and are remembered for the prediction files. Reading stops after `limit`
    sentences."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    text = _decode(path)
    if not text.strip():
        raise TaskDataError(f"{path}: the file is empty")
    sentences: List[Sentence] = []
    tokens: List[str] = []
    tags: List[str] = []
    start, doc_start = 0, False
    ncols, first_line, tag_index, has_tags = None, 0, None, None

    def flush():
        nonlocal tokens, tags, doc_start
        if tokens:
            sentences.append(Sentence(tokens, tags if has_tags else None, start, doc_start))
            tokens, tags, doc_start = [], [], False

    for lineno, line in enumerate(text.split("\n"), 1):
        fields = _fields(line)
        if not fields:
            flush()
            if limit and len(sentences) >= limit:
                break
            continue
        if fields[0] == DOCSTART:
            flush()
            doc_start = True
            if limit and len(sentences) >= limit:
                break
            continue
        if ncols is None:
            ncols, first_line = len(fields), lineno
            has_tags = ncols > 1
            if labelled and not has_tags:
                raise TaskDataError(f"{path}: line {lineno}: one column, no tags; write `token ... tag` per line "
                                    f"(the tag in the last column, or set data.tag_column)")
            if has_tags:
                tag_index = tag_column if tag_column >= 0 else ncols + tag_column
                if not 1 <= tag_index < ncols:
                    raise TaskDataError(f"{path}: data.tag_column={tag_column} does not fit its {ncols} columns "
                                        f"(line {lineno}): the token is column 0, so use 1..{ncols - 1} or "
                                        f"-1..-{ncols - 1} (-1 = last)")
        elif len(fields) != ncols:
            raise TaskDataError(f"{path}: line {lineno}: {len(fields)} columns, but the file's first token line "
                                f"(line {first_line}) has {ncols}; give every token line the same whitespace-"
                                f"separated columns (token first, tag last) and a blank line between sentences")
        if not tokens:
            start = lineno
        tokens.append(fields[0])
        if has_tags:
            tags.append(fields[tag_index])
    flush()
    if limit:
        sentences = sentences[:limit]
    return sentences, bool(has_tags)


def read_json_sentences(path: Path, tokens_key: str = "tokens", tags_key: str = "tags",
                        limit: Optional[int] = None, labelled: Optional[bool] = None) -> Tuple[List[Sentence], bool]:
    """Sentences of a JSON lines file (or a JSON array) of {tokens_key: [...], tags_key: [...]} objects. A row that
    cannot be used is kept with its `problem` (the caller skips it or stops). A test file (labelled=None) whose first
    row has no tags is unlabelled."""
    _, rows = read_rows(Path(path))
    sentences: List[Sentence] = []
    good = 0
    for lineno, row in rows:
        if limit and good >= limit:
            break
        if labelled is None:
            labelled = tags_key in row
        tokens, tags = row.get(tokens_key), row.get(tags_key)
        problem = None
        if tokens_key not in row:
            problem = f"no {tokens_key!r} field (fields: {', '.join(row)}); set data.tokens_key"
        elif not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            problem = f"{tokens_key!r} must be a list of strings"
        elif not tokens:
            problem = f"an empty sentence ({tokens_key!r} is [])"
        elif any(not t.strip() for t in tokens):
            problem = f"token {next(i for i, t in enumerate(tokens) if not t.strip())} is empty or blank"
        elif labelled and tags_key not in row:
            problem = f"no {tags_key!r} field (fields: {', '.join(row)}); set data.tags_key"
        elif labelled and (not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags)):
            problem = f"{tags_key!r} must be a list of tag strings such as \"B-PER\""
        elif labelled and len(tags) != len(tokens):
            problem = f"{len(tokens)} tokens but {len(tags)} tags"
        if labelled and not problem:
            tags = [t.strip() for t in tags]
        sentences.append(Sentence(tokens if problem is None else [], tags if labelled and not problem else None,
                                  lineno, problem=problem))
        good += problem is None
    return sentences, bool(labelled)


# -- features ------------------------------------------------------------------------------------------------------
def word_pieces(tokenizer, sentences: Sequence[Sequence[str]], progress=None) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Per sentence: WordPiece ids and the position of each word's first piece. A word the tokenizer turns into
    nothing (control characters, say) becomes [UNK], so that every word is predicted. `progress(done, total)` is
    called per chunk of sentences."""
    unk = tokenizer.token_to_id("[UNK]")
    out = []
    for i in range(0, len(sentences), CHUNK):
        if progress is not None:
            progress(i, len(sentences))
        batch = [list(s) for s in sentences[i:i + CHUNK]]
        for words, enc in zip(batch, tokenizer.encode_batch(batch, is_pretokenized=True, add_special_tokens=False)):
            ids = np.asarray(enc.ids, dtype=np.int64)
            word_ids = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
            counts = np.bincount(word_ids[word_ids >= 0], minlength=len(words))
            if (counts == 0).any():  # give each empty word one [UNK] piece, in place (a word's pieces are contiguous)
                pieces = np.split(ids, np.cumsum(counts)[:-1])
                pieces = [p if len(p) else np.asarray([unk], dtype=np.int64) for p in pieces]
                counts = np.asarray([len(p) for p in pieces])
                ids = np.concatenate(pieces)
            first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            out.append((ids, first))
    return out


def window_spans(n: int, max_tokens: int, stride: int) -> List[Tuple[int, int]]:
    """(start, length) of the windows over n pieces: as run_squad.py, a new window every `stride` pieces until one
    reaches the end."""
    spans, start = [], 0
    while True:
        length = min(n - start, max_tokens)
        spans.append((start, length))
        if start + length >= n:
            return spans
        start += min(length, stride)


def max_context_window(spans: List[Tuple[int, int]], n: int) -> np.ndarray:
    """For each of n pieces, the window where it has the most context: max of min(left, right context) + 0.01 *
    window length, the first such window on ties (run_squad.py's _check_is_max_context, in O(n * overlap))."""
    best = np.full(n, -np.inf)
    owner = np.zeros(n, dtype=np.int64)
    for k, (s, length) in enumerate(spans):
        p = np.arange(s, s + length)
        score = np.minimum(p - s, s + length - 1 - p) + 0.01 * length
        better = score > best[s:s + length]
        best[s:s + length][better] = score[better]
        owner[s:s + length][better] = k
    return owner


@dataclass
class Window:
    """Which words a feature predicts: positions in the feature (counting [CLS]) and the words' indices."""
    example_index: int
    positions: np.ndarray
    words: np.ndarray


def build_features(pieces: List[Tuple[np.ndarray, np.ndarray]], label_ids: Optional[List[np.ndarray]],
                   cls_id: int, sep_id: int, max_seq_length: int, stride: int, training: bool) \
        -> Tuple[List[dict], List[Window], List[int]]:
    """Features (input_ids, token_type_ids, labels with -100 off first pieces, example_index, feature_index), the
    words each feature predicts, and the number of windows per sentence. In training every window is an example
    with every first piece in it labelled (windows without one are dropped); otherwise a window keeps only the
    words it predicts (max context) and windows predicting none are dropped, so each word is predicted once."""
    max_tokens = max_seq_length - 2
    features: List[dict] = []
    windows: List[Window] = []
    counts: List[int] = []
    for ex, (ids, first) in enumerate(pieces):
        n = len(ids)
        spans = window_spans(n, max_tokens, stride)
        owner = max_context_window(spans, n)[first] if len(spans) > 1 else np.zeros(len(first), dtype=np.int64)
        counts.append(len(spans))
        for k, (s, length) in enumerate(spans):
            inside = (first >= s) & (first < s + length)
            mine = np.flatnonzero(owner == k)
            if (training and not inside.any()) or (not training and not len(mine)):
                continue
            input_ids = np.empty(length + 2, dtype=np.int64)
            input_ids[0], input_ids[1:-1], input_ids[-1] = cls_id, ids[s:s + length], sep_id
            feat = {"input_ids": input_ids, "token_type_ids": np.zeros(length + 2, dtype=np.int64)}
            if label_ids is not None:
                labels = np.full(length + 2, IGNORE_INDEX, dtype=np.int64)
                words = np.flatnonzero(inside) if training else mine
                labels[first[words] - s + 1] = label_ids[ex][words]
                feat["labels"] = labels
            feat["example_index"], feat["feature_index"] = ex, len(features)
            features.append(feat)
            windows.append(Window(ex, first[mine] - s + 1, mine))
    return features, windows, counts


def word_predictions(windows: List[Window], lengths: Sequence[int], logits: Sequence[np.ndarray],
                     feature_index: Sequence[int]) -> List[np.ndarray]:
    """Per sentence, each word's predicted label id (the argmax at its first piece, in the window that predicts it;
    -1 where no output covered it). `logits[i]` is feature `feature_index[i]`'s (W, C) array, in any order."""
    preds = [np.full(n, -1, dtype=np.int64) for n in lengths]
    for x, fi in zip(logits, np.asarray(feature_index)):
        w = windows[int(fi)]
        preds[w.example_index][w.words] = np.asarray(x)[w.positions].argmax(-1)
    return preds


# -- the task ------------------------------------------------------------------------------------------------------
class TokenClassificationTask(Task):
    """One tag per word, from CoNLL or JSON lines files; entity-level scores as conlleval."""

    head = "token_classification"
    eval_splits = ["dev"]

    def __init__(self, train_file: Optional[str] = None, validation_file: Optional[str] = None,
                 test_file: Optional[str] = None, tag_column: int = -1, tokens_key: str = "tokens",
                 tags_key: str = "tags", labels: Optional[Sequence[str]] = None, main_metric: str = "f1",
                 on_bad_row: str = "error", max_seq_length: int = 128, doc_stride: int = 64, batch_size: int = 32,
                 eval_batch_size: int = 64, num_workers: int = 0, static_shapes: bool = False,
                 limit_train_examples: Optional[int] = None, limit_eval_examples: Optional[int] = None,
                 seed: int = 0, **shared):
        super().__init__(max_seq_length, batch_size, eval_batch_size, num_workers, static_shapes, seed, **shared)
        if on_bad_row not in ("skip", "error"):
            raise TaskDataError(f"data.on_bad_row={on_bad_row!r}: use skip or error")
        if main_metric not in MAIN_METRICS:
            raise TaskDataError(f"data.main_metric={main_metric!r}: use one of {', '.join(MAIN_METRICS)}")
        if doc_stride < 1:
            raise TaskDataError(f"data.doc_stride={doc_stride}: must be at least 1 (pieces between window starts)")
        if not train_file:
            raise TaskDataError("no training data: pass data.train_file=PATH and data.validation_file=PATH (CoNLL "
                                "columns, or JSON lines with tokens and tags)")
        if not validation_file:
            raise TaskDataError("no validation data: pass data.validation_file=PATH (the best epoch is chosen on it)")
        self.files = {"train": train_file, "dev": validation_file, "test": test_file}
        self.tag_column, self.tokens_key, self.tags_key = tag_column, tokens_key, tags_key
        self._labels = [str(x) for x in labels] if labels is not None else None
        self._labels_given = labels is not None
        self._main_metric, self.on_bad_row, self.doc_stride = main_metric, on_bad_row, doc_stride
        self.limits = limits_per_split(limit_train_examples, limit_eval_examples)
        self._sentences: Dict[str, List[Sentence]] = {}
        self._labelled: Dict[str, bool] = {}
        self._features: Dict[str, Tuple[List[dict], List[Window]]] = {}
        self._test_scores: Dict[str, dict] = {}

    # -- contract: what the model needs -------------------------------------------------------------------------
    @property
    def labels(self) -> List[str]:
        if self._labels is None:
            tags = {t for s in self.sentences("train") if s.tags for t in s.tags}
            self._labels = sorted(tags)
        return self._labels

    def head_kwargs(self) -> dict:
        return {"num_labels": len(self.labels)}

    @property
    def main_metric(self) -> str:
        return self._main_metric

    def prepare(self) -> None:
        """Fix the label set, then read and tokenise every split, so bad data stops the run before training."""
        if len(self.labels) < 2:
            raise TaskDataError(f"{self.files['train']}: only the tag(s) {self.labels} occur; a tagger needs at least "
                                f"two (check data.tag_column)")
        for split in ["train", *self.eval_splits, *self.test_splits()]:
            self.features(split)

    def test_splits(self) -> List[str]:
        return ["test"] if self.files.get("test") else []

    # -- reading ------------------------------------------------------------------------------------------------
    def _kind(self, split: str) -> str:
        return split if split in ("train", "test") else "dev"

    def is_conll(self, split: str) -> bool:
        return Path(self.files[split]).suffix.lower() not in JSON_EXTENSIONS

    def sentences(self, split: str) -> List[Sentence]:
        """The split's usable sentences, in file order (bad ones skipped or stopped at, by data.on_bad_row)."""
        if split not in self._sentences:
            self._sentences[split] = self._read(split)
        return self._sentences[split]

    def _read(self, split: str) -> List[Sentence]:
        path = Path(self.files[split])
        kind = self._kind(split)
        labelled = None if kind == "test" else True
        limit = self.limits.get(kind)
        if self.is_conll(split):
            sentences, has_tags = read_conll(path, self.tag_column, limit, labelled)
        else:
            sentences, has_tags = read_json_sentences(path, self.tokens_key, self.tags_key, limit, labelled)
        self._labelled[split] = has_tags
        bad = [f"{path}: line {s.line}: {s.problem}" for s in sentences if s.problem]
        if bad and self.on_bad_row == "error":
            raise TaskDataError(f"{bad[0]}; fix the sentence, or set data.on_bad_row=skip to skip such sentences")
        if bad:
            log.warning("%s: skipped %d bad sentence(s), e.g. %s", path, len(bad), "; ".join(bad[:3]))
        good = [s for s in sentences if not s.problem]
        if not good:
            raise TaskDataError(f"{path}: no usable sentences" + (
                "; leave data.test_file unset to predict nothing" if kind == "test" else ""))
        return good

    def _label_ids(self, split: str) -> Optional[List[np.ndarray]]:
        """Each labelled sentence's tag ids; a tag outside the label set stops the run (data.on_bad_row=error) or
        is trained on as O (skip; it stays the gold tag when scoring and in the prediction files)."""
        if not self._labelled[split]:
            return None
        index = {t: i for i, t in enumerate(self.labels)}
        conll, path = self.is_conll(split), self.files[split]
        unknown: List[str] = []
        out = []
        for s in self.sentences(split):
            ids = np.asarray([index.get(t, -1) for t in s.tags], dtype=np.int64)
            for i in np.flatnonzero(ids < 0):
                unknown.append(f"{path}: line {s.where(int(i), conll)}: tag {s.tags[i]!r}")
                where = "in data.labels" if self._labels_given else "in the training data"
                if self.on_bad_row == "error":
                    raise TaskDataError(f"{unknown[-1]} does not occur {where} (tags: {', '.join(self.labels)}); fix "
                                        f"it, or set data.on_bad_row=skip to train on it as O (it stays gold when "
                                        f"scoring)")
                if "O" not in index:
                    raise TaskDataError(f"{unknown[-1]} does not occur {where}, and there is no O tag to map it to; "
                                        f"fix the tag")
                ids[i] = index["O"]
            out.append(ids)
        if unknown:
            log.warning("%s: %d tag(s) not among the training tags, trained as O and scored as written, e.g. %s",
                        path, len(unknown), "; ".join(unknown[:3]))
        return out

    def features(self, split: str) -> List[dict]:
        return self._featurize(split)[0]

    def windows(self, split: str) -> List[Window]:
        return self._featurize(split)[1]

    def _featurize(self, split: str):
        if split not in self._features:
            self._features[split] = self.cached_features(split, lambda: self._build_features(split))
        return self._features[split]

    def _build_features(self, split: str):
        sentences = self.sentences(split)
        label_ids = self._label_ids(split) if self._kind(split) != "test" else None
        vocab = self.tokenizer.get_vocab()
        pieces = word_pieces(self.tokenizer, [s.tokens for s in sentences], self.progress)
        feats, windows, counts = build_features(pieces, label_ids, vocab["[CLS]"], vocab["[SEP]"],
                                                self.max_seq_length, self.doc_stride, split == "train")
        long = [i for i, c in enumerate(counts) if c > LONG_SENTENCE_WINDOWS]
        if long:
            s = sentences[long[0]]
            log.warning("%s: %d sentence(s) longer than %d windows of max_seq_length=%d, e.g. line %d: %d words "
                        "in %d windows; is a blank line missing between sentences?", self.files[split],
                        len(long), LONG_SENTENCE_WINDOWS, self.max_seq_length, s.line, len(s.tokens),
                        counts[long[0]])
        return feats, windows

    # -- contract: scoring and outputs --------------------------------------------------------------------------
    def predict(self, split: str, outputs: dict) -> List[np.ndarray]:
        """Per sentence, the predicted label id of each word (-1 where no feature of it was given)."""
        return word_predictions(self.windows(split), [len(s.tokens) for s in self.sentences(split)],
                                outputs["logits"], outputs["feature_index"])

    def evaluate(self, split: str, outputs: dict) -> dict:
        """conlleval's scores over the sentences predicted (all of them, unless validation was cut short)."""
        sentences = self.sentences(split)
        gold, pred = [], []
        for s, p in zip(sentences, self.predict(split, outputs)):
            if len(p) and (p >= 0).all():
                gold.append(s.tags)
                pred.append([self.labels[i] for i in p])
        types = {conlleval.split_tag(t)[1] for t in self.labels} - {""}  # the same per-type keys every epoch
        return conlleval.scores(conlleval.count(gold, pred), types)

    def check_learned(self, split: str, outputs: dict) -> dict:
        """Tagging every word 'O' scores F1 0; a model that does (or tags every word alike) learned nothing."""
        outside = [t for t in self.labels if conlleval.split_tag(t)[1] == ""]
        base = {"predictor": f"every word {outside[0]!r}" if outside else "one tag for every word", "f1": 0.0}
        tags = {self.labels[i] for p in self.predict(split, outputs) for i in p if i >= 0}
        if len(tags) <= 1 or tags <= set(outside):
            return {"baseline": base, "degenerate": f"every word is tagged {sorted(tags)} (no entity found)"}
        return {"baseline": base, "degenerate": None}

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        """`predictions_<split>.txt`: `token gold predicted` per word (`token predicted` without gold tags), a blank
        line after each sentence, `-DOCSTART-` lines where the input had them; whitespace inside a token becomes _.
        A labelled test file is also scored (results.json `test`)."""
        sentences = self.sentences(split)
        preds = self.predict(split, outputs)
        labelled = self._labelled[split]
        if any((p < 0).any() for p in preds):
            raise RuntimeError(f"{split}: predictions are missing for some words")
        lines: List[str] = []
        for s, p in zip(sentences, preds):
            if s.doc_start:
                lines += [f"{DOCSTART} O O" if labelled else f"{DOCSTART} O", ""]
            for i, token in enumerate(s.tokens):
                token = _token_for_file(token)
                tag = self.labels[p[i]]
                lines.append(f"{token} {s.tags[i]} {tag}" if labelled else f"{token} {tag}")
            lines.append("")
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"predictions_{split}.txt"
        atomic_write_text(path, "\n".join(lines) + "\n")
        if submission and labelled:
            self._test_scores[split] = self.evaluate(split, outputs)
        return path

    def checkpoint_info(self) -> dict:
        return {"max_seq_length": self.max_seq_length, "doc_stride": self.doc_stride}

    def results_info(self) -> dict:
        info = {"labels": self.labels}
        if self._test_scores:
            info["test"] = dict(self._test_scores)
        return info


class Conll2003Task(TokenClassificationTask):
    """CoNLL-2003 English NER from `data_dir`: eng.train, eng.testa (dev) and eng.testb (test, optional) as
    distributed, or train.txt, dev.txt and test.txt. Files given as data.train_file etc. win."""

    LAYOUTS = (("eng.train", "eng.testa", "eng.testb"), ("train.txt", "dev.txt", "test.txt"))

    def dataset_info(self) -> dict:
        return {"name": "CoNLL-2003", "type": "eriktks/conll2003", "language": "en"}

    def __init__(self, data_dir: str = "data/conll2003", train_file: Optional[str] = None,
                 validation_file: Optional[str] = None, test_file: Optional[str] = None, **kwargs):
        folder = Path(data_dir)
        if not (train_file and validation_file):
            if not folder.is_dir():
                from bert_pl.io.missing import link_problem

                raise TaskDataError(f"data_dir={data_dir}: {link_problem(folder) or 'no such folder'}; pass "
                                    f"data_dir=DIR holding eng.train "
                                    f"eng.testa [eng.testb] (or train.txt dev.txt [test.txt])")
            layout = next((names for names in self.LAYOUTS if (folder / names[0]).is_file()
                           and (folder / names[1]).is_file()), None)
            if layout is None:
                found = sorted(p.name for p in folder.iterdir())[:12]
                raise TaskDataError(f"data_dir={data_dir}: expected eng.train and eng.testa (or train.txt and "
                                    f"dev.txt); found {', '.join(found) or 'nothing'}")
            train_file = train_file or str(folder / layout[0])
            validation_file = validation_file or str(folder / layout[1])
            if test_file is None and (folder / layout[2]).is_file():
                test_file = str(folder / layout[2])
        super().__init__(train_file=train_file, validation_file=validation_file, test_file=test_file, **kwargs)


class TagPredictor(Predictor):
    """Prediction with a token classification head: a text (split into words as BERT's basic tokenizer does, with
    character offsets) or a list of words per input -> {"words": [{"word", "tag", "start", "end"}], "entities":
    [{"type", "text", "start", "end"}]} (conlleval's chunks; offsets into the text, None for pre-split words). Long
    inputs are windowed with the run's doc_stride. Input files: .txt lines, or the formats it trains on (JSON lines
    with "tokens", CoNLL columns: any other extension; their tag columns, if any, are ignored)."""

    line_format = "one text per line"
    pipeline_tag = "token-classification"
    example_inputs = ["EU rejects German call to boycott British lamb .", ["Peter", "Blackburn", "visited", "Paris"]]

    def from_fields(self, fields: List[str], where: str):
        if len(fields) != 1:
            raise PredictError(f"{where}: a token-classification model takes one text per line (no tab)")
        return fields[0]

    def read_file(self, path: Path) -> Optional[list]:
        suffix = path.suffix.lower()
        if suffix == ".txt":
            return None
        reader = read_json_sentences if suffix in JSON_EXTENSIONS else read_conll
        sentences, _ = reader(path, labelled=None)
        bad = next((s for s in sentences if s.problem), None)
        if bad is not None:
            raise PredictError(f"{path}: line {bad.line}: {bad.problem}")
        if not sentences:
            raise PredictError(f"{path}: no sentences")
        return [s.tokens for s in sentences]

    def check(self, inputs: list) -> None:
        for n, x in enumerate(inputs, 1):
            if not (isinstance(x, str) or isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x)):
                raise PredictError(f"input {n}: a token-classification model takes a text or a list of words")
            if not (x.split() if isinstance(x, str) else x):
                raise PredictError(f"input {n}: no words")

    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        rt = self.runtime
        splitter = rt.tokenizer.pre_tokenizer
        sentences, spans = [], []
        for n, x in enumerate(inputs, 1):
            if isinstance(x, str):
                parts = splitter.pre_tokenize_str(x) if splitter is not None else [(w, (0, 0)) for w in x.split()]
                sentences.append([w for w, _ in parts])
                spans.append([s for _, s in parts] if splitter is not None else None)
            elif isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x):
                sentences.append(list(x))
                spans.append(None)
            else:
                raise PredictError(f"input {n}: a token-classification model takes a text or a list of words")
            if not sentences[-1]:
                raise PredictError(f"input {n}: no words")
        pieces = word_pieces(rt.tokenizer, sentences)
        feats, windows, _ = build_features(pieces, None, rt.vocab["[CLS]"], rt.vocab["[SEP]"], rt.max_seq_length,
                                           rt.task_info.get("doc_stride", 64), False)
        outs = rt.run([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in feats], progress)
        preds = word_predictions(windows, [len(s) for s in sentences], [o["logits"] for o in outs], range(len(feats)))
        results = []
        for x, words, span, ids in zip(inputs, sentences, spans, preds):
            tags = [rt.labels[i] for i in ids]
            word_rows = [{"word": w, "tag": t, "start": span[i][0] if span else None,
                          "end": span[i][1] if span else None} for i, (w, t) in enumerate(zip(words, tags))]
            entities = []
            for type_, first, last in conlleval.chunks(tags):
                if span:
                    start, end = span[first][0], span[last][1]
                    text = x[start:end]
                else:
                    start = end = None
                    text = " ".join(words[first:last + 1])
                entities.append({"type": type_, "text": text, "start": start, "end": end})
            results.append({"entities": entities, "words": word_rows})
        return results

    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        return ["logits"]

    @classmethod
    def onnx_output_axes(cls, name: str) -> Dict[int, str]:
        return {0: "batch", 1: "sequence"}
