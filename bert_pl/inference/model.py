"""Using a trained model from Python: `bert_pl.load(...)`, the runtime under predict.py, export and serving.

    import bert_pl
    clf = bert_pl.load("outputs/finetune/mrpc/runs/latest")      # a run folder, .ckpt, latest[:TASK], HF/Google folder
    clf.predict([("The cat sat.", "A cat was sitting.")])       # [{"label": "1", "probabilities": {...}}]
    bert_pl.load("latest:train").fill_mask("Paris is the [MASK] of France.", top_k=5)
    bert_pl.load("outputs/finetune/squad_v1/runs/latest").predict([{"question": ..., "context": ...}])
    bert_pl.load(any_checkpoint).embed(["a sentence"], layers=[-1], pooling="mean")

The head, its label names and the task's settings (max_seq_length, SQuAD's windows and threshold) come from the
checkpoint, so no task config is needed. What a head does with its inputs is its family's `Predictor`
(bert_pl.tasks.predictor), found through the head registry; this module is the part every head shares: loading,
tokenising, and running batches of similar length through the unpadded encoder (or onnxruntime).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

from bert_pl.tasks.predictor import PredictError

log = logging.getLogger("bert_pl")
POOLINGS = ("cls", "mean", "max")


def _progress(total: int, enabled: bool):
    if not enabled or total < 2000:
        return None
    try:
        from rich.progress import Progress
    except ImportError:  # pragma: no cover - rich is a dependency
        return None
    progress = Progress(transient=True)
    progress.start()
    progress.add_task("predicting", total=total)
    return progress


def positive_int(name: str, value, nullable: bool = False):
    """A setting that counts something (batch_size, top_k): a whole number above 0."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PredictError(f"{name}={value!r}: expected a whole number of at least 1" +
                           (" (or null for the model's own)" if nullable else ""))
    return int(value)


def layer_list(layers) -> List[int]:
    layers = list(layers)
    if not layers or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in layers):
        raise PredictError(f"layers={layers}: give a list of layer numbers, e.g. [-1] or [-1,-2]")
    return [int(x) for x in layers]


def _device(device) -> torch.device:
    """The device to run on, refused in one line when it does not exist here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PredictError(f"device={device!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PredictError(f"device={device}: no CUDA GPU is available here (torch.cuda.is_available() is "
                               f"False); pass device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PredictError(f"device={device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                               f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise PredictError(f"device={device}: MPS is not available here; pass device=cpu")
    return dev


def _length(feature: dict) -> int:
    """Tokens of a feature (for multiple choice: of its longest choice)."""
    ids = feature["input_ids"]
    return max(len(s) for s in ids) if len(ids) and not np.isscalar(ids[0]) else len(ids)


class Model:
    """A checkpoint ready to predict; built by `load`. `predictor` is the head family's Predictor."""

    def __init__(self, ckpt, device: Union[str, torch.device] = "cpu", batch_size: int = 64,
                 max_seq_length: Optional[int] = None):
        from bert_pl.io import tokenization
        from bert_pl.io.checkpoints import load_into
        from bert_pl.io.onnx import OnnxNet
        from bert_pl.model.bert import BertConfig
        from bert_pl.model.heads import get_head

        device = _device(device)
        batch_size = positive_int("batch_size", batch_size)
        if not ckpt.tokenizer_json:
            raise PredictError(f"{ckpt.source} has no vocab.txt/tokenizer.json; put the vocab next to the weights")
        self.source, self.head, self.info = ckpt.source, ckpt.head, dict(ckpt.info)
        self.task_info = dict(self.info.get("task") or {})
        config = BertConfig.from_dict({**ckpt.config.to_dict(), "unpad": True})
        self.is_onnx = ckpt.kind == "onnx"
        if self.is_onnx:  # an exported folder: outputs from onnxruntime, settings from bert_pl.json
            self.model = OnnxNet(ckpt.source, self.info["outputs"])
            self.weight_names = frozenset()
        else:
            self.model = get_head(self.head).build_for(config, ckpt.state_dict, self.info)
            load_into(self.model, ckpt.source, ckpt)
            self.weight_names = frozenset(ckpt.state_dict)  # which parts the checkpoint held (an MLM head?)
        self.problem_type = self.info.get("problem_type") or getattr(self.model, "problem_type", None)
        labels = self.info.get("labels")
        self.labels = list(labels) if labels else [f"LABEL_{i}" for i in range(getattr(self.model, "num_labels", 0))]
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.config = config
        self.predictor = get_head(self.head).predictor_class()(self)
        if max_seq_length is None:  # the run's own, else the family's default (within the model's positions)
            max_seq_length = min(self.task_info.get("max_seq_length") or self.predictor.default_max_seq_length,
                                 config.max_position_embeddings)
        self.max_seq_length = config.check_max_seq_length(max_seq_length, "max_seq_length")
        self.tokenizer = tokenization.from_json_string(ckpt.tokenizer_json)
        self.tokenizer.no_padding()  # a shipped tokenizer.json may pad: batches are padded here, per batch
        self.tokenizer.no_truncation()
        self.vocab = self.tokenizer.get_vocab()
        self.truncated = 0  # inputs cut to max_seq_length in the last call

    # -- what every head's predictor uses ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[Union[str, Sequence[str]]]) -> list:
        """Texts or (text_a, text_b) pairs as tokenizer encodings, truncated as in fine-tuning (longest first)."""
        tok = self.tokenizer
        pairs = [t if isinstance(t, str) else tuple(t) for t in texts]
        single = [p for p in pairs if isinstance(p, str)]
        if single and len(single) != len(pairs):
            raise PredictError("inputs mix single texts and pairs; give one kind")
        # one pass: what was cut shows up in `overflowing`
        tok.enable_truncation(self.max_seq_length, strategy="longest_first")
        try:
            enc = tok.encode_batch(pairs)
        finally:
            tok.no_truncation()  # QA and token classification window long inputs themselves
        self.truncated = sum(bool(e.overflowing) for e in enc)
        if self.truncated:
            log.warning("%d input(s) longer than max_seq_length=%d were truncated", self.truncated,
                        self.max_seq_length)
        return enc

    @torch.no_grad()
    def run(self, features: List[dict], progress: bool = True, collate=None) -> List[dict]:
        """Features in batches of similar length (unpadded encoder); the model's outputs per feature, in order."""
        from bert_pl.tasks.base import PaddingCollator

        collate = collate or PaddingCollator(self.vocab["[PAD]"])
        order = np.argsort([_length(f) for f in features], kind="stable")
        out: List[Optional[dict]] = [None] * len(features)
        bar = _progress(len(features), progress)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = {k: v.to(self.device, non_blocking=True) for k, v in collate([features[i] for i in idx]).items()}
            result = self.model(**batch)
            for j, i in enumerate(idx):
                out[i] = {k: v[j].float().cpu().numpy() for k, v in result.items()
                          if torch.is_tensor(v) and v.dim() > 0 and k != "loss"}
                out[i]["length"] = _length(features[i])
            if bar is not None:
                bar.update(bar.task_ids[0], advance=len(idx))
        if bar is not None:
            bar.stop()
        return out

    @torch.no_grad()
    def encoder_vectors(self, texts: list, layers: Sequence[int], pooling: str, normalize: bool) -> np.ndarray:
        """(N, H * len(layers)): each listed layer's hidden states (0 = embeddings, -1 = last) pooled over the
        tokens ([CLS], mean or max), concatenated, L2-normalised if asked."""
        if self.is_onnx:
            raise PredictError(f"{self.source} is an ONNX export of the model with its head: embed needs the encoder's "
                               f"layers; load the checkpoint it was exported from instead")
        encoder = self.model.bert
        n_layers = encoder.config.num_hidden_layers + 1
        bad = [layer for layer in layers if not -n_layers <= layer < n_layers]
        if bad:
            raise PredictError(f"layers={list(layers)}: this model has hidden states 0..{n_layers - 1} (or -1..-{n_layers})")
        from bert_pl.tasks.base import PaddingCollator

        enc = self.encode(texts)
        collate = PaddingCollator(self.vocab["[PAD]"])
        out = []
        for start in range(0, len(enc), self.batch_size):
            chunk = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in enc[start:start + self.batch_size]]
            b = {k: v.to(self.device) for k, v in collate(chunk).items()}
            hidden = encoder(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                             output_hidden_states=True)["hidden_states"]
            mask = b["attention_mask"].unsqueeze(-1).float()
            parts = []
            for layer in layers:
                h = hidden[layer].float()
                if pooling == "cls":
                    parts.append(h[:, 0])
                elif pooling == "mean":
                    parts.append((h * mask).sum(1) / mask.sum(1))
                else:
                    parts.append(h.masked_fill(mask == 0, float("-inf")).amax(1))
            v = torch.cat(parts, -1)
            out.append(torch.nn.functional.normalize(v, dim=-1) if normalize else v)
        return torch.cat(out).cpu().numpy()

    # -- the API --------------------------------------------------------------------------------------------------
    def __call__(self, inputs, **kwargs):
        """The head's default use, as a Hugging Face pipeline is called: predict (fill_mask for a pretraining
        checkpoint, embed for a sentence-embedding model)."""
        return getattr(self, self.predictor.default_mode)(inputs, **kwargs)

    def __repr__(self) -> str:
        labels = self.labels if len(self.labels) <= 8 else self.labels[:8] + ["..."]
        extra = f", labels={labels}" if self.labels else ""
        return (f"Model(source={self.source!r}, head={self.head!r}{extra}, max_seq_length={self.max_seq_length}, "
                f"device={str(self.device)!r}{', onnx' if self.is_onnx else ''})")

    def predict(self, inputs: Union[str, dict, Iterable], progress: bool = True) -> Union[dict, List[dict]]:
        """One result per input, in order. A str, a (text_a, text_b) tuple or a dict (QA, multiple choice) is one
        input and gets one result; a list is several inputs and gets a list. Classification: a text or a (text_a, text_b) pair per input ->
        {"label", "probabilities"} ({"labels", ...} multi-label, {"score"} regression). Span QA: {"question",
        "context"} dicts -> {"answer", "start", "end", "score"} ("" for no answer, v2). Multiple choice:
        {"context", "choices": [...]} dicts -> {"label": the chosen index, "probabilities": [...]}. Token
        classification: a text or a list of words -> {"entities": [{"type", "text", "start", "end"}], "words": [...]}.
        Other heads: see their family's Predictor (bert_pl.model.heads.HEADS names it)."""
        if isinstance(inputs, (str, dict, tuple)):  # list("Great blender") would be one input per character
            return self.predict([inputs], progress)[0]
        inputs = list(inputs)
        if not inputs:
            raise PredictError("no inputs to predict")
        self.predictor.check(inputs)
        return self.predictor.predict(inputs, progress)

    def fill_mask(self, text: Union[str, Sequence[str]], top_k: int = 5) -> list:
        """Top-k tokens and probabilities for each [MASK] of each text (pretraining checkpoints with an MLM head).
        One text -> a list per [MASK] position; several texts -> a list of those."""
        top_k = min(positive_int("top_k", top_k), len(self.vocab))
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise PredictError("no texts to fill")
        results = self.predictor.fill_mask(texts, top_k)
        return results[0] if isinstance(text, str) else results

    def embed(self, texts: Union[str, Sequence[str]], layers: Optional[Sequence[int]] = None,
              pooling: Optional[str] = None, normalize: Optional[bool] = None) -> np.ndarray:
        """Sentence vectors (N, D); one text (a str) -> one vector (D,). Unset settings are the model's own: a
        sentence-embedding run's (or a sentence-transformers folder's) pooling and normalisation, else the last
        layer's [CLS] vector. layers: hidden states to concatenate (0 = embeddings, -1 = last); pooling: cls, mean
        or max; normalize: L2."""
        if isinstance(texts, str):
            return self.embed([texts], layers, pooling, normalize)[0]
        defaults = self.predictor.embed_defaults()
        layers = layer_list(defaults["layers"] if layers is None else layers)
        pooling = defaults["pooling"] if pooling is None else pooling
        normalize = defaults["normalize"] if normalize is None else bool(normalize)
        if pooling not in POOLINGS:
            raise PredictError(f"pooling={pooling!r}: use {', '.join(POOLINGS)}")
        texts = list(texts)
        if not texts:
            raise PredictError("no texts to embed")
        return self.predictor.embed(texts, layers, pooling, normalize)


def load(path, device: Union[str, torch.device] = "cpu", batch_size: int = 64,
         max_seq_length: Optional[int] = None) -> Model:
    """A model ready to predict from any checkpoint: a bert-pl .ckpt or run folder, `latest` / `latest:TASK`, a
    Hugging Face or Google folder (a sentence-transformers folder keeps its pooling), a hub id (online), or an ONNX
    export (`python -m bert_pl.export --format onnx`; runs under onnxruntime on CPU)."""
    from bert_pl.io.checkpoints import resolve
    from bert_pl.io.onnx import is_export, read_export

    # settings first: a wrong one is reported before a large checkpoint is read
    _device(device)
    positive_int("batch_size", batch_size)
    positive_int("max_seq_length", max_seq_length, nullable=True)
    folder = Path(str(path)).expanduser()
    if is_export(folder):
        if torch.device(device).type != "cpu":
            raise PredictError(f"{folder} is an ONNX export, run on CPU by onnxruntime: pass device=cpu")
        return Model(read_export(folder), device, batch_size, max_seq_length)
    return Model(resolve(path, key="model"), device, batch_size, max_seq_length)
