"""The task contract after training: what a head's family does once a model is trained.

Training is `bert_pl.tasks.base.Task`'s job; everything after it (`bert_pl.load(...).predict`, `predict.py`, the
HTTP server, `python -m bert_pl.export`, the model card) asks the head's `Predictor`, so a new family adds a subclass
in its own module and names it in its `Head` entry (`bert_pl.model.heads.HEADS`, `predictor="module:Class"`):

    class SpanPredictor(Predictor):                # bert_pl/tasks/squad.py
        default_max_seq_length = 384
        line_format = "question<TAB>context"
        def from_fields(self, fields, where): ...  # a text line's tab-separated fields -> one input
        def from_row(self, row, columns, where): ...   # a csv/jsonl row -> one input
        def predict(self, inputs, progress): ...   # inputs -> one result dict each, in order

A Predictor is built around the runtime (`bert_pl.inference.model.Model`): `self.runtime` gives the tokenizer and
vocab, `labels`, `task_info` (the settings the run was fine-tuned with), `max_seq_length`, `encode(texts)` (truncated
as in fine-tuning) and `run(features)` (batches of similar length through the unpadded encoder, or onnxruntime for an
ONNX export; the head's outputs per feature). Class-level hooks (ONNX outputs and axes, export extras, card metadata)
need no runtime. Bad inputs raise `PredictError` naming the input ("input 3: ...") so the caller can say it in one line
(predict.py) or answer 400 (the server).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bert_pl.errors import UserError
from bert_pl.tasks.readers import ID_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES, text_value

log = logging.getLogger("bert_pl")

SEQUENCE_AXES = {0: "batch", 1: "sequence"}  # ONNX inputs of one sequence per example


class PredictError(UserError, ValueError):
    """A bad prediction input or setting; the message names the input (or setting) and the fix."""


class Predictor:
    """One head's life after training: reading prediction inputs, predicting, ONNX outputs, export extras, card.

    The defaults here read and embed plain texts and pairs (what every encoder can do); a family overrides what its
    head does differently."""

    default_max_seq_length = 128
    default_mode = "predict"  # what predict.py's mode=auto runs: predict | fill_mask | embed
    line_format = "one text per line, or two texts separated by a tab (a pair)"
    pipeline_tag: Optional[str] = None  # the Hugging Face Hub's pipeline tag, for model cards
    # Inputs as `predict` takes them: shown in model cards, the server's /info and --help, and run by the tests of
    # every head (export, serving) so that each family is checked the same way.
    example_inputs: list = ["The cat sat on the mat.", "Stocks fell sharply today."]
    onnx_input_axes: Dict[int, str] = SEQUENCE_AXES

    def __init__(self, runtime):
        self.runtime = runtime

    # -- reading inputs ---------------------------------------------------------------------------------------------
    def from_fields(self, fields: List[str], where: str):
        """One input from a text line's tab-separated fields (predict.py's .txt/stdin/text=; `where` names the line)."""
        if len(fields) > 2:
            raise PredictError(f"{where}: {len(fields)} tab-separated fields; give one text, or two for a pair")
        return fields[0] if len(fields) == 1 else tuple(fields)

    def text_columns(self, columns: List[str]) -> Optional[List[str]]:
        """The columns of a csv/jsonl row that make one input when text_columns= is not given (None: not found)."""
        return next((list(c) for c in TEXT_COLUMN_CANDIDATES if all(x in columns for x in c)), None)

    def from_row(self, row: dict, columns: List[str], where: str):
        """One input from a row's `columns` (the given or found text columns)."""
        try:
            values = [text_value(row.get(c), c) for c in columns]
        except ValueError as e:
            raise PredictError(f"{where}: {e}") from None
        return values[0] if len(values) == 1 else tuple(values)

    def read_rows(self, path: str, columns: List[str], rows, text_columns: Optional[List[str]],
                  id_column: Optional[str]) -> Tuple[List[str], list]:
        """(ids, inputs) from the rows of a csv/tsv/json/jsonl file: the text columns given or found, and an id per
        row (the id_column given, or an id/idx/index/guid column, else the row's number from 0)."""
        wanted = list(text_columns) if text_columns else self.text_columns(columns)
        if not wanted or any(c not in columns for c in wanted):
            raise PredictError(f"{path}: text column(s) {wanted or '?'} not found; columns: {columns}. Pass "
                               f"text_columns=[...]")
        id_col = id_column or next((c for c in ID_COLUMN_CANDIDATES if c in columns), None)
        ids, inputs = [], []
        for n, (lineno, row) in enumerate(rows):
            inputs.append(self.from_row(row, wanted, f"{path}: row {lineno}"))
            ids.append(str(row[id_col]) if id_col and row.get(id_col) is not None else str(n))
        return ids, inputs

    def read_file(self, path: Path) -> Optional[list]:
        """Inputs from a file in one of the family's own training formats (e.g. CoNLL columns), or None to read it
        as text lines (.txt) or rows (.csv .tsv .json .jsonl .parquet)."""
        return None

    def check(self, inputs: list) -> None:
        """Refuse inputs the model cannot take, all at once, before any is run: each input's type and shape, and
        what the model needs (e.g. pairs for a pair model). `Model.predict` calls it before `predict`; the server
        calls it per request, so a bad request is refused before it joins a batch."""

    # -- predicting -------------------------------------------------------------------------------------------------
    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        raise PredictError(f"{self.runtime.source}: predict is not available for {self.runtime.head} checkpoints")

    def fill_mask(self, texts: List[str], top_k: int) -> list:
        raise PredictError(f"{self.runtime.source} has no masked-LM head (cls.predictions): fill_mask needs a "
                           f"pretraining checkpoint (train.py's, or a Hugging Face BertForPreTraining/BertForMaskedLM "
                           f"folder)")

    def embed_defaults(self) -> dict:
        """embed()'s settings when not given: layers, pooling (cls | mean | max), normalize."""
        return {"layers": [-1], "pooling": "cls", "normalize": False}

    def embed(self, texts: list, layers: Sequence[int], pooling: str, normalize: bool) -> np.ndarray:
        """Sentence vectors (N, H * len(layers)) pooled from the encoder's hidden states."""
        return self.runtime.encoder_vectors(texts, layers, pooling, normalize)

    # -- export and cards (class level: no runtime) ----------------------------------------------------------------
    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        """The model's outputs an ONNX export returns, in order."""
        raise NotImplementedError

    @classmethod
    def onnx_output_axes(cls, name: str) -> Dict[int, str]:
        """Dynamic axes of one ONNX output."""
        return {0: "batch"}

    @classmethod
    def write_export_extras(cls, info: dict, folder: Path) -> None:
        """Files a Hugging Face export folder needs beyond config, weights and tokenizer (none by default)."""

    @classmethod
    def card_metadata(cls, info: dict) -> dict:
        """Model-card metadata the family knows (pipeline_tag)."""
        return {"pipeline_tag": cls.pipeline_tag} if cls.pipeline_tag else {}
