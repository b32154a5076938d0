"""LightningModules: MLM+NSP pretraining, and the shared base that fine-tuning builds on."""
from __future__ import annotations

import logging
from typing import Callable, Optional

import lightning as L
import torch

from .errors import UserConfigError, UserError
from .modeling import HEADS, BertConfig
from .optim import build_optimizer, linear_warmup_decay

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    pass


class BertModule(L.LightningModule):
    """Holds a BERT with one head, the optimizer recipe, and the tokenizer (saved inside every checkpoint)."""

    head = "pretraining"

    def __init__(self, model: dict, optimizer: Optional[Callable] = None, scheduler: Optional[dict] = None,
                 pretrained: Optional[str] = None, on_nonfinite: str = "stop", head_kwargs: Optional[dict] = None,
                 compile: bool = False):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"], logger=False)
        if on_nonfinite not in ("stop", "skip", "ignore"):
            raise UserConfigError(f"module.on_nonfinite={on_nonfinite!r}: use stop, skip or ignore")
        self.config = BertConfig.from_dict(model)
        self.model = HEADS[self.head](self.config, **(head_kwargs or {}))
        self.optimizer_factory = optimizer
        self.scheduler_cfg = dict(scheduler or {})
        self.on_nonfinite = on_nonfinite
        self.tokenizer_json: Optional[str] = None
        if pretrained:
            from .checkpoints import load_into

            self.tokenizer_json = load_into(self.model, pretrained)
        if compile:
            self.model.compile()  # in place: parameter names (and checkpoints) stay the same

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


__all__ = ["BertModule", "PretrainingModule", "NonFiniteLossError"]


class FinetuneModule(BertModule):
    """A pretrained encoder + one task layer. The datamodule owns the task: it evaluates gathered outputs
    (`datamodule.evaluate(split, outputs)`), so one module serves every GLUE task and SQuAD."""

    def __init__(self, model: dict, head: str, num_labels: int = 2, optimizer: Optional[Callable] = None,
                 scheduler: Optional[dict] = None, pretrained: Optional[str] = None, on_nonfinite: str = "stop",
                 main_metric: str = "acc", classifier_dropout: Optional[float] = None, labels=None,
                 compile: bool = False):
        head_kwargs = {"num_labels": num_labels, "classifier_dropout": classifier_dropout} \
            if head == "classification" else {}
        self.head = head
        super().__init__(model, optimizer, scheduler, pretrained, on_nonfinite, head_kwargs=head_kwargs,
                         compile=compile)
        self.main_metric = main_metric
        self.labels = list(labels) if labels is not None else None
        self.history: list = []  # one dict of dev metrics per validation run
        self._outputs: dict = {}

    def forward(self, batch: dict) -> dict:
        keys = ("input_ids", "token_type_ids", "attention_mask", "labels", "start_positions", "end_positions")
        return self.model(**{k: batch[k] for k in keys if k in batch})

    def training_step(self, batch, batch_idx):
        loss = self(batch)["loss"]
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return self.check_finite(loss)

    def _collect(self, batch, key) -> None:
        out = self(batch)
        store = self._outputs.setdefault(key, {})
        fields = {"logits": out.get("logits"), "start_logits": out.get("start_logits"),
                  "end_logits": out.get("end_logits"), "example_index": batch.get("example_index"),
                  "feature_index": batch.get("feature_index")}
        for name, value in fields.items():
            if value is not None:
                store.setdefault(name, []).append(value.detach().float().cpu())

    def gathered(self, key) -> dict:
        import numpy as np

        parts = self._outputs.pop(key, {})
        if self.head == "span":  # logits of different widths: keep a list per feature
            return {k: ([row.numpy() for t in v for row in t] if k.endswith("_logits") else
                        np.concatenate([t.numpy() for t in v])) for k, v in parts.items()}
        return {k: torch.cat(v).numpy() for k, v in parts.items()}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._collect(batch, dataloader_idx)

    def on_validation_epoch_end(self):
        dm = self.trainer.datamodule
        results = {}
        for i, split in enumerate(dm.eval_splits):
            if i in self._outputs:
                metrics = dm.evaluate(split, self.gathered(i))
                results[split] = metrics
                for name, value in metrics.items():
                    self.log(f"val/{split}/{name}", float(value), sync_dist=False)
        self._outputs.clear()
        if not results or self.trainer.sanity_checking:
            return
        main = float(sum(m[self.main_metric] for m in results.values()) / len(results))
        self.log("val/main", main, prog_bar=True)
        self.history.append({"epoch": self.current_epoch, "step": self.global_step, "main": main, **results})

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._collect(batch, ("predict", dataloader_idx))

    def extra_checkpoint_info(self) -> dict:
        return {"labels": self.labels, "main_metric": self.main_metric}
