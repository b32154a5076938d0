"""Preemption: SIGTERM (what schedulers and `kill` send) or SIGUSR1 (SLURM's warning before the time limit) makes the
run write `last.ckpt` at the step it is at and exit non-zero with the command that resumes it. Lightning alone stops
on SIGTERM without a checkpoint and exits 0, which a scheduler reads as "finished". Ctrl-C stops at once (mid-step,
nothing saved) and prints the command that resumes the newest last.ckpt."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class SaveOnPreemption(Callback):
    """At the end of the step during which the signal came: write last.ckpt; Lightning then logs the step's metrics
    and stops (SIGTERMException, a SystemExit), whose exit code is set here to 128 + the signal's number."""

    def __init__(self):
        self.signal_name = None
        self.saved = None

    def on_train_start(self, trainer, pl_module) -> None:
        if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._requested)
        if trainer.is_global_zero:  # before this run's first save: what a killed one left half-written
            from bert_pl.io.atomic import remove_stale_temporaries

            remove_stale_temporaries(checkpoint_folder(trainer))

    def _requested(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        asked = bool(self.signal_name) or trainer.received_sigterm
        if trainer.world_size > 1:  # every rank must take the same decision (saving is collective)
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
        if not asked or self.saved:
            return
        path = f"{checkpoint_folder(trainer)}/last.ckpt"  # a string: the folder may be an fsspec URL (s3://...)
        trainer.save_checkpoint(path)  # the state after this step: resuming continues with the next one
        self.saved = (path, trainer.global_step, self.signal_name or "SIGTERM")
        trainer._signal_connector.received_sigterm = True  # SIGUSR1 too: Lightning stops after logging this step

    def on_exception(self, trainer, pl_module, exception) -> None:
        if isinstance(exception, KeyboardInterrupt):
            if trainer.is_global_zero:
                print(interrupted_message(trainer), file=sys.stderr, flush=True)
            return
        if self.saved is None or not isinstance(exception, SystemExit):
            return
        path, step, name = self.saved
        for logger in trainer.loggers:  # the metrics of the step in the checkpoint
            logger.save()
        exception.code = 128 + signal.Signals[name].value  # not 0: a scheduler must not read it as finished
        if trainer.is_global_zero:
            print(f"stopped by {name} at step {step}: wrote {path}\nresume with: {resume_command(path)}",
                  file=sys.stderr, flush=True)


def checkpoint_folder(trainer) -> str:
    ckpt_cb = trainer.checkpoint_callback
    folder = ckpt_cb.dirpath if ckpt_cb is not None and ckpt_cb.dirpath else f"{trainer.default_root_dir}/checkpoints"
    return str(folder).rstrip("/")


def interrupted_message(trainer) -> str:
    """Ctrl-C (KeyboardInterrupt) stops at once, mid-step, so nothing is saved then; the newest checkpoint already
    written (whole: writes are atomic) is what resumes. Lightning exits with 1 after this."""
    folder = checkpoint_folder(trainer)
    head = f"interrupted (Ctrl-C) at step {trainer.global_step}"
    last = Path(folder) / "last.ckpt"  # the newest full training state (other files may hold weights only)
    if "://" in folder or not last.is_file():
        return f"{head}; no training state (last.ckpt) was written yet, so there is nothing to resume"
    # a run folder resumes its last.ckpt, and the resumed run continues in that folder
    target = last.parent.parent if last.parent.name == "checkpoints" else last
    return f"{head}; the newest state is {last}\nresume with: {resume_command(target)}"


def python_command() -> str:
    """How to call this interpreter from the user's shell, for the commands a run prints: `python` when that is it
    (the venv is active), else its path (`.venv/bin/python` when run as `.venv/bin/python train.py` without
    activating), so a printed command runs as written."""
    import os
    import shutil

    on_path = shutil.which("python")
    here = Path(sys.executable).parent
    if on_path and Path(on_path).parent.resolve() == here.resolve():
        return "python"
    try:
        return os.path.relpath(sys.executable) if Path(sys.executable).absolute().is_relative_to(Path.cwd()) \
            else sys.executable
    except ValueError:
        return sys.executable


def resume_command(ckpt) -> str:
    """This run's own command line with ckpt_path= the checkpoint (it then continues in this run's folder)."""
    import shlex

    script = Path(sys.argv[0]).name
    args = [a for a in sys.argv[1:] if not a.startswith(("ckpt_path=", "hydra.run.dir=", "-m", "--multirun"))]
    head = f"{python_command()} {script}" if script.endswith(".py") else script
    return " ".join([head, *map(shlex.quote, args), shlex.quote(f"ckpt_path={ckpt}")])
