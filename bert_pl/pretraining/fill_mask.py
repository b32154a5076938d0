"""What a pretraining checkpoint (train.py's, or a bare encoder) does after training: fill in [MASK]s with its MLM
head, and give sentence vectors (`Predictor.embed`). It has no task head, so `predict` says what to use instead."""
from __future__ import annotations

from typing import Dict, List

import torch

from bert_pl.tasks.predictor import PredictError, Predictor

MLM_WEIGHT = "cls.predictions.transform.dense.weight"  # present when the checkpoint holds a trained MLM head


class MaskedLMPredictor(Predictor):
    default_mode = "fill_mask"
    pipeline_tag = "fill-mask"
    example_inputs = ["Paris is the [MASK] of France.", "The cat sat on the [MASK] while the [MASK] slept."]

    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        raise PredictError(f"{self.runtime.source} is a pretraining checkpoint with no task head: use fill_mask(...) "
                           f"or embed(...), or fine-tune it first (finetune.py)")

    def _has_mlm_head(self) -> bool:
        rt = self.runtime
        return "mlm_logits" in rt.info.get("outputs", ()) if rt.is_onnx else MLM_WEIGHT in rt.weight_names

    @torch.no_grad()
    def fill_mask(self, texts: List[str], top_k: int) -> list:
        if not self._has_mlm_head():
            return super().fill_mask(texts, top_k)
        rt = self.runtime
        mask_id = rt.vocab["[MASK]"]
        enc = rt.encode(texts)
        for n, (t, e) in enumerate(zip(texts, enc), 1):
            if mask_id not in e.ids:
                raise PredictError(f"input {n}: no [MASK] in {t!r}: write [MASK] where a word should be predicted")
        results = []
        for e in enc:
            ids = torch.tensor([e.ids], device=rt.device)
            types = torch.tensor([e.type_ids], device=rt.device)
            positions = torch.tensor([[i for i, x in enumerate(e.ids) if x == mask_id]], device=rt.device)
            logits = rt.model(ids, types, torch.ones_like(ids), mlm_positions=positions)["mlm_logits"][0]
            top = torch.softmax(logits.float(), -1).topk(top_k, -1)
            results.append([[{"token": rt.tokenizer.id_to_token(int(i)), "probability": round(float(p), 6)}
                             for p, i in zip(ps, ix)] for ps, ix in zip(top.values, top.indices)])
        return results

    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        return ["mlm_logits"] + (["nsp_logits"] if getattr(net.cls, "seq_relationship", None) is not None else [])

    @classmethod
    def onnx_output_axes(cls, name: str) -> Dict[int, str]:
        return {0: "batch", 1: "sequence"} if name == "mlm_logits" else {0: "batch"}
