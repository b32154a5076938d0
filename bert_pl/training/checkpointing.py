"""Which file holds what in a run's `checkpoints/` folder.

    last.ckpt          the newest full training state (weights, optimizer, loops, random state): what a run folder,
                       `ckpt_path=<run folder>` and `ckpt_path=auto` resume. ONE callback owns it (`LastCheckpoint`),
                       so there is never a second "last" file (Lightning names a second owner's `last-v1.ckpt`).
    epoch<N>.ckpt      fine-tuning only: the best dev epoch's weights (no optimizer state), what predictions, export
                       and `pretrained=<run folder>` read (Lightning's ModelCheckpoint, save_weights_only).
    step<N>.ckpt       pretraining, only when asked (`callbacks.last_checkpoint.save_top_k=-1`): full states kept.
"""
from __future__ import annotations

from typing import Optional

from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Writes last.ckpt every `every_n_train_steps` optimizer steps, after every validation (the end of each
    fine-tuning epoch) and when training ends, so last.ckpt is always the newest state. With `save_top_k` != 0 it
    also keeps step-named copies (`filename`), as Lightning's ModelCheckpoint does without a monitor."""

    def __init__(self, dirpath=None, every_n_train_steps: Optional[int] = None, save_top_k: int = 0,
                 filename: str = "step{step:07d}"):
        super().__init__(dirpath=dirpath, filename=filename, auto_insert_metric_name=False, save_last=True,
                         save_top_k=save_top_k, every_n_train_steps=every_n_train_steps,
                         save_on_train_epoch_end=False, enable_version_counter=False)

    def _fitting(self, trainer) -> bool:
        from lightning.pytorch.trainer.states import TrainerFn

        return not trainer.fast_dev_run and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def on_validation_end(self, trainer, pl_module) -> None:
        # Saved even at a step just saved: a validation changes the state (dev history, best epoch, epoch's end).
        if self._fitting(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Without validation data, the end of an epoch is where its state is saved."""
        no_validation = not trainer.num_val_batches or sum(trainer.num_val_batches) == 0
        if no_validation and self._fitting(trainer) and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        """A run bounded by max_steps can end between saves: its final state is the last one."""
        if not trainer.fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def last_checkpoint_callback(trainer) -> Optional[LastCheckpoint]:
    """The callback that owns last.ckpt in this trainer (None when checkpointing is off)."""
    return next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
