"""ONNX: writing a model as model.onnx, fusing and quantizing it for onnxruntime, and running such an export.

An export folder holds model.onnx, the tokenizer, a Hugging Face-style config.json and bert_pl.json (head, labels,
task settings, the model config, the output names and how the graph was made), so `bert_pl.load(folder)` predicts
with it as with the checkpoint it came from. What a head's graph returns (its outputs and dynamic axes) is its
family's (bert_pl.tasks.predictor.Predictor); this module only writes, transforms and runs graphs.

The graph is traced through the encoder's export path (`attention="onnx"` in bert_pl.model.bert): the ops
onnxruntime's transformer optimizer recognises, so `optimize` fuses each layer's attention into one Attention node,
residual + LayerNorm into SkipLayerNormalization, bias + GELU into BiasGelu (FastGelu for the tanh form) and the
embeddings into EmbedLayerNormalization. `quantize` then stores the weights of the matrix products in int8 with
activations quantized per call (onnxruntime's dynamic quantization).
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Dict, List

import torch

from bert_pl.errors import UserError

INPUTS = ("input_ids", "token_type_ids", "attention_mask")
METADATA = "bert_pl.json"
# the optimizer's fused kernels worth reporting (its statistics list more, mostly for other architectures)
FUSED_OPS = ("Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu",
             "FastGelu", "Gelu", "LayerNormalization")


def require_onnxruntime(what: str):
    """onnxruntime, or a one-line error saying what needs it and how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"{what} needs onnxruntime: pip install onnxruntime") from None
    return onnxruntime


def export(net: torch.nn.Module, outputs: List[str], input_axes: Dict[int, str], output_axes: Dict[str, dict],
           path: Path, opset: int = 17) -> Path:
    """`net`'s `outputs` as an ONNX graph over INPUTS with dynamic `input_axes` (e.g. batch, sequence)."""

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, input_ids, token_type_ids, attention_mask):
            out = self.net(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
            return tuple(out[n] for n in outputs)

    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError:
        raise UserError("--format onnx needs the onnx package: pip install onnx onnxruntime") from None
    shape = {2: (2, 16), 3: (2, 3, 16)}[len(input_axes)]  # (batch, sequence) or (batch, choices, sequence)
    example = (torch.randint(1000, 2000, shape), torch.zeros(shape, dtype=torch.long),
               torch.ones(shape, dtype=torch.long))
    dynamic = {n: dict(input_axes) for n in INPUTS}
    dynamic.update({n: dict(output_axes[n]) for n in outputs})
    path.parent.mkdir(parents=True, exist_ok=True)
    config = net.config
    saved = config.unpad, config.attention
    # the padded path (data-dependent indexing does not trace) written in the ops the optimizer fuses
    config.unpad, config.attention = False, "onnx"
    try:
        with warnings.catch_warnings():  # shape checks traced as constants: fine for an export with dynamic axes
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(Exported().eval(), example, str(path), input_names=list(INPUTS),
                              output_names=list(outputs), dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    finally:
        config.unpad, config.attention = saved
    return path


def optimize(src: Path, dst: Path, num_heads: int, hidden_size: int) -> Dict[str, int]:
    """onnxruntime's transformer optimizer (model_type bert) on `src`, written to `dst`; the fused-node counts.

    The attention mask stays the raw 0/1 mask (not the optimizer's default for BERT, a per-row length that assumes
    right padding), so any mask gives the unfused graph's numbers. No device-specific rewrites: the file runs on
    any onnxruntime build with its contrib ops."""
    require_onnxruntime("--optimize")
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    logging.disable(logging.INFO)  # the optimizer logs each pass at INFO
    try:
        model = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                               optimization_options=options, opt_level=0, use_gpu=False)
        stats = model.get_fused_operator_statistics()
        model.save_model_to_file(str(dst))
    finally:
        logging.disable(logging.NOTSET)
    return {op: int(stats.get(op, 0)) for op in FUSED_OPS}


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic): int8 weights for the matrix
    products (and fused Attention), activations quantized on the fly; `src` may be optimized or not."""
    require_onnxruntime("--quantize")
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # it advises shape-inference preprocessing, which fused graphs do not need
    try:
        # shape inference knows no contrib op (Attention, SkipLayerNormalization): their outputs are float
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)


def fused_counts(path: Path) -> Dict[str, int]:
    """How many nodes of each fused kind a graph holds (0 for a graph the optimizer has not seen)."""
    import onnx

    ops = [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]
    return {op: ops.count(op) for op in FUSED_OPS}


def is_export(folder: Path) -> bool:
    return (folder / "model.onnx").is_file() and (folder / METADATA).is_file()


def read_export(folder: Path):
    """An export folder as a Checkpoint without weights (kind "onnx")."""
    from bert_pl.io.checkpoints import Checkpoint
    from bert_pl.model.bert import BertConfig

    meta = json.loads((folder / METADATA).read_text())
    if "config" not in meta:
        raise UserError(f"{folder}/{METADATA} lacks the model config: export it again with this version")
    tokenizer = folder / "tokenizer.json"
    info = {k: v for k, v in meta.items() if k not in ("config", "source")}
    return Checkpoint(BertConfig.from_dict(meta["config"]), {}, tokenizer.read_text() if tokenizer.is_file() else None,
                      str(folder), "onnx", info)


class OnnxNet:
    """An exported model.onnx under onnxruntime, called like the PyTorch model (the same output names)."""

    def __init__(self, folder: str, outputs: List[str], threads: int = 0):
        """`threads`: onnxruntime's intra-op threads; 0 = torch.get_num_threads(), so one setting governs both."""
        try:
            import onnxruntime
        except ImportError:
            raise UserError(f"{folder} is an ONNX export: pip install onnxruntime to run it") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(Path(folder) / "model.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        # what the graph takes: an optimized graph may read int32 ids or drop an input it does not use
        self.inputs = {i.name: torch.int32 if i.type == "tensor(int32)" else torch.int64
                       for i in self.session.get_inputs()}
        self.outputs = outputs

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, input_ids, token_type_ids, attention_mask, mlm_positions=None, **_):
        feed = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        got = self.session.run(self.outputs, {k: v.cpu().to(self.inputs[k]).numpy() for k, v in feed.items()
                                              if k in self.inputs})
        out = {name: torch.from_numpy(value) for name, value in zip(self.outputs, got)}
        if mlm_positions is not None:  # the export gives every position's logits; keep the asked ones
            logits = out["mlm_logits"]
            out["mlm_logits"] = logits.gather(1, mlm_positions.cpu()[..., None].expand(-1, -1, logits.shape[-1]))
        return out
