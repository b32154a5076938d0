"""Building the Lightning Trainer a job runs with: its loggers and callbacks from the composed config."""
from __future__ import annotations

from typing import List

from omegaconf import DictConfig


def instantiate_group(group) -> List:
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def build_trainer(cfg: DictConfig):
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor

    from bert_pl.training.preemption import SaveOnPreemption

    if cfg.trainer.get("accelerator") in ("gpu", "cuda"):
        import torch

        torch.set_float32_matmul_precision("high")  # TF32 matmuls for fp32 runs (mixed precision is unaffected)
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks")) + [SaveOnPreemption()]  # always: SIGTERM never loses steps
    if not loggers:  # logger=[] or null: LearningRateMonitor would refuse to start, and has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    from bert_pl.training.progress import suit_the_console

    suit_the_console(trainer)  # plain progress lines when the output goes to a file
    return trainer
