"""ONNX: writing a model as model.onnx, and running such an export under onnxruntime.

An export folder holds model.onnx, the tokenizer and bert_pl.json (head, labels, task settings, the model config and
the output names), so `bert_pl.load(folder)` predicts with it as with the checkpoint it came from. What a head's
graph returns (its outputs and dynamic axes) is its family's (bert_pl.tasks.predictor.Predictor); this module only
writes and runs graphs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import torch

from bert_pl.errors import UserError

INPUTS = ("input_ids", "token_type_ids", "attention_mask")
METADATA = "bert_pl.json"


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

    shape = {2: (2, 16), 3: (2, 3, 16)}[len(input_axes)]  # (batch, sequence) or (batch, choices, sequence)
    example = (torch.randint(1000, 2000, shape), torch.zeros(shape, dtype=torch.long),
               torch.ones(shape, dtype=torch.long))
    dynamic = {n: dict(input_axes) for n in INPUTS}
    dynamic.update({n: dict(output_axes[n]) for n in outputs})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Exported().eval(), example, str(path), input_names=list(INPUTS), output_names=list(outputs),
                      dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return path


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

    def __init__(self, folder: str, outputs: List[str]):
        try:
            import onnxruntime
        except ImportError:
            raise UserError(f"{folder} is an ONNX export: pip install onnxruntime to run it") from None
        self.session = onnxruntime.InferenceSession(str(Path(folder) / "model.onnx"),
                                                    providers=["CPUExecutionProvider"])
        self.outputs = outputs

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, input_ids, token_type_ids, attention_mask, mlm_positions=None, **_):
        feed = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        got = self.session.run(self.outputs, {k: v.cpu().numpy() for k, v in feed.items()})
        out = {name: torch.from_numpy(value) for name, value in zip(self.outputs, got)}
        if mlm_positions is not None:  # the export gives every position's logits; keep the asked ones
            logits = out["mlm_logits"]
            out["mlm_logits"] = logits.gather(1, mlm_positions.cpu()[..., None].expand(-1, -1, logits.shape[-1]))
        return out
