"""The pretraining LightningModule: masked LM + next-sentence prediction, with accuracy metrics."""
from __future__ import annotations

from typing import Callable, Optional

import lightning as L
import torch

from bert_pl.training.module import BertModule
from bert_pl.training.monitor import TokenClock, TrainingMonitor


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


class RunSummary(L.Callback):
    """What `train.py` prints at the end: steps, real tokens per second, validation MLM accuracy from the first
    validation to the last, NSP accuracy. Tokens/s is the run's TrainingMonitor measurement (the same numbers as
    its logged perf/tokens_per_s); without that callback, the same clock runs here."""

    def __init__(self):
        self.validations = []
        self.clock = TokenClock()
        self._own_clock = True

    def setup(self, trainer, pl_module, stage):
        monitor = next((c for c in trainer.callbacks if isinstance(c, TrainingMonitor)), None)
        if monitor is not None:
            self.clock, self._own_clock = monitor.clock, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._own_clock:
            self.clock.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._own_clock:
            self.clock.stop(batch)

    def on_train_end(self, trainer, pl_module):
        if self._own_clock:
            self.clock.gather(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        self.validations.append({"step": trainer.global_step,
                                 **{k: round(float(m[f"val/{k}"]), 4) for k in ("mlm_acc", "nsp_acc")
                                    if f"val/{k}" in m}})

    def text(self, steps: int, first_validation: Optional[int] = None, accumulate: int = 1) -> str:
        tokens = self.clock.tokens if self.clock.all_ranks_tokens is None else self.clock.all_ranks_tokens
        rate = f"{self.clock.rate():,.0f} tokens/s" if self.clock.seconds else "no training steps"
        lines = [f"{steps} steps, {tokens:,} tokens, {rate} (training steps only)"]
        if self.validations:
            first, last = self.validations[0], self.validations[-1]
            lines.append(f"validation MLM accuracy {first['mlm_acc']} (step {first['step']}) -> {last['mlm_acc']} "
                         f"(step {last['step']})" + (f", NSP accuracy {last['nsp_acc']}" if "nsp_acc" in last else ""))
        elif first_validation and steps < first_validation:
            fits = max(1, steps // 2) * accumulate  # val_check_interval counts batches
            lines.append(f"no validation ran: the run ended at step {steps}, before the first validation at step "
                         f"{first_validation}; next time set trainer.val_check_interval={fits} (or give it a longer "
                         f"budget: trainer.max_time / trainer.max_steps)")
        else:
            lines.append("no validation ran (data.val_fraction=0, or the run ended before the first one)")
        return "\n".join(lines)
