"""BERT encoder and heads in one file (Devlin et al., 2018), following Google's `modeling.py`.

Parameter names follow Google's layout as Hugging Face spells it (`bert.encoder.layer.N.attention.self.query`,
`cls.predictions.transform`, ...), so checkpoints convert by renaming only.

Two optional fast paths, both exact (same numbers as the plain path):
- `unpad`: the dense layers (QKV, attention output, FFN, LayerNorm) run over real tokens only; only the
  attention product itself is re-padded per layer, so a padded batch costs what its real tokens cost.
- `attention="varlen"` (with `unpad`; the default "auto" picks it on CUDA): the attention product runs over the
  real tokens too, one sequence at a time, with sequence boundaries (`cu_seqlens`) from the mask or from
  `sequence_ids` for packed rows: torch's FlashAttention variable-length kernel (CUDA, bf16/fp16, no attention
  dropout), else SDPA over nested jagged tensors (any device, dropout included). Nothing is re-padded.
- `attention="onnx"` (set by the ONNX export, never needed to train or predict): the padded path written as the
  ops onnxruntime's transformer optimizer recognises (separate Q/K/V projections, an explicit scaled
  QK^T + additive mask -> softmax -> V product, position ids sliced from a constant table), so the exported graph
  fuses into its Attention and EmbedLayerNormalization kernels. Same numbers as SDPA within float rounding.
- masked-LM gather: `BertForPreTraining` takes `mlm_positions` and applies the MLM head to those positions
  only, instead of projecting every token onto the 30k-word vocabulary.

One architecture option beyond Google's: `layer_norm_position="pre"` normalises each sublayer's input instead of
its output (x + f(LN(x)); Xiong et al. 2020, as in Cramming, Geiping & Goldstein 2022), with one more LayerNorm
after the last layer (`encoder.LayerNorm`): the usual remedy for post-LN's sensitivity to learning rate and warmup
(at BERT-Mini on a CPU budget it gained nothing: README). Google's and Hugging Face's BERT cannot represent it, so
such a model exports to ONNX and our own checkpoints, not to a Hugging Face folder. The default, "post", is BERT.

Packed rows (several sequences in one row, Krell et al. 2021): `sequence_ids` numbers each row's sequences 1..k
(0 = padding); attention stays within a sequence, `position_ids` restart at each, and `nsp_positions` says where
each sequence's [CLS] is. The loss equals that of the same sequences unpacked.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bert_pl.errors import UserConfigError


def read_json_config(path) -> dict:
    """A config.json / bert_config.json; a malformed one is a one-line error naming the file and the place."""
    from bert_pl.errors import UserError

    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}); fix or re-download the model's config") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object of settings, found {type(value).__name__}")
    return value


MIN_SEQ_LENGTH = 8  # the shortest max_seq_length any task or prediction accepts
ATTENTIONS = ("auto", "sdpa", "varlen", "onnx")


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    unpad: bool = False  # fast path: dense layers over real tokens only
    attention: str = "auto"  # with unpad: varlen | sdpa (re-pad for the product) | auto (varlen on CUDA); onnx: export
    layer_norm_position: str = "post"  # post (BERT) | pre (LayerNorm before each sublayer + one after the encoder)

    FAST_PATH_KEYS = ("unpad", "attention")  # how to compute, not what: kept out of exported (HF) configs

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}"
            )
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention={self.attention!r} is not one of {', '.join(ATTENTIONS)}")
        if self.layer_norm_position not in ("post", "pre"):
            raise ValueError(f"layer_norm_position={self.layer_norm_position!r} is not one of post, pre")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not one of {sorted(ACTIVATIONS)}")

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        """Accepts Google's bert_config.json, a Hugging Face config.json or our own dict; ignores extra keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(d).items() if k in names})

    @classmethod
    def from_json_file(cls, path) -> "BertConfig":
        return cls.from_dict(read_json_config(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def check_max_seq_length(self, value, key: str = "max_seq_length") -> int:
        """The one rule for a sequence length (training, prediction, feature extraction, serving): a whole number
        from MIN_SEQ_LENGTH up to the model's max_position_embeddings. `key` names the setting in the message (e.g.
        data.max_seq_length, --max_seq_length)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SEQ_LENGTH:
            raise UserConfigError(f"{key}={value!r}: must be a whole number of at least {MIN_SEQ_LENGTH} tokens "
                                  f"([CLS] A [SEP] B [SEP] and a few words)")
        if value > self.max_position_embeddings:
            raise UserConfigError(f"{key}={value} exceeds the model's max_position_embeddings="
                                  f"{self.max_position_embeddings}; lower {key} (or raise "
                                  f"model.max_position_embeddings when training from scratch)")
        return value

    @property
    def num_parameters_dense(self) -> int:
        """Weights of the matmuls run per token (for FLOP counts): encoder only."""
        h, i = self.hidden_size, self.intermediate_size
        return self.num_hidden_layers * (4 * h * h + 2 * h * i)


def _gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu": F.gelu, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh, "relu": F.relu}


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids, position_ids=None, export: bool = False):
        if position_ids is None and export:  # a slice of a constant table: the form EmbedLayerNormalization matches
            table = torch.arange(self.position_embeddings.num_embeddings, device=input_ids.device)[None]
            position_ids = table[:, :input_ids.shape[1]]
        elif position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids) + self.token_type_embeddings(
            token_type_ids
        )
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x, mask, unpad_index=None, batch_shape=None, varlen=None):
        """x: (B, S, H), or (T, H) real tokens when `unpad_index` gives their flat positions in (B*S); with
        `varlen` = (cu_seqlens, max_len) the product runs over those tokens too. `mask` is boolean (True = attend),
        or additive (0 / a large negative number) on the export path (`varlen == "onnx"`)."""
        if isinstance(varlen, str):
            return self._export_attention(x, mask)
        # One GEMM for Q, K and V (faster than three, same numbers); the parameters keep Google's names.
        w = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        b = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        qkv = F.linear(x, w, b)
        if varlen is not None:
            return _varlen_attention(qkv, *varlen, self.num_heads, self.dropout_p if self.training else 0.0)
        if unpad_index is not None:  # re-pad for the attention product only (one copy for Q, K and V together)
            qkv = _pad(qkv, unpad_index, batch_shape)
        q, k, v = qkv.chunk(3, dim=-1)
        b, s, h = q.shape
        q, k, v = (t.view(b, s, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0
        )
        ctx = ctx.transpose(1, 2).reshape(b, s, h)
        if unpad_index is not None:
            ctx = ctx.reshape(b * s, h).index_select(0, unpad_index)
        return ctx

    def _export_attention(self, x, mask):
        """The same product as SDPA, in the ops (and order) onnxruntime's attention fusion matches: Q, K and V
        each MatMul + Add -> Reshape -> Transpose; (Q K^T) / sqrt(d) + mask -> Softmax -> x V -> Transpose ->
        Reshape."""
        b, s, h = x.shape
        q, k, v = (t(x).view(b, s, self.num_heads, self.head_dim) for t in (self.query, self.key, self.value))
        scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        probs = F.dropout(scores.softmax(-1), self.dropout_p, self.training)
        return torch.matmul(probs, v.transpose(1, 2)).transpose(1, 2).reshape(b, s, h)


class BertSelfOutput(nn.Module):
    """Projection, dropout, residual, LayerNorm: shared shape of the attention output and the FFN output.
    Post-LN (BERT) normalises the sum; pre-LN leaves the sum alone and its sublayer normalises the input with this
    same LayerNorm (`normalize_input`), so both layouts have the same parameters under the same names."""

    def __init__(self, config: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.pre = config.layer_norm_position == "pre"

    def normalize_input(self, x):
        return self.LayerNorm(x) if self.pre else x

    def forward(self, x, residual):
        x = self.dropout(self.dense(x)) + residual
        return x if self.pre else self.LayerNorm(x)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config, config.hidden_size)

    def forward(self, x, mask, unpad_index=None, batch_shape=None, varlen=None):
        return self.output(self.self(self.output.normalize_input(x), mask, unpad_index, batch_shape, varlen), x)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, x):
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertSelfOutput(config, config.intermediate_size)

    def forward(self, x, mask, unpad_index=None, batch_shape=None, varlen=None):
        attn = self.attention(x, mask, unpad_index, batch_shape, varlen)
        return self.output(self.intermediate(self.output.normalize_input(attn)), attn)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        # pre-LN: the residual stream is never normalised inside the layers, so once at the end
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) \
            if config.layer_norm_position == "pre" else None


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, sequence_output, cls_positions=None):
        """[CLS] of each row (B, H), or of each packed sequence at `cls_positions` (B, K) -> (B, K, H)."""
        if cls_positions is None:
            return torch.tanh(self.dense(sequence_output[:, 0]))
        return torch.tanh(self.dense(_gather(sequence_output, cls_positions)))


def _gather(seq, positions):
    """(B, S, H) at (B, P) positions -> (B, P, H)."""
    return torch.gather(seq, 1, positions.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))


try:  # FlashAttention's variable-length kernel (torch >= 2.10, CUDA only)
    from torch.nn.attention.varlen import varlen_attn as _flash_varlen
except ImportError:  # pragma: no cover - older torch
    _flash_varlen = None


def _cu_seqlens(batch_shape, unpad_index, sequence_ids=None):
    """(cu_seqlens int32 (N+1,), longest) of the sequences among the real tokens in flat row-major order: one per
    row, or per packed sequence (`sequence_ids` 1..k) within a row. One host sync (the kernels take the longest
    length as a number)."""
    b, s = batch_shape
    key = torch.arange(b, device=unpad_index.device)[:, None] * (s + 1)
    key = (key + sequence_ids if sequence_ids is not None else key.expand(b, s)).flatten().index_select(0, unpad_index)
    counts = torch.unique_consecutive(key, return_counts=True)[1]
    return F.pad(counts.cumsum(0, dtype=torch.int32), (1, 0)), int(counts.max())


def _varlen_attention(qkv, cu_seqlens, max_len: int, heads: int, dropout_p: float):
    """Attention within each sequence of the flat (T, 3H) projections -> (T, H), with no padding anywhere."""
    t = qkv.shape[0]
    q, k, v = (x.contiguous() for x in qkv.view(t, 3, heads, -1).unbind(1))  # (T, heads, head_dim)
    if _flash_varlen is not None and qkv.is_cuda and dropout_p == 0.0 and qkv.dtype in (torch.float16, torch.bfloat16):
        out = _flash_varlen(q, k, v, cu_seqlens, cu_seqlens, max_len, max_len)
    else:  # attention dropout, fp32 or CPU: SDPA over nested jagged tensors (its kernels support dropout)
        offsets = cu_seqlens.long()
        q, k, v = (torch.nested.nested_tensor_from_jagged(x, offsets, max_seqlen=max_len).transpose(1, 2)
                   for x in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p).transpose(1, 2).values()
    return out.reshape(t, -1)


_VARLEN_CHECKED: dict = {}


def _varlen_works(x) -> bool:
    """attention="auto": use the varlen path on this device only once a small case runs and equals SDPA (a kernel
    missing from this torch build or card then costs a warning, not a crash)."""
    key = (x.device.type, x.device.index, torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda")
           else x.dtype)
    if key not in _VARLEN_CHECKED:
        try:
            with torch.no_grad():
                g = torch.Generator(device=x.device).manual_seed(0)
                qkv = torch.randn(7, 3 * 64, device=x.device, generator=g).to(key[2])
                cu = torch.tensor([0, 3, 7], dtype=torch.int32, device=x.device)
                got = _varlen_attention(qkv, cu, 4, 2, 0.0).float()
                ref = torch.cat([F.scaled_dot_product_attention(*(t.view(1, -1, 2, 32).transpose(1, 2) for t in
                                                                  qkv[a:b].float().chunk(3, -1)))
                                 .transpose(1, 2).reshape(b - a, -1) for a, b in ((0, 3), (3, 7))])
                _VARLEN_CHECKED[key] = bool(torch.allclose(got, ref, atol=2e-2, rtol=2e-2))
        except Exception as e:  # noqa: BLE001 (any failure means: not on this setup)
            import logging

            logging.getLogger(__name__).warning("variable-length attention does not run here (%s: %s); using SDPA",
                                                type(e).__name__, e)
            _VARLEN_CHECKED[key] = False
    return _VARLEN_CHECKED[key]


def _pad(flat, index, batch_shape):
    """Scatter real-token rows (T, H) back into a zero-padded (B, S, H) tensor."""
    b, s = batch_shape
    out = flat.new_zeros(b * s, flat.shape[-1])
    return out.index_copy(0, index, flat).view(b, s, -1)


class BertModel(nn.Module):
    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_hidden_states: bool = False,
                sequence_ids=None, position_ids=None, cls_positions=None):
        """Returns dict(sequence_output (B,S,H), pooled_output (B,H), hidden_states: embeddings + each layer).
        Packed rows: `sequence_ids` replaces `attention_mask`; pooled_output is then (B,K,H) at `cls_positions`."""
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}; lower max_seq_length"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        export = self.config.attention == "onnx" and not self.config.unpad and sequence_ids is None
        x = self.embeddings(input_ids, token_type_ids, position_ids, export)
        mask = varlen = unpad_index = None
        batch_shape = tuple(input_ids.shape)
        if export:  # HF's additive mask, (1 - mask) * min: the form onnxruntime's attention fusion reads
            varlen = "onnx"
            if attention_mask is not None:
                keep = attention_mask.unsqueeze(1).unsqueeze(2).to(x.dtype)
                mask = (1.0 - keep) * torch.finfo(x.dtype).min
        elif sequence_ids is not None:
            attention_mask = sequence_ids > 0
        elif attention_mask is not None and self.config.unpad and bool(attention_mask.all()):
            attention_mask = None  # nothing to skip: no mask lets SDPA take its fastest kernel
        if attention_mask is not None and not export:
            attention_mask = attention_mask.bool()
            if self.config.unpad:
                unpad_index = attention_mask.flatten().nonzero().squeeze(1)
                x = x.reshape(-1, x.shape[-1]).index_select(0, unpad_index)
                if self.config.attention == "varlen" or (self.config.attention == "auto" and x.is_cuda and
                                                         _varlen_works(x)):
                    varlen = _cu_seqlens(batch_shape, unpad_index, sequence_ids)
            if varlen is None and sequence_ids is not None:
                # (B,1,S,S): a token attends within its own sequence; padding (0) only to padding, so no row is empty
                mask = (sequence_ids[:, :, None] == sequence_ids[:, None, :])[:, None]
            elif varlen is None:
                # (B,1,1,S): True = attend. A fully padded row would give NaN in SDPA; never in real batches.
                mask = attention_mask[:, None, None, :]
        hidden_states = [x] if output_hidden_states else None
        for layer in self.encoder.layer:
            x = layer(x, mask, unpad_index, batch_shape, varlen)
            if output_hidden_states:
                hidden_states.append(x)
        if self.encoder.LayerNorm is not None:
            x = self.encoder.LayerNorm(x)
            if output_hidden_states:
                hidden_states[-1] = x
        if unpad_index is not None:
            x = _pad(x, unpad_index, batch_shape)
            if output_hidden_states:
                hidden_states = [_pad(h, unpad_index, batch_shape) for h in hidden_states]
        pooled = self.pooler(x, cls_positions) if self.pooler is not None else None
        return {"sequence_output": x, "pooled_output": pooled, "hidden_states": hidden_states}


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """dense + GELU + LayerNorm, then a decoder tied to the word embeddings with its own output bias."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.word_embeddings = [word_embeddings]  # a list so the tied weight is not registered twice
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x):
        return F.linear(self.transform(x), self.word_embeddings[0].weight, self.bias)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


def init_weights(module: nn.Module, std: float):
    """Google's init: truncated normal (±2 std) for weights, zero biases, LayerNorm = identity."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BertForPreTraining(nn.Module):
    def __init__(self, config: BertConfig, nsp: bool = True):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config, self.bert.embeddings.word_embeddings)
        if not nsp:
            self.cls.seq_relationship = None
        init_weights(self, config.initializer_range)

    @staticmethod
    def checkpoint_kwargs(state_dict: dict, info: dict, **known) -> dict:
        """A checkpoint without NSP weights (an MLM-only run, a BertForMaskedLM folder) builds without the NSP head."""
        return {"nsp": "cls.seq_relationship.weight" in state_dict}

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_positions=None, mlm_labels=None,
                next_sentence_label=None, sequence_ids=None, position_ids=None, nsp_positions=None):
        """`mlm_positions` (B,P): run the MLM head there only; logits are then (B,P,V), else (B,S,V).
        `mlm_labels` has the shape of the logits' first two dims, -100 where there is nothing to predict.
        Packed rows: `nsp_positions` (B,K) and `next_sentence_label` (B,K, -100 for empty slots)."""
        out = self.bert(input_ids, token_type_ids, attention_mask, sequence_ids=sequence_ids,
                        position_ids=position_ids, cls_positions=nsp_positions)
        seq = out["sequence_output"]
        if mlm_positions is not None:
            seq = _gather(seq, mlm_positions)
        mlm_logits = self.cls.predictions(seq)
        result = {"mlm_logits": mlm_logits, "pooled_output": out["pooled_output"]}
        loss = None
        if mlm_labels is not None:
            result["mlm_loss"] = loss = F.cross_entropy(
                mlm_logits.reshape(-1, mlm_logits.shape[-1]).float(), mlm_labels.reshape(-1), ignore_index=-100
            )
        if self.cls.seq_relationship is not None:
            result["nsp_logits"] = self.cls.seq_relationship(out["pooled_output"])
            if next_sentence_label is not None:
                result["nsp_loss"] = F.cross_entropy(result["nsp_logits"].reshape(-1, 2).float(),
                                                     next_sentence_label.reshape(-1), ignore_index=-100)
                loss = result["nsp_loss"] if loss is None else loss + result["nsp_loss"]
        result["loss"] = loss
        return result


def model_flops_per_token(config: BertConfig, seq_len: int, mlm_predictions_per_token: float = 1.0) -> float:
    """Forward+backward FLOPs per token (6 x matmul params + attention), as in the MFU literature."""
    attn = 12 * config.num_hidden_layers * config.hidden_size * seq_len  # QK^T and AV, fwd+bwd
    head = 6 * mlm_predictions_per_token * (config.hidden_size * config.vocab_size + config.hidden_size ** 2)
    return 6 * config.num_parameters_dense + attn + head


__all__ = ["BertConfig", "BertModel", "BertForPreTraining", "init_weights", "model_flops_per_token"]
