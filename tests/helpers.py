"""Test helpers: composing the real configs, and test-only Lightning callbacks (loaded into train.py subprocesses
through Hydra, `+callbacks.x._target_=...`)."""
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

import bert_pl.runner  # noqa: F401  (registers the project_root resolver)

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def compose_cfg(name, overrides, output_dir="/tmp/bert-pl-test-output"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


class SlowSteps(Callback):
    """Sleep after every step, so that a test can kill the process mid-run."""

    def __init__(self, seconds: float = 0.3):
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs):
        time.sleep(self.seconds)
