"""Test helpers: composing the real configs, and test-only Lightning callbacks (loaded into train.py subprocesses
through Hydra, `+callbacks.x._target_=...`)."""
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

import bert_pl.training.resolvers  # noqa: F401  (registers the configs' resolvers: project_root, run_dir, ...)

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


class RecordRankSamples(Callback):
    """Write, per rank, the sample indices this rank's sampler yields first, to `<output_dir>/samples_rank<R>.json`."""

    def __init__(self, output_dir: str, count: int = 64):
        self.output_dir, self.count = output_dir, count

    def on_train_start(self, trainer, pl_module):
        import itertools
        import json

        sampler = trainer.train_dataloader.sampler
        indices = [i for i, _ in itertools.islice(iter(sampler), self.count)]
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "indices": indices}
        Path(self.output_dir, f"samples_rank{trainer.global_rank}.json").write_text(json.dumps(record))
