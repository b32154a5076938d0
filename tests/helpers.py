"""Test-only Lightning callbacks, loaded into train.py subprocesses through Hydra (`+callbacks.x._target_=...`)."""
import time

from lightning.pytorch.callbacks import Callback


class SlowSteps(Callback):
    """Sleep after every step, so that a test can kill the process mid-run."""

    def __init__(self, seconds: float = 0.3):
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs):
        time.sleep(self.seconds)
