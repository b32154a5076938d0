"""Lightning's rich progress bar, with one fix for step-bounded runs."""
from lightning.pytorch.callbacks import RichProgressBar


class StepBoundedRichProgressBar(RichProgressBar):
    """Pretraining is bounded by steps (`max_epochs=-1`), where Lightning's bar reads "Epoch 6/-2"; this one says
    "Epoch 6" (the step count is the bar's own n/total). Epoch-bounded runs look as in Lightning."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        description = f"Epoch {current_epoch}"
        return f"{description:{max(len(description), len(self.validation_description))}}"
