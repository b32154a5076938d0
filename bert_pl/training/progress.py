"""Progress display: Lightning's rich bar on a terminal (with one fix for step-bounded runs), plain lines elsewhere,
and a model summary without the FLOPs column Lightning fills with zeros (it counts FLOPs only for a model with an
`example_input_array`)."""
from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import ProgressBar, RichModelSummary, RichProgressBar, TQDMProgressBar

PLAIN_EVERY = 30.0  # seconds between progress lines when the output is not a terminal


class StepBoundedRichProgressBar(RichProgressBar):
    """Pretraining is bounded by steps (`max_epochs=-1`), where Lightning's bar reads "Epoch 6/-2"; this one says
    "Epoch 6" (the step count is the bar's own n/total). Epoch-bounded runs look as in Lightning."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        description = f"Epoch {current_epoch}"
        return f"{description:{max(len(description), len(self.validation_description))}}"


class PlainProgressBar(ProgressBar):
    """For output that goes to a file or a pipe, where a bar redraws invisibly (or floods): one line every `every`
    seconds, and one at the end, with the step, the share done, the elapsed time and the logged losses."""

    def __init__(self, every: float = PLAIN_EVERY):
        super().__init__()
        self.every = every
        self._enabled = True
        self._start = self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if self._enabled and now - self._last >= self.every:
            self._last = now
            self._print(trainer, pl_module, now)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._enabled:
            self._print(trainer, pl_module, time.monotonic(), "training ended: ")

    def _print(self, trainer, pl_module, now: float, head: str = "") -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if total is None:
            total = getattr(trainer, "estimated_stepping_batches", None)
        total = total if isinstance(total, int) and total > 0 else None
        share = f"/{total} ({100 * trainer.global_step / total:.0f}%)" if total else ""
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if "loss" in k or k.startswith("val")}
        shown = "".join(f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}" for k, v in metrics.items())
        epoch = "" if head else f"epoch {trainer.current_epoch} "  # at the end it counts the epochs done
        print(f"{head}{epoch}step {trainer.global_step}{share}, {now - self._start:.0f} s{shown}", flush=True)


class ModelSummaryWithoutZeroFlops(RichModelSummary):
    """Lightning's rich summary, minus the FLOPs column and "Total FLOPs" line when nothing was counted (always,
    for models without an `example_input_array`: every row read 0)."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops, **summarize_kwargs) -> None:
        if total_flops:
            return RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                              total_training_modes, total_flops, **summarize_kwargs)
        from rich import get_console
        from rich.table import Table

        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        kept = [(name, values) for name, values in summary_data if name != "FLOPs"]
        for name, _ in kept:
            table.add_column(name, justify="left" if name in (" ", "Name", "Type", "Mode") else "right")
        for row in zip(*(values for _, values in kept)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        from lightning.pytorch.utilities.model_summary.model_summary import (get_formatted_model_size,
                                                                              get_human_readable_count)

        grid = Table.grid(expand=True)
        grid.add_column()
        for label, value in (("Trainable params", get_human_readable_count(int(trainable_parameters))),
                             ("Non-trainable params", get_human_readable_count(
                                 int(total_parameters - trainable_parameters))),
                             ("Total params", get_human_readable_count(int(total_parameters))),
                             ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
                             ("Modules in train mode", total_training_modes["train"]),
                             ("Modules in eval mode", total_training_modes["eval"])):
            grid.add_row(f"[bold]{label}[/]: {value}")
        console.print(grid)


def suit_the_console(trainer, stream=None) -> None:
    """After the Trainer is built: where `stream` (stdout) is not a terminal, a bar becomes plain lines; Lightning's
    own rich model summary becomes the one without zero FLOPs."""
    stream = stream or sys.stdout
    plain = not (hasattr(stream, "isatty") and stream.isatty())
    for i, callback in enumerate(trainer.callbacks):
        if plain and isinstance(callback, (RichProgressBar, TQDMProgressBar)):
            trainer.callbacks[i] = PlainProgressBar()
        elif type(callback) is RichModelSummary:
            trainer.callbacks[i] = ModelSummaryWithoutZeroFlops(max_depth=callback._max_depth)
