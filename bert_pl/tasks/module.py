"""The fine-tuning LightningModule: a pretrained encoder + one task head; the task datamodule evaluates."""
from __future__ import annotations

import inspect
import warnings
from typing import Callable, Optional

import torch

from bert_pl.model.heads import get_head
from bert_pl.training.module import BertModule

# predict_step keeps its outputs on the module (gathered per split) and returns nothing, on purpose
warnings.filterwarnings("ignore", message="predict returned None if it was on purpose")


class FinetuneModule(BertModule):
    """A pretrained encoder + one task head. The task (a `bert_pl.tasks.base.Task` datamodule) owns everything
    task-specific: it names the head and its arguments, and evaluates the gathered outputs
    (`datamodule.evaluate(split, outputs)`), so this one module serves every task family."""

    def __init__(self, model: dict, head: str, head_kwargs: Optional[dict] = None, optimizer: Optional[Callable] = None,
                 scheduler: Optional[dict] = None, pretrained: Optional[str] = None, on_nonfinite: str = "stop",
                 main_metric: str = "acc", classifier_dropout: Optional[float] = None, labels=None,
                 compile: bool = False):
        self.head = head
        kwargs = dict(head_kwargs or {})
        kwargs.setdefault("classifier_dropout", classifier_dropout)
        super().__init__(model, optimizer, scheduler, pretrained, on_nonfinite, head_kwargs=kwargs,
                         compile=compile)
        self.main_metric = main_metric
        self.labels = list(labels) if labels is not None else None
        self.problem_type = kwargs.get("problem_type")
        self.history: list = []  # one dict of dev metrics per validation run
        self._outputs: dict = {}
        self._epoch_loss = torch.zeros(2)  # this epoch's (sum of losses x examples, examples)
        self._inputs = set(inspect.signature(self.model.forward).parameters)

    def forward(self, batch: dict) -> dict:
        return self.model(**{k: v for k, v in batch.items() if k in self._inputs})

    def training_step(self, batch, batch_idx):
        loss = self(batch)["loss"]
        size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=size)
        self._epoch_loss = self._epoch_loss + torch.stack([loss.detach().float() * size,
                                                           torch.tensor(float(size), device=loss.device)])
        return self.check_finite(loss)

    # The epoch's mean training loss so far is kept here and saved with each checkpoint, not by Lightning's on_epoch
    # logging, whose running sums a resumed run does not get back; it is logged with each validation (the epoch's
    # end), which comes before that step's checkpoint, so a resumed run never logs it twice. (Lightning does not call
    # on_train_epoch_start for an epoch resumed part-way: it goes on from the saved sums.)
    def on_train_epoch_start(self) -> None:
        self._epoch_loss = torch.zeros(2, device=self.device)

    def _collect(self, batch, key) -> dict:
        """Keep the head's outputs and the batch's `*_index` keys (which row/feature each output belongs to)."""
        out = self(batch)
        store = self._outputs.setdefault(key, {})
        fields = {name: out[name].detach().float() for name in get_head(self.head).outputs if out.get(name) is not None}
        fields.update({name: value for name, value in batch.items() if name.endswith("_index")})
        for name, value in fields.items():
            store.setdefault(name, []).append(value.cpu())
        return out

    def gathered(self, key) -> dict:
        return get_head(self.head).gather(self._outputs.pop(key, {}))

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        out = self._collect(batch, dataloader_idx)
        if out.get("loss") is not None and not self.trainer.sanity_checking:  # heads whose dev data has labels
            split = self.trainer.datamodule.eval_splits[dataloader_idx]
            self.log(f"val/{split}/loss", out["loss"], on_step=False, on_epoch=True, add_dataloader_idx=False,
                     batch_size=batch["input_ids"].shape[0])

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
        total, count = self._epoch_loss.tolist()
        if count:
            self.log("train/loss_epoch", total / count, batch_size=1)
        self.history.append({"epoch": self.current_epoch, "step": self.global_step, "main": main, **results})

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._collect(batch, ("predict", dataloader_idx))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["bert_pl_history"] = list(self.history)  # a resumed run reports every epoch's dev metrics
        checkpoint["bert_pl_epoch_loss"] = self._epoch_loss.cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.history = list(checkpoint.get("bert_pl_history", []))
        if checkpoint.get("bert_pl_epoch_loss") is not None:
            self._epoch_loss = checkpoint["bert_pl_epoch_loss"].clone()

    def extra_checkpoint_info(self) -> dict:
        task = self._trainer.datamodule if self._trainer is not None else None
        return {"labels": self.labels, "main_metric": self.main_metric, "problem_type": self.problem_type,
                "task": task.checkpoint_info() if task is not None else {}}
