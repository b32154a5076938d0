"""LightningModules: MLM+NSP pretraining, and the shared base that fine-tuning builds on."""
from __future__ import annotations

import logging
from typing import Callable, Optional

import lightning as L
import torch

from .modeling import HEADS, BertConfig
from .optim import build_optimizer, linear_warmup_decay

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    pass


class BertModule(L.LightningModule):
    """Holds a BERT with one head, the optimizer recipe, and the tokenizer (saved inside every checkpoint)."""

    head = "pretraining"

    def __init__(self, model: dict, optimizer: Optional[Callable] = None, scheduler: Optional[dict] = None,
                 pretrained: Optional[str] = None, on_nonfinite: str = "stop", head_kwargs: Optional[dict] = None):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"], logger=False)
        if on_nonfinite not in ("stop", "skip", "ignore"):
            raise ValueError(f"on_nonfinite={on_nonfinite!r}: use stop, skip or ignore")
        self.config = BertConfig.from_dict(model)
        self.model = HEADS[self.head](self.config, **(head_kwargs or {}))
        self.optimizer_factory = optimizer
        self.scheduler_cfg = dict(scheduler or {})
        self.on_nonfinite = on_nonfinite
        self.tokenizer_json: Optional[str] = None
        if pretrained:
            from .checkpoints import load_into

            self.tokenizer_json = load_into(self.model, pretrained)

    # -- optimisation -------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured; compose with an optimizer=... group")
        opt = build_optimizer(self.model, self.optimizer_factory, self.device)
        total = int(self.trainer.estimated_stepping_batches)
        sched = linear_warmup_decay(opt, total, self.scheduler_cfg.get("warmup_steps", 0),
                                    self.scheduler_cfg.get("warmup_ratio", 0.0))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def check_finite(self, loss: torch.Tensor) -> Optional[torch.Tensor]:
        """Stop (naming the step and the checkpoint to go back to) or skip the step on a non-finite loss.
        'ignore' performs no host sync, for XLA."""
        if self.on_nonfinite == "ignore" or torch.isfinite(loss).item():
            return loss
        step = self.global_step
        if self.on_nonfinite == "skip":
            log.warning("non-finite loss at step %d: step skipped", step)
            return None
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none saved yet"
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) at step {step}; last checkpoint before it: {ckpt}. Lower the learning "
            f"rate or resume from that checkpoint; set module.on_nonfinite=skip to skip such steps"
        )

    # -- checkpoints carry everything needed to rebuild the model ------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["bert_pl"] = {"config": self.config.to_dict(), "head": self.head,
                                 "tokenizer": self.tokenizer_json, **self.extra_checkpoint_info()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = checkpoint.get("bert_pl") or {}
        if info.get("tokenizer"):
            self.tokenizer_json = info["tokenizer"]

    def extra_checkpoint_info(self) -> dict:
        return {}


class PretrainingModule(BertModule):
    head = "pretraining"

    def __init__(self, model: dict, optimizer: Optional[Callable] = None, scheduler: Optional[dict] = None,
                 pretrained: Optional[str] = None, on_nonfinite: str = "stop", nsp: bool = True):
        super().__init__(model, optimizer, scheduler, pretrained, on_nonfinite, head_kwargs={"nsp": nsp})
        self.nsp = nsp

    def forward(self, batch: dict) -> dict:
        return self.model(
            batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
            mlm_positions=batch.get("mlm_positions"), mlm_labels=batch.get("mlm_labels"),
            next_sentence_label=batch.get("next_sentence_label") if self.nsp else None,
        )

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        out = self(batch)
        labels = batch["mlm_labels"]
        valid = labels != -100
        mlm_acc = ((out["mlm_logits"].argmax(-1) == labels) & valid).sum() / valid.sum().clamp(min=1)
        bs = labels.shape[0]
        metrics = {f"{stage}/loss": out["loss"], f"{stage}/mlm_loss": out["mlm_loss"], f"{stage}/mlm_acc": mlm_acc,
                   f"{stage}/ppl": torch.exp(out["mlm_loss"].detach().clamp(max=50))}
        if self.nsp:
            nsp_acc = (out["nsp_logits"].argmax(-1) == batch["next_sentence_label"]).float().mean()
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


__all__ = ["BertModule", "PretrainingModule", "NonFiniteLossError"]
