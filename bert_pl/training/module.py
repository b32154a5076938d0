"""The LightningModule base shared by pretraining and fine-tuning: one BERT + head, optimizer, tokenizer in checkpoints."""
from __future__ import annotations

import logging
import random
from typing import Callable, Optional

import lightning as L
import numpy as np
import torch

from bert_pl.errors import UserConfigError, UserError
from bert_pl.model.bert import BertConfig
from bert_pl.model.heads import get_head
from bert_pl.training.optim import build_optimizer, linear_warmup_decay

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    pass


def _numpy_state() -> list:
    """numpy's global state as tensors and numbers (what `torch.load(weights_only=True)` can read)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


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
        self.model = get_head(self.head).build(self.config, **(head_kwargs or {}))
        self.optimizer_factory = optimizer
        self.scheduler_cfg = dict(scheduler or {})
        self.on_nonfinite = on_nonfinite
        self.tokenizer_json: Optional[str] = None
        if pretrained:
            from bert_pl.io.checkpoints import load_into

            self.tokenizer_json = load_into(self.model, pretrained)
        if compile:
            self.model.compile()  # in place: parameter names (and checkpoints) stay the same

    # -- optimisation -------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured; compose with an optimizer=... group")
        opt = build_optimizer(self.model, self.optimizer_factory, self.device,
                              grad_scaler=str(self.trainer.precision) in ("16-mixed", "16"))
        total = int(self.trainer.estimated_stepping_batches)
        sched = linear_warmup_decay(opt, total, self.scheduler_cfg.get("warmup_steps", 0),
                                    self.scheduler_cfg.get("warmup_ratio", 0.0))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Lightning's mixed-precision plugin refuses to clip for a fused optimizer (it assumes a grad scaler that
        the fused step would unscale itself). Without a scaler (fp32, bf16) the gradients are the true ones: clip
        them here, as Lightning would. With fp16's scaler the optimizer is not fused, and Lightning clips."""
        if gradient_clip_val and getattr(optimizer, "defaults", {}).get("fused"):
            if gradient_clip_algorithm in (None, "norm"):
                torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_value_(self.parameters(), gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def check_finite(self, loss: torch.Tensor) -> Optional[torch.Tensor]:
        """Stop (naming the step and the checkpoint to go back to) or skip the step on a non-finite loss.
        'ignore' performs no host sync, for XLA."""
        if self.on_nonfinite == "ignore" or torch.isfinite(loss).item():
            return loss
        step = self.global_step
        if self.on_nonfinite == "skip":
            log.warning("non-finite loss at step %d: step skipped", step)
            return None
        from bert_pl.training.checkpointing import last_checkpoint_callback

        ckpt = getattr(last_checkpoint_callback(self.trainer), "last_model_path", "") or "none saved yet"
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) at step {step}; last checkpoint before it: {ckpt}. Lower the learning "
            f"rate or resume from that checkpoint; set module.on_nonfinite=skip to skip such steps"
        )

    # -- checkpoints carry everything needed to rebuild the model ------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["bert_pl"] = {"config": self.config.to_dict(), "head": self.head,
                                 "tokenizer": self.tokenizer_json, **self.extra_checkpoint_info()}
        for logger in self.loggers:  # the metrics up to this step are on disk with the checkpoint
            logger.save()
        # Dropout draws from the global generators: saved with the step, so a resumed run draws the same masks
        # (numpy's and python's too, for anything a user's code draws). Every rank's own: ranks drop out different
        # token counts, so their generators part ways (called on every rank; the gather is collective).
        state = {"torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                 "numpy": _numpy_state(), "python": random.getstate()}
        if torch.distributed.is_available() and torch.distributed.is_initialized() and self.trainer.world_size > 1:
            per_rank = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(per_rank, state)
            state = {"per_rank": per_rank}
        checkpoint["bert_pl_rng"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = checkpoint.get("bert_pl") or {}
        if info.get("tokenizer"):
            self.tokenizer_json = info["tokenizer"]
        state = checkpoint.get("bert_pl_rng")
        if state and "per_rank" in state:  # this rank's own (None when resumed on more ranks than were saved)
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            state = state["per_rank"][rank] if rank < len(state["per_rank"]) else None
        self._rng_to_restore = state
        self._resumed = "loops" in checkpoint

    def on_train_start(self) -> None:
        if getattr(self, "_resumed", False):  # drop what a killed run logged after its checkpoint: logged again now
            for logger in self.loggers:
                if hasattr(logger, "rewind"):
                    logger.rewind(self.global_step)

    def on_train_batch_start(self, batch, batch_idx):
        # Restored at the first step, not at load: creating the resumed run's data iterator draws a random seed.
        state = getattr(self, "_rng_to_restore", None)
        if state is not None:
            torch.set_rng_state(state["torch"])
            if state.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])
            if state.get("numpy") is not None:
                name, keys, pos, has_gauss, cached = state["numpy"]
                np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            if state.get("python") is not None:
                random.setstate(state["python"])
            self._rng_to_restore = None

    def extra_checkpoint_info(self) -> dict:
        return {}


__all__ = ["BertModule", "NonFiniteLossError"]
