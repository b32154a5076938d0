"""Sentence embeddings (a bi-encoder): each text is its own sequence, pooled into one L2-normalised vector.

    python finetune.py task=sentence_embedding pretrained=PATH data.train_file=train.csv data.validation_file=dev.csv

Two kinds of training data, in the same files, formats and column options as `text_classification`:
- scored pairs (`data.kind=scored`: text_a, text_b, score; STS-style): the cosine of the two embeddings is fitted to
  the score divided by `data.score_scale` (MSE, as sentence-transformers' CosineSimilarityLoss); scored by the
  Spearman (main) and Pearson correlations of cosine and gold.
- (anchor, positive[, hard negative]) rows (`data.kind=retrieval`): multiple-negatives ranking loss with in-batch
  negatives (cross-entropy over `data.scale` x the cosines of each anchor with every positive and negative of the
  batch); scored by recall@1 and the mean reciprocal rank of each dev positive among all dev positives.

A batch holds every text of its rows as one (rows, texts per row, width) tensor, so the encoder runs once over all of
them (with the unpadded fast path, padding costs nothing in the dense layers). After training, `bert_pl.load(run)`
embeds texts with the run's pooling and normalisation, and scores pairs by their cosine.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from bert_pl.model.heads import POOLINGS, BertForSentenceEmbedding
from bert_pl.tasks.base import Task, TaskDataError, limits_per_split, with_row_ids, write_jsonl_predictions
from bert_pl.tasks.predictor import PredictError, Predictor
from bert_pl.tasks.readers import CHUNK, ID_COLUMN_CANDIDATES, read_rows, text_value

log = logging.getLogger(__name__)

KINDS = ("auto", "scored", "retrieval")
METRICS = {"scored": ("spearman", "pearson"), "retrieval": ("recall_at_1", "mrr")}
# Column groups looked for when data.text_columns is not given, in this order.
TEXT_COLUMN_CANDIDATES = (("sentence1", "sentence2"), ("anchor", "positive", "negative"), ("anchor", "positive"),
                          ("query", "positive", "negative"), ("query", "positive"), ("text_a", "text_b"),
                          ("text1", "text2"), ("question1", "question2"), ("premise", "hypothesis"))
SCORE_COLUMN_CANDIDATES = ("score", "label", "similarity")


# -- metrics -----------------------------------------------------------------------------------------------------
def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(norms, 1e-12)


def positive_ranks(anchors: np.ndarray, positives: np.ndarray, block: int = 1024) -> np.ndarray:
    """Rank (1 = first) of each anchor's own positive among all positives, by cosine; a tie counts in its favour
    (only strictly closer positives rank above it). Computed a block of anchors at a time (N x N need not fit)."""
    a = np.asarray(anchors, dtype=np.float32)
    p = np.asarray(positives, dtype=np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    ranks = np.empty(len(a), dtype=np.int64)
    for start in range(0, len(a), block):
        sims = a[start:start + block] @ p.T
        own = sims[np.arange(len(sims)), np.arange(start, start + len(sims))]
        ranks[start:start + len(sims)] = 1 + (sims > own[:, None]).sum(1)
    return ranks


def retrieval_metrics(anchors: np.ndarray, positives: np.ndarray) -> Dict[str, float]:
    ranks = positive_ranks(anchors, positives)
    return {"recall_at_1": float(np.mean(ranks == 1)), "mrr": float(np.mean(1.0 / ranks))}


def scored_metrics(similarity: np.ndarray, gold: np.ndarray) -> Dict[str, float]:
    from bert_pl.tasks.metrics import pearson, spearman

    return {"spearman": spearman(similarity, gold), "pearson": pearson(similarity, gold)}


# -- features ----------------------------------------------------------------------------------------------------
class TextGroupTable(torch.utils.data.Dataset):
    """Tokenised rows of K texts each, in flat arrays per text slot (token ids int32 + offsets), with each row's
    score (scored pairs), id and gold value as read. Indexing gives one feature for `GroupCollator`."""

    def __init__(self, slots: int):
        self.slots = slots
        self._pending: List[List[np.ndarray]] = [[] for _ in range(slots)]
        self._chunks: List[List[np.ndarray]] = [[] for _ in range(slots)]
        self._lengths: List[List[int]] = [[] for _ in range(slots)]
        self.scores: list = []
        self.row_ids: List[str] = []
        self.gold: list = []

    def add(self, ids: Sequence[Sequence[int]], score, row_id: str, gold) -> None:
        for k in range(self.slots):
            self._pending[k].append(np.asarray(ids[k], dtype=np.int32))
            self._lengths[k].append(len(ids[k]))
        self.scores.append(score)
        self.row_ids.append(row_id)
        self.gold.append(gold)
        if len(self._pending[0]) >= CHUNK:
            for k in range(self.slots):
                self._chunks[k].append(np.concatenate(self._pending[k]))
                self._pending[k] = []

    def finish(self) -> "TextGroupTable":
        self.ids = [np.concatenate([np.zeros(0, dtype=np.int32), *self._chunks[k], *self._pending[k]])
                    for k in range(self.slots)]
        self.offsets = [np.concatenate([[0], np.cumsum(self._lengths[k], dtype=np.int64)]) for k in range(self.slots)]
        self.scores = (np.asarray(self.scores, dtype=np.float32)
                       if self.scores and all(s is not None for s in self.scores) else None)
        del self._pending, self._chunks, self._lengths
        return self

    def __len__(self) -> int:
        return len(self.row_ids)

    def texts(self, i: int) -> List[np.ndarray]:
        return [self.ids[k][self.offsets[k][i]:self.offsets[k][i + 1]] for k in range(self.slots)]

    def __getitem__(self, i: int) -> dict:
        f = {"texts": self.texts(i), "example_index": i}
        if self.scores is not None:
            f["labels"] = float(self.scores[i])
        return f


class GroupCollator:
    """Rows of K texts -> `input_ids` and `attention_mask` (B, K, width), padded per batch to a multiple of 8 (or to
    a fixed width for XLA), plus `labels` (scores) and `example_index`."""

    def __init__(self, pad_id: int = 0, fixed_width: Optional[int] = None, multiple: int = 8):
        self.pad_id, self.fixed_width, self.multiple = pad_id, fixed_width, multiple

    def __call__(self, features: List[dict]) -> dict:
        k = len(features[0]["texts"])
        longest = max(len(t) for f in features for t in f["texts"])
        width = self.fixed_width or -(-longest // self.multiple) * self.multiple
        ids = np.full((len(features), k, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(features), k, width), dtype=np.int64)
        for i, f in enumerate(features):
            for j, t in enumerate(f["texts"]):
                ids[i, j, :len(t)] = t
                mask[i, j, :len(t)] = 1
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                 "example_index": torch.tensor([f["example_index"] for f in features], dtype=torch.long)}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        return batch


# -- the task ----------------------------------------------------------------------------------------------------
class SentenceEmbeddingTask(Task):
    """`task=sentence_embedding`: the user's own files; see conf/task/sentence_embedding.yaml for every key."""

    head = "sentence_embedding"

    def __init__(self, train_file: Optional[str] = None, validation_file: Optional[str] = None,
                 test_file: Optional[str] = None, kind: str = "auto", text_columns: Optional[Sequence[str]] = None,
                 label_column: Optional[str] = None, id_column: Optional[str] = None, score_scale: float = 1.0,
                 pooling: str = "mean", normalize: bool = True, scale: float = 20.0,
                 main_metric: Optional[str] = None, on_bad_row: str = "error", max_seq_length: int = 128,
                 batch_size: int = 16, eval_batch_size: int = 64, num_workers: int = 0, static_shapes: bool = False,
                 limit_train_examples: Optional[int] = None, limit_eval_examples: Optional[int] = None,
                 seed: int = 0, **shared):
        super().__init__(max_seq_length, batch_size, eval_batch_size, num_workers, static_shapes, seed, **shared)
        checks = [(kind in KINDS, f"data.kind={kind!r}: use {', '.join(KINDS)}"),
                  (pooling in POOLINGS, f"data.pooling={pooling!r}: use {', '.join(POOLINGS)}"),
                  (on_bad_row in ("skip", "error"), f"data.on_bad_row={on_bad_row!r}: use skip or error"),
                  (_positive(score_scale), f"data.score_scale={score_scale!r}: must be a number > 0 (the largest "
                                           f"score, e.g. 5 for STS-B's 0..5)"),
                  (_positive(scale), f"data.scale={scale!r}: must be a number > 0 (the ranking loss's inverse "
                                     f"temperature; sentence-transformers uses 20)"),
                  (text_columns is None or 2 <= len(text_columns) <= 3,
                   f"data.text_columns={list(text_columns or [])}: give two columns (a pair, or anchor and positive) "
                   f"or three (anchor, positive, hard negative)"),
                  (train_file, "no training data: pass data.train_file=PATH (and data.validation_file=PATH)"),
                  (validation_file, "no validation data: pass data.validation_file=PATH (the best epoch is chosen "
                                    "on it)")]
        for ok, message in checks:
            if not ok:
                raise TaskDataError(message)
        if kind == "scored" and text_columns is not None and len(text_columns) != 2:
            raise TaskDataError(f"data.text_columns={list(text_columns)}: scored pairs have two text columns (three "
                                f"are anchor, positive, negative: data.kind=retrieval)")
        self.files = {"train": train_file, "dev": validation_file, "test": test_file}
        self.kind_setting = kind
        self.text_columns = list(text_columns) if text_columns is not None else None
        self.label_column, self.id_column = label_column, id_column
        self.score_scale, self.pooling, self.normalize, self.scale = float(score_scale), pooling, normalize, float(scale)
        self._main_metric = main_metric
        self.on_bad_row = on_bad_row
        self.limits = limits_per_split(limit_train_examples, limit_eval_examples)
        self._kind: Optional[str] = None
        self._score_column: Optional[str] = None
        self._features: Dict[str, TextGroupTable] = {}

    # -- contract: what the model needs -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """scored or retrieval: data.kind, or (auto) scored when the training file has a score column."""
        if self._kind is None:
            self._resolve_kind()
        return self._kind

    def head_kwargs(self) -> dict:
        return {"pooling": self.pooling, "normalize": self.normalize,
                "loss": "cosine" if self.kind == "scored" else "ranking", "scale": self.scale}

    @property
    def main_metric(self) -> str:
        names = METRICS[self.kind]
        if self._main_metric is None:
            return names[0]
        if self._main_metric not in names:
            raise TaskDataError(f"data.main_metric={self._main_metric!r}: {self.kind} data is scored by "
                                f"{', '.join(names)}")
        return self._main_metric

    def prepare(self) -> None:
        """Decide the kind, check data.main_metric, and read and tokenise every split now (a bad row in a dev or test
        file stops the run before training, not after it)."""
        self.main_metric  # noqa: B018 - validates data.main_metric before training
        for split in ["train", *self.eval_splits, *self.test_splits()]:
            self.features(split)

    def test_splits(self) -> List[str]:
        return ["test"] if self.files["test"] else []

    # -- reading ------------------------------------------------------------------------------------------------
    def _resolve_kind(self) -> None:
        columns, _ = read_rows(Path(self.files["train"]))
        where = self.files["train"]
        score = self._score_column_in(columns)
        if self.kind_setting == "scored" and score is None:
            raise TaskDataError(f"{where}: no score column {self.label_column or 'score'!r}; columns found: "
                                f"{columns}. Set data.label_column=NAME (or data.kind=retrieval for anchor/positive "
                                f"rows)")
        if self.kind_setting == "auto" and self.label_column is not None and score is None:
            raise TaskDataError(f"{where}: no score column {self.label_column!r}; columns found: {columns}. Set "
                                f"data.label_column=NAME, or leave it unset for anchor/positive rows")
        kind = self.kind_setting if self.kind_setting != "auto" else ("scored" if score else "retrieval")
        self._kind, self._score_column = kind, score if kind == "scored" else None
        cols = self._text_columns(columns, where)
        if kind == "scored" and len(cols) != 2:
            raise TaskDataError(f"{where}: scored pairs have two text columns, found {cols}; set "
                                f"data.text_columns=[A,B] (or data.kind=retrieval for anchor, positive, negative)")

    def _score_column_in(self, columns: List[str]) -> Optional[str]:
        if self.label_column is not None:
            return self.label_column if self.label_column in columns else None
        return next((c for c in SCORE_COLUMN_CANDIDATES if c in columns), None)

    def _text_columns(self, columns: List[str], where: str, needed: Optional[int] = None) -> List[str]:
        """The text columns of a file: data.text_columns (its first `needed`), else the first candidate group found
        (cut to `needed`)."""
        if self.text_columns is not None:
            missing = [c for c in self.text_columns[:needed] if c not in columns]
            if missing:
                raise TaskDataError(f"{where}: no column(s) {missing}; columns found: {columns}. Set "
                                    f"data.text_columns=[...] to the text columns")
            return self.text_columns[:needed]
        for candidate in TEXT_COLUMN_CANDIDATES:
            if all(c in columns for c in candidate) and (self._kind != "scored" or len(candidate) == 2):
                return list(candidate)[:needed]
        raise TaskDataError(f"{where}: no text columns found among {columns}; set data.text_columns=[A,B] (a pair, "
                            f"or anchor and positive) or [ANCHOR,POSITIVE,NEGATIVE]")

    def _score(self, raw) -> float:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError("the score is empty")
        if isinstance(raw, bool):
            raise ValueError(f"score {raw!r} is not a number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"score {raw!r} is not a number") from None
        if not np.isfinite(value):
            raise ValueError(f"score {raw!r} is not a finite number")
        if abs(value) > self.score_scale * (1 + 1e-6):
            raise ValueError(f"score {raw!r} is beyond data.score_scale={self.score_scale:g} (scores are divided by "
                             f"it to compare with cosines in [-1, 1]); set data.score_scale to the largest score")
        return value

    def features(self, split: str) -> TextGroupTable:
        if split not in self._features:
            self.kind  # noqa: B018 - the kind decides which columns are read
            self._features[split] = self.cached_features(split, lambda: self._featurize(split))
        return self._features[split]

    def _featurize(self, split: str) -> TextGroupTable:
        where = str(self.files[split])
        columns, rows = read_rows(Path(self.files[split]))
        # dev and test rows are scored and predicted by their first two texts (a hard negative only trains)
        text_cols = self._text_columns(columns, where, None if split == "train" else 2)
        score_col = self._score_column if self._kind == "scored" else None
        if self.label_column is not None and self._kind == "scored":
            score_col = self.label_column
        labelled = score_col is not None and score_col in columns
        if split != "test" and score_col is not None and not labelled:
            raise TaskDataError(f"{where}: no score column {score_col!r}; columns found: {columns}. Set "
                                f"data.label_column=NAME")
        id_col = self.id_column or next((c for c in ID_COLUMN_CANDIDATES if c in columns), None)
        if self.id_column and self.id_column not in columns:
            raise TaskDataError(f"{where}: no id column {self.id_column!r}; columns found: {columns}")
        limit = self.limits[split]
        table, bad, n = TextGroupTable(len(text_cols)), [], 0
        chunk: List[tuple] = []

        def flush():
            encoded = [self.tokenizer.encode_batch([c[1][k] for c in chunk]) for k in range(len(text_cols))]
            for i, (row_id, _, score, gold) in enumerate(chunk):
                table.add([encoded[k][i].ids for k in range(len(text_cols))], score, row_id, gold)
            chunk.clear()

        for row_number, (lineno, row) in enumerate(rows):
            if limit and n >= limit:
                break
            score = gold = None
            try:
                texts = tuple(text_value(row.get(c), c) for c in text_cols)
                empty = next((c for c, t in zip(text_cols, texts) if not t.strip()), None)
                if empty is not None:
                    raise ValueError(f"empty text in column {empty!r}")
                if labelled:
                    gold = self._score(row.get(score_col))
                    score = gold / self.score_scale
            except ValueError as e:
                bad.append(f"{where}: row {lineno}: {e}")
                if self.on_bad_row == "error":
                    raise TaskDataError(f"{bad[-1]}; fix the row, or set data.on_bad_row=skip to skip such rows")
                continue
            row_id = str(row[id_col]) if id_col and row.get(id_col) is not None else str(row_number)
            chunk.append((row_id, texts, score, gold))
            n += 1
            if len(chunk) >= CHUNK:
                flush()
                self.progress(n)
        if chunk:
            flush()
        if bad:
            log.warning("%s: skipped %d bad row(s), e.g. %s", where, len(bad), "; ".join(bad[:3]))
        if n == 0:
            raise TaskDataError(f"{where}: no usable rows" + ("; leave data.test_file unset to predict nothing"
                                                              if split == "test" else ""))
        if split == "train" and self._kind == "retrieval" and n < 2:
            raise TaskDataError(f"{where}: one row; in-batch negatives need at least two rows")
        return table.finish()

    def set_tokenizer(self, tokenizer) -> None:
        super().set_tokenizer(tokenizer)
        self.tokenizer.enable_truncation(self.max_seq_length)

    def collator(self):
        return GroupCollator(self.tokenizer.get_vocab()["[PAD]"], self.max_seq_length if self.static_shapes else None)

    # -- contract: scoring and outputs --------------------------------------------------------------------------
    def _embeddings(self, outputs: dict) -> np.ndarray:
        """(rows, 2, H) in row order."""
        return np.asarray(outputs["embeddings"])[np.argsort(outputs["example_index"], kind="stable")]

    def evaluate(self, split: str, outputs: dict) -> dict:
        emb = self._embeddings(outputs)
        if self.kind == "retrieval":
            return retrieval_metrics(emb[:, 0], emb[:, 1])
        # the scores as read (float64): correlations do not depend on data.score_scale
        return scored_metrics(cosines(emb[:, 0], emb[:, 1]), np.asarray(self.features(split).gold, dtype=np.float64))

    def check_learned(self, split: str, outputs: dict) -> dict:
        emb = self._embeddings(outputs)
        flat = emb.reshape(-1, emb.shape[-1])
        base = ({"predictor": "a random ranking", "recall_at_1": 1 / len(emb)} if self.kind == "retrieval" else
                {"predictor": "a constant similarity", "spearman": 0.0})
        if np.ptp(flat, axis=0).max() <= 1e-6:
            return {"baseline": base, "degenerate": "every text gets the same embedding"}
        value = self.evaluate(split, outputs)[self.main_metric]
        if value <= base.get(self.main_metric, -1.0) + 1e-9:
            return {"baseline": base, "degenerate": f"{self.main_metric} {value:.4f} is no better than "
                                                    f"{base['predictor']}"}
        return {"baseline": base, "degenerate": None}

    def prediction_rows(self, split: str, outputs: dict) -> List[dict]:
        """One dict per input row, in input order: id, the cosine similarity of its two texts (retrieval dev rows:
        also the rank of its positive among all positives), gold score when read."""
        emb = self._embeddings(outputs)
        sims = cosines(emb[:, 0], emb[:, 1])
        rows = [{"similarity": round(float(s), 6)} for s in sims]
        if self.kind == "retrieval" and split != "test":
            for row, rank in zip(rows, positive_ranks(emb[:, 0], emb[:, 1])):
                row["rank"] = int(rank)
        return with_row_ids(rows, self.features(split))

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        return write_jsonl_predictions(self.prediction_rows(split, outputs), out_dir, split)

    def results_info(self) -> dict:
        return {"kind": self.kind, "pooling": self.pooling, "normalize": self.normalize,
                **({"score_scale": self.score_scale} if self.kind == "scored" else {"scale": self.scale})}

    def checkpoint_info(self) -> dict:
        return {"max_seq_length": self.max_seq_length, "kind": self.kind, "pooling": self.pooling,
                "normalize": self.normalize, "score_scale": self.score_scale}


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value > 0


# -- after training: the contract of bert_pl.tasks.predictor ------------------------------------------------------
class EmbeddingPredictor(Predictor):
    """A sentence-embedding model after training: a text -> {"embedding": [...]} (the run's pooling and
    normalisation), a (text_a, text_b) pair -> {"similarity": cosine}. `embed(texts)` gives the vectors as an array.
    Its Hugging Face export is a sentence-transformers folder; its ONNX export returns `embeddings`."""

    pipeline_tag = "sentence-similarity"
    line_format = "one text per line (its embedding), or two texts separated by a tab (their cosine similarity)"
    example_inputs = [("A man is playing a guitar.", "Someone plays the guitar."), "A woman is slicing an onion."]

    def __init__(self, runtime):
        super().__init__(runtime)
        unsupported = runtime.info.get("st_unsupported")
        if unsupported:
            raise PredictError(f"{runtime.source}: its sentence-transformers modules {', '.join(unsupported)} are "
                               f"not supported (bert-pl runs Transformer + Pooling (mean, cls or max) + Normalize); "
                               f"fine-tune from it instead (pretrained={runtime.source})")

    @staticmethod
    def settings(info: dict) -> dict:
        """{"pooling", "normalize"} of a checkpoint (its run's task settings, or a sentence-transformers folder's)."""
        return BertForSentenceEmbedding.checkpoint_kwargs({}, info)

    # -- reading inputs ---------------------------------------------------------------------------------------------
    def text_columns(self, columns: List[str]) -> Optional[List[str]]:
        """A pair of columns as in training (sentence1/sentence2, anchor/positive, ...), else one text column."""
        pair = next((list(c[:2]) for c in TEXT_COLUMN_CANDIDATES if all(x in columns for x in c[:2])), None)
        return pair or super().text_columns(columns)

    def check(self, inputs: list) -> None:
        for n, x in enumerate(inputs, 1):
            if not isinstance(x, str) and not (isinstance(x, (list, tuple)) and len(x) == 2
                                               and all(isinstance(t, str) for t in x)):
                raise PredictError(f"input {n}: a sentence-embedding model takes a text (its embedding) or a pair of "
                                   f"texts (their similarity)")

    # -- predicting -------------------------------------------------------------------------------------------------
    def _vectors(self, texts: List[str], progress: bool = True) -> np.ndarray:
        """The head's own embeddings (pooled, normalised as trained), each text its own sequence; through
        onnxruntime for an ONNX export."""
        enc = self.runtime.encode(texts)
        feats = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in enc]
        return np.stack([o["embeddings"] for o in self.runtime.run(feats, progress)])

    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        texts = list(dict.fromkeys(t for x in inputs for t in ([x] if isinstance(x, str) else x)))
        vectors = dict(zip(texts, self._vectors(texts, progress)))
        out = []
        for x in inputs:
            if isinstance(x, str):
                out.append({"embedding": [round(float(v), 6) for v in vectors[x]]})
            else:
                out.append({"similarity": round(float(cosines(vectors[x[0]], vectors[x[1]])), 6)})
        return out

    def embed_defaults(self) -> dict:
        return {"layers": [-1], **self.settings(self.runtime.info)}

    def embed(self, texts: list, layers, pooling: str, normalize: bool) -> np.ndarray:
        own = self.settings(self.runtime.info)
        if list(layers) == [-1] and pooling == own["pooling"] and (normalize == own["normalize"] or normalize):
            vectors = self._vectors(texts)
            if normalize and not own["normalize"]:
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
            return vectors
        if self.runtime.is_onnx:  # other layers or pooling need the encoder's hidden states
            raise PredictError(f"{self.runtime.source} is an ONNX export of the embedding model: it embeds with its "
                               f"own pooling ({own['pooling']}) and the last layer only; load the checkpoint it was "
                               f"exported from for other layers or pooling")
        return super().embed(texts, layers, pooling, normalize)

    # -- export and cards -------------------------------------------------------------------------------------------
    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        return ["embeddings"]

    @classmethod
    def write_export_extras(cls, info: dict, folder: Path) -> None:
        """The sentence-transformers layout: modules.json (Transformer, Pooling, Normalize when normalised),
        1_Pooling/config.json, sentence_bert_config.json (the run's max_seq_length)."""
        import json

        settings = cls.settings(info)
        hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if settings["normalize"]:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
            (folder / "2_Normalize").mkdir(exist_ok=True)
        (folder / "1_Pooling").mkdir(exist_ok=True)
        pooling = {"word_embedding_dimension": hidden,
                   **{f"pooling_mode_{mode}": settings["pooling"] == name for mode, name in
                      (("cls_token", "cls"), ("mean_tokens", "mean"), ("max_tokens", "max"))},
                   "pooling_mode_mean_sqrt_len_tokens": False}
        length = (info.get("task") or {}).get("max_seq_length") or cls.default_max_seq_length
        files = {"modules.json": modules, "1_Pooling/config.json": pooling,
                 "sentence_bert_config.json": {"max_seq_length": length, "do_lower_case": False},
                 "config_sentence_transformers.json": {"similarity_fn_name": "cosine"}}
        for name, value in files.items():
            (folder / name).write_text(json.dumps(value, indent=2) + "\n")

    @classmethod
    def card_metadata(cls, info: dict) -> dict:
        return {"pipeline_tag": cls.pipeline_tag, "library_name": "sentence-transformers"}
