"""Lightning plumbing: crash-safe checkpoint writes and loggers that never prompt."""
from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO, XLACheckpointIO

from bert_pl.errors import UserError

log = logging.getLogger(__name__)


class CheckpointSaveError(UserError, OSError):
    pass


def atomic_torch_save(obj: Any, path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`: a crash or a full disk at any
    moment leaves the previous file intact, and no partial file is left behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CheckpointSaveError(e.errno, f"cannot write checkpoints into {path.parent} ({e.strerror}); "
                                           f"choose a writable folder (hydra.run.dir=... or paths.output_dir=...)")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            what = "the disk is full" if e.errno == errno.ENOSPC else e.strerror
            raise CheckpointSaveError(e.errno, f"saving checkpoint {path} failed ({what}); the previous checkpoint "
                                               f"is intact. Free space or move the output folder, then resume") from e
        raise


def atomic_write_text(path, text: str) -> None:
    """Results and prediction files: whole or absent, never half-written (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options: Optional[Any] = None) -> None:
        atomic_torch_save(checkpoint, path)


class AtomicXLACheckpointIO(XLACheckpointIO):
    """The XLA strategy accepts only its own checkpoint writer: the same, with tensors brought to the host first."""

    def save_checkpoint(self, checkpoint, path, storage_options: Optional[Any] = None) -> None:
        from lightning_utilities.core.apply_func import apply_to_collection
        from omegaconf import DictConfig, ListConfig, OmegaConf

        checkpoint = apply_to_collection(checkpoint, (DictConfig, ListConfig), OmegaConf.to_container)
        atomic_torch_save(apply_to_collection(checkpoint, torch.Tensor, lambda t: t.cpu()), path)


def wandb_logger(**kwargs):
    """WandbLogger that works with no account: offline unless an API key is configured, never a login prompt.
    The key is read from the environment by wandb itself and never enters the config or the logs."""
    from lightning.pytorch.loggers import WandbLogger

    has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file() and "api.wandb.ai" in (
        Path.home() / ".netrc").read_text()
    if not has_key or kwargs.get("offline"):
        kwargs["offline"] = True
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(**kwargs)
