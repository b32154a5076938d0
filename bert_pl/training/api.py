"""The Python API's training half: `bert_pl.pretrain(...)` and `bert_pl.finetune(...)` compose the same configs as
`train.py` / `finetune.py` (so every override works the same) and run the same jobs, without a Hydra runtime, e.g.
from a notebook. The run folder is chosen as Hydra would (`outputs/<task>/runs/<time>`) unless `output_dir` is given.

    import bert_pl
    base = bert_pl.pretrain(overrides=["trainer.max_steps=100"])          # Run(run_dir=..., metrics={...})
    run = bert_pl.finetune(task="mrpc", pretrained=base.run_dir, overrides=["trainer.max_epochs=1"])
    run.best, run.metrics["dev"], run.results["degenerate"]               # what results.json holds
    run.load().predict(("The cat sat.", "A cat was sitting."))            # the trained model
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from bert_pl.io.project import CONF_DIR as CONF
from bert_pl.training import resolvers  # noqa: F401  (the configs' ${run_dir:} ... resolvers)


def compose(config_name: str, overrides: Sequence[str] = (), output_dir: Optional[str] = None):
    """The composed config (`train` or `finetune`) with `paths.output_dir` set to a new run folder."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        run_dir = output_dir or OmegaConf.select(cfg, "hydra.run.dir")
    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(run_dir).resolve())
        del cfg["hydra"]
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    return cfg


@dataclass
class Run:
    """A finished run: its folder and what its results.json says (empty if the run wrote none)."""

    run_dir: Path
    results: dict = field(default_factory=dict, repr=False)

    @property
    def metrics(self) -> dict:
        """Pretraining: the final metrics (val/mlm_acc, ...); fine-tuning: dev metrics per split ({"dev": {...}})."""
        return self.results.get("metrics") or self.results.get("dev") or {}

    @property
    def best(self) -> Optional[dict]:
        """Fine-tuning: {"metric", "value", "epoch", "checkpoint"} of the best dev epoch."""
        return self.results.get("best")

    def load(self, **kwargs):
        """The run's model ready to predict (`bert_pl.load(run_dir, **kwargs)`)."""
        from bert_pl.inference.model import load

        return load(self.run_dir, **kwargs)

    def __repr__(self) -> str:
        shown = self.best if self.best else self.metrics
        return f"Run(run_dir={str(self.run_dir)!r}, {'best' if self.best else 'metrics'}={shown})"


def _finished(output_dir: str) -> Run:
    path = Path(output_dir) / "results.json"
    return Run(Path(output_dir), json.loads(path.read_text()) if path.is_file() else {})


def pretrain(overrides: Sequence[str] = (), output_dir: Optional[str] = None) -> Run:
    """Run `python train.py OVERRIDES...`; returns the Run (its folder, its final metrics)."""
    from bert_pl.training.jobs import pretrain as job

    cfg = compose("train", overrides, output_dir)
    job(cfg)
    return _finished(cfg.paths.output_dir)


def finetune(task: str, pretrained: Optional[str] = None, overrides: Sequence[str] = (),
             output_dir: Optional[str] = None) -> Run:
    """Run `python finetune.py task=TASK pretrained=PRETRAINED OVERRIDES...`; returns the Run (its folder, dev
    metrics, the best epoch; `run.load()` gives the model)."""
    from bert_pl.training.jobs import finetune as job

    args = [f"task={task}", *([f"pretrained={pretrained}"] if pretrained else []), *overrides]
    cfg = compose("finetune", args, output_dir)
    job(cfg, args)
    return _finished(cfg.paths.output_dir)
