"""Task heads on the encoder (sequence classification/regression/multi-label, span QA, token classification,
multiple choice, sentence embeddings), and the one registry of heads (`HEADS`).

A head is a model class plus what the rest of the project needs to know about it: which outputs are gathered for
evaluation, whether they are ragged (one row per feature of varying width), the Hugging Face architecture name and
weight prefix used to export and recognise checkpoints, and `predictor`: the class, in the module of the task family
that trains the head, that owns its life after training (reading prediction inputs, predicting, ONNX outputs, export
extras, model card; the contract is `bert_pl.tasks.predictor.Predictor`). A new task family registers its head here
once; prediction, export and checkpoint code ask this registry and never name a head.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bert_pl.model.bert import BertConfig, BertForPreTraining, BertModel, init_weights

PROBLEM_TYPES = ("single_label", "regression", "multi_label")


class BertForSequenceClassification(nn.Module):
    """Pooled [CLS] output -> dropout -> one linear layer. The loss follows `problem_type`: softmax cross-entropy
    (single_label), MSE on one output (regression, as STS-B; the default when num_labels=1), or a sigmoid + binary
    cross-entropy per label (multi_label)."""

    def __init__(self, config: BertConfig, num_labels: int, classifier_dropout: Optional[float] = None,
                 problem_type: Optional[str] = None):
        super().__init__()
        problem_type = problem_type or ("regression" if num_labels == 1 else "single_label")
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type={problem_type!r} is not one of {PROBLEM_TYPES}")
        self.config = config
        self.num_labels = num_labels
        self.problem_type = problem_type
        self.bert = BertModel(config)
        p = config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_weights(self, config.initializer_range)

    @staticmethod
    def checkpoint_kwargs(state_dict: dict, info: dict, num_labels: int) -> dict:
        """Settings a checkpoint's weights and info imply (see Head.build_for)."""
        return {"problem_type": info.get("problem_type") or ("regression" if num_labels == 1 else "single_label")}

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        pooled = self.bert(input_ids, token_type_ids, attention_mask)["pooled_output"]
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            elif self.problem_type == "multi_label":
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels)
        return {"logits": logits, "loss": loss}


class BertForQuestionAnswering(nn.Module):
    """Sequence output -> one linear layer giving start and end logits; loss = mean of the two cross-entropies."""

    def __init__(self, config: BertConfig, **_unused):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        init_weights(self, config.initializer_range)

    @staticmethod
    def checkpoint_kwargs(state_dict: dict, info: dict, **known) -> dict:
        return {}

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None, end_positions=None):
        seq = self.bert(input_ids, token_type_ids, attention_mask)["sequence_output"]
        start_logits, end_logits = self.qa_outputs(seq).float().unbind(-1)
        loss = None
        if start_positions is not None:
            loss = (F.cross_entropy(start_logits, start_positions) + F.cross_entropy(end_logits, end_positions)) / 2
        return {"start_logits": start_logits, "end_logits": end_logits, "loss": loss}


class BertForTokenClassification(nn.Module):
    """Each token's final hidden state -> dropout -> one linear layer (the paper's NER setup, section 5.3); labels
    (B, S) with -100 where a token is not scored (continuation pieces, specials, padding)."""

    def __init__(self, config: BertConfig, num_labels: int, classifier_dropout: Optional[float] = None, **_unused):
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        p = config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_weights(self, config.initializer_range)

    @staticmethod
    def checkpoint_kwargs(state_dict: dict, info: dict, **known) -> dict:
        return {}

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        seq = self.bert(input_ids, token_type_ids, attention_mask)["sequence_output"]
        logits = self.classifier(self.dropout(seq))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, self.num_labels), labels.reshape(-1), ignore_index=-100)
        return {"logits": logits, "loss": loss}


class BertForMultipleChoice(nn.Module):
    """Each of the k choices as [CLS] context [SEP] choice [SEP]; the pooled [CLS] -> dropout -> one linear layer
    gives one score per choice; softmax over the k choices (the paper's SWAG setup, section 4.4).
    Inputs are (B, K, S); logits (B, K)."""

    def __init__(self, config: BertConfig, classifier_dropout: Optional[float] = None, **_unused):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        p = config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, 1)
        init_weights(self, config.initializer_range)

    @staticmethod
    def checkpoint_kwargs(state_dict: dict, info: dict, **known) -> dict:
        return {}

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        b, k, s = input_ids.shape
        flat = [t.reshape(b * k, s) if t is not None else None for t in (input_ids, token_type_ids, attention_mask)]
        pooled = self.bert(*flat)["pooled_output"]
        logits = self.classifier(self.dropout(pooled)).view(b, k)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return {"logits": logits, "loss": loss}


POOLINGS = ("mean", "cls", "max")


def pool(tokens: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(N, S, H) token states and their (N, S) mask -> (N, H): the mean or the max over real tokens, or [CLS]."""
    if pooling == "cls":
        return tokens[:, 0]
    m = mask.unsqueeze(-1).to(tokens.dtype)
    if pooling == "max":
        return tokens.masked_fill(m == 0, torch.finfo(tokens.dtype).min).amax(1)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9)


class BertForSentenceEmbedding(nn.Module):
    """A bi-encoder (bert_pl.tasks.sentence_embedding): encoder -> pooling (mean, cls or max over the real tokens) ->
    L2 normalisation (`normalize`). No weights of its own: a bare encoder's, as sentence-transformers' Transformer +
    Pooling (+ Normalize), so its Hugging Face export is a sentence-transformers folder.

    `input_ids` (N, S) gives `embeddings` (N, H); (B, K, S) (rows of K texts) gives (B, K, H) and, with K >= 2, the
    training loss: `loss="cosine"`: MSE of cos(text 0, text 1) and `labels` (scores in [-1, 1], as
    sentence-transformers' CosineSimilarityLoss); `loss="ranking"`: cross-entropy of `scale` x cos(anchor i, every
    positive and hard negative of the batch), positive i the right answer (MultipleNegativesRankingLoss)."""

    def __init__(self, config: BertConfig, pooling: str = "mean", normalize: bool = True, loss: str = "cosine",
                 scale: float = 20.0, **_unused):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        if loss not in ("cosine", "ranking"):
            raise ValueError(f"loss={loss!r} is not one of cosine, ranking")
        self.config = config
        self.pooling, self.normalize, self.loss, self.scale = pooling, bool(normalize), loss, float(scale)
        self.bert = BertModel(config, add_pooling_layer=False)

    @staticmethod
    def checkpoint_kwargs(state_dict: dict, info: dict, **known) -> dict:
        """Pooling and normalisation as the run saved them (its task settings) or a sentence-transformers folder
        says (`folder_info`); mean and normalised when neither does."""
        task = info.get("task") or {}
        return {"pooling": task.get("pooling", info.get("pooling", "mean")),
                "normalize": bool(task.get("normalize", info.get("normalize", True)))}

    @staticmethod
    def folder_info(folder: Path) -> dict:
        """What a sentence-transformers folder (modules.json) says about its pipeline: the pooling mode
        (1_Pooling/config.json), whether a Normalize module follows, max_seq_length (sentence_bert_config.json), and
        the modules bert-pl cannot run (e.g. Dense), refused when the model is used to embed."""
        import json

        def read(path: Path) -> dict:
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return value if isinstance(value, (dict, list)) else {}

        modules = read(folder / "modules.json")
        modules = modules if isinstance(modules, list) else []
        info: dict = {"normalize": False, "st_unsupported": []}
        for m in modules:
            kind = str(m.get("type", "")).rsplit(".", 1)[-1] if isinstance(m, dict) else ""
            if kind == "Pooling":
                cfg = read(folder / str(m.get("path", "")) / "config.json")
                modes = [mode for mode in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                                           "weightedmean_tokens", "lasttoken") if cfg.get(f"pooling_mode_{mode}")]
                known = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}
                if len(modes) == 1 and modes[0] in known:
                    info["pooling"] = known[modes[0]]
                else:
                    info["st_unsupported"].append(f"Pooling ({' + '.join(modes) or 'no mode'})")
            elif kind == "Normalize":
                info["normalize"] = True
            elif kind != "Transformer":
                info["st_unsupported"].append(kind or "?")
        length = read(folder / "sentence_bert_config.json").get("max_seq_length")
        if isinstance(length, int) and not isinstance(length, bool):
            info["task"] = {"max_seq_length": length}
        if not info["st_unsupported"]:
            del info["st_unsupported"]
        return info

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        shape = input_ids.shape
        flat = input_ids.reshape(-1, shape[-1])
        mask = attention_mask.reshape(-1, shape[-1]) if attention_mask is not None else torch.ones_like(flat)
        types = token_type_ids.reshape(-1, shape[-1]) if token_type_ids is not None else None
        emb = pool(self.bert(flat, types, mask)["sequence_output"], mask, self.pooling)
        if self.normalize:
            emb = F.normalize(emb.float(), dim=-1)
        emb = emb.reshape(*shape[:-1], emb.shape[-1])
        loss = None
        if emb.dim() == 3 and emb.shape[1] >= 2:  # rows of texts: training or evaluation
            loss = self._loss(emb.float(), labels)
        return {"embeddings": emb, "loss": loss}

    def _loss(self, emb: torch.Tensor, labels) -> Optional[torch.Tensor]:
        if self.loss == "cosine":
            return None if labels is None else F.mse_loss(F.cosine_similarity(emb[:, 0], emb[:, 1], dim=-1),
                                                          labels.float())
        anchors = F.normalize(emb[:, 0], dim=-1)
        candidates = F.normalize(emb[:, 1:].transpose(0, 1).reshape(-1, emb.shape[-1]), dim=-1)  # positives first
        scores = self.scale * anchors @ candidates.T
        return F.cross_entropy(scores, torch.arange(len(anchors), device=scores.device))


@dataclass(frozen=True)
class Head:
    """What the project knows about one head: its model class, the outputs gathered for evaluation (`ragged`: one
    array per feature, of varying width, as SQuAD's logits over each window), its Hugging Face names, and the family
    class that predicts with it."""

    name: str
    model: type
    outputs: Tuple[str, ...]
    hf_architecture: str
    weight_prefix: str          # the head's own parameters (e.g. "classifier."), absent from a bare encoder; "" if none
    predictor: str              # "module:Class" of its bert_pl.tasks.predictor.Predictor (imported when first used)
    ragged: bool = False
    takes_labels: bool = False  # the model class takes num_labels (and the labels go into exported configs)
    # A file whose presence marks a Hugging Face folder as this head (e.g. sentence-transformers' modules.json), and
    # what the head reads from such a folder into the checkpoint's info (settings its model class is built with).
    hf_marker: Optional[str] = None
    folder_info: Optional[Callable[[Path], dict]] = None

    def build(self, config: BertConfig, **kwargs) -> nn.Module:
        return self.model(config, **kwargs)

    def build_for(self, config: BertConfig, state_dict: dict, info: dict) -> nn.Module:
        """The model a checkpoint's weights fit: num_labels from the head's weights, settings from its info."""
        kwargs = {}
        if self.takes_labels:
            kwargs["num_labels"] = state_dict[self.weight_prefix + "weight"].shape[0]
        kwargs.update(self.model.checkpoint_kwargs(state_dict, info, **kwargs))
        return self.model(config, **kwargs)

    def gather(self, parts: Dict[str, list]) -> dict:
        """Concatenate per-batch outputs (lists of CPU tensors) into numpy arrays (ragged: a list per feature)."""
        out = {}
        for key, tensors in parts.items():
            if self.ragged and key in self.outputs:
                out[key] = [row.numpy() for t in tensors for row in t]
            else:
                out[key] = torch.cat(tensors).numpy()
        return out

    def predictor_class(self) -> type:
        """The family's Predictor class (imported here, not at registry time: families import this module)."""
        import importlib

        module, _, name = self.predictor.partition(":")
        return getattr(importlib.import_module(module), name)


PRETRAINING = "pretraining"  # the head of train.py's checkpoints (and of bare encoders)

HEADS: Dict[str, Head] = {h.name: h for h in [
    Head(PRETRAINING, BertForPreTraining, ("mlm_logits", "nsp_logits"), "BertForPreTraining", "cls.",
         "bert_pl.pretraining.fill_mask:MaskedLMPredictor"),
    Head("classification", BertForSequenceClassification, ("logits",), "BertForSequenceClassification",
         "classifier.", "bert_pl.tasks.classification:ClassificationPredictor", takes_labels=True),
    Head("span", BertForQuestionAnswering, ("start_logits", "end_logits"), "BertForQuestionAnswering",
         "qa_outputs.", "bert_pl.tasks.squad:SpanPredictor", ragged=True),
    # logits (B, S, C) of batch-dependent width: one (S, C) array per feature
    Head("token_classification", BertForTokenClassification, ("logits",), "BertForTokenClassification",
         "classifier.", "bert_pl.tasks.token_classification:TagPredictor", ragged=True, takes_labels=True),
    Head("multiple_choice", BertForMultipleChoice, ("logits",), "BertForMultipleChoice", "classifier.",
         "bert_pl.tasks.multiple_choice:ChoicePredictor"),
    # no weights of its own (a bare encoder's): recognised by a sentence-transformers folder's modules.json
    Head("sentence_embedding", BertForSentenceEmbedding, ("embeddings",), "BertModel", "",
         "bert_pl.tasks.sentence_embedding:EmbeddingPredictor", hf_marker="modules.json",
         folder_info=BertForSentenceEmbedding.folder_info),
]}


def get_head(name: str) -> Head:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; registered heads: {', '.join(HEADS)}")
    return HEADS[name]


def head_of(state_dict_keys, info: Optional[dict] = None) -> str:
    """Which head a checkpoint holds: as recorded (bert-pl `head`, HF `architectures`), else by weight prefix."""
    info = info or {}
    if info.get("head") in HEADS:
        return info["head"]
    for arch in info.get("architectures") or []:
        for head in HEADS.values():
            if head.hf_architecture == arch and head.hf_marker is None:
                return head.name
    keys = list(state_dict_keys)
    for head in task_heads():
        if head.weight_prefix and any(k.startswith(head.weight_prefix) for k in keys):
            return head.name
    return PRETRAINING


def task_heads():
    """The heads a task fine-tunes (every head but pretraining's)."""
    return [h for h in HEADS.values() if h.name != PRETRAINING]


def head_of_folder(folder: Path) -> Optional[Head]:
    """The head a Hugging Face folder is marked as by a file of its own (`Head.hf_marker`), if any."""
    return next((h for h in HEADS.values() if h.hf_marker and (Path(folder) / h.hf_marker).is_file()), None)
