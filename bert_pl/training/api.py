"""The Python API's training half: `bert_pl.pretrain(...)` and `bert_pl.finetune(...)` compose the same configs as
`train.py` / `finetune.py` (so every override works the same) and run the same jobs, without a Hydra runtime, e.g.
from a notebook. The run folder is chosen as Hydra would (`outputs/<task>/runs/<time>`) unless `output_dir` is given.

    import bert_pl
    bert_pl.pretrain(overrides=["trainer.max_steps=100"])
    bert_pl.finetune(task="mrpc", pretrained="latest:train", overrides=["trainer.max_epochs=1"])
"""
from __future__ import annotations

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


def pretrain(overrides: Sequence[str] = (), output_dir: Optional[str] = None):
    """Run `python train.py OVERRIDES...`; returns the final validation MLM accuracy (or None)."""
    from bert_pl.training.jobs import pretrain as job

    return job(compose("train", overrides, output_dir))


def finetune(task: str, pretrained: Optional[str] = None, overrides: Sequence[str] = (),
             output_dir: Optional[str] = None):
    """Run `python finetune.py task=TASK pretrained=PRETRAINED OVERRIDES...`; returns the best dev value."""
    from bert_pl.training.jobs import finetune as job

    args = [f"task={task}", *([f"pretrained={pretrained}"] if pretrained else []), *overrides]
    return job(compose("finetune", args, output_dir), args)
