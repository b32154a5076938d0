"""The pretraining LightningModule: masked LM + next-sentence prediction, with accuracy metrics."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from bert_pl.training.module import BertModule


class PretrainingModule(BertModule):
    head = "pretraining"

    def __init__(self, model: dict, optimizer: Optional[Callable] = None, scheduler: Optional[dict] = None,
                 pretrained: Optional[str] = None, on_nonfinite: str = "stop", nsp: bool = True,
                 compile: bool = False):
        super().__init__(model, optimizer, scheduler, pretrained, on_nonfinite, head_kwargs={"nsp": nsp},
                         compile=compile)
        self.nsp = nsp

    def forward(self, batch: dict) -> dict:
        return self.model(
            batch["input_ids"], batch["token_type_ids"], batch.get("attention_mask"),
            mlm_positions=batch.get("mlm_positions"), mlm_labels=batch.get("mlm_labels"),
            next_sentence_label=batch.get("next_sentence_label") if self.nsp else None,
            sequence_ids=batch.get("sequence_ids"), position_ids=batch.get("position_ids"),
            nsp_positions=batch.get("nsp_positions"),
        )

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        out = self(batch)
        labels = batch["mlm_labels"]
        valid = labels != -100
        mlm_acc = ((out["mlm_logits"].argmax(-1) == labels) & valid).sum() / valid.sum().clamp(min=1)
        # sequences in the batch (packed rows hold several): the weight of this batch in epoch means
        bs = int(batch["sequence_ids"].amax(1).sum()) if "sequence_ids" in batch else labels.shape[0]
        metrics = {f"{stage}/loss": out["loss"], f"{stage}/mlm_loss": out["mlm_loss"], f"{stage}/mlm_acc": mlm_acc,
                   f"{stage}/ppl": torch.exp(out["mlm_loss"].detach().clamp(max=50))}
        if self.nsp:
            nsp_labels = batch["next_sentence_label"]  # (B,) or, packed, (B, K) with -100 in empty slots
            nsp_acc = ((out["nsp_logits"].argmax(-1) == nsp_labels) & (nsp_labels != -100)).sum() / (
                nsp_labels != -100).sum().clamp(min=1)
            metrics.update({f"{stage}/nsp_loss": out["nsp_loss"], f"{stage}/nsp_acc": nsp_acc})
        on_step = stage == "train"
        shown = {f"{stage}/mlm_acc", f"{stage}/loss"}
        for name, value in metrics.items():
            self.log(name, value, on_step=on_step, on_epoch=not on_step, batch_size=bs, prog_bar=name in shown)
        return out["loss"]

    def training_step(self, batch, batch_idx):
        return self.check_finite(self._shared_step(batch, "train"))

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def extra_checkpoint_info(self) -> dict:
        return {"nsp": self.nsp}
