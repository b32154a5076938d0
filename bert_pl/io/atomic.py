"""Lightning plumbing: crash-safe checkpoint writes and loggers that never prompt."""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import posixpath
import tempfile
import uuid
from pathlib import Path
from typing import Any, Optional, Tuple

import torch
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from lightning.pytorch.plugins.io import TorchCheckpointIO, XLACheckpointIO

from bert_pl.errors import UserError

log = logging.getLogger(__name__)

# Object stores commit an upload as a whole (readers see the old object or the new one, never a part), so one put is
# already atomic there, and a rename would be a second full copy of the checkpoint.
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"}


class CheckpointSaveError(UserError, OSError):
    pass


def _where(path) -> Tuple[Optional[Any], str]:
    """(None, local path) for a plain path or a file:// URL; (fsspec filesystem, its path) for any other URL.
    Never `Path(url)`: that folds `s3://bucket` into a local folder named `s3:`."""
    if isinstance(path, Path) or "://" not in str(path):
        return None, str(path)
    try:
        fs, fs_path = url_to_fs(str(path))
    except (ImportError, ValueError) as e:  # e.g. "Install s3fs to access S3"
        raise CheckpointSaveError(errno.EINVAL, f"{path}: cannot open this location ({e})") from None
    return (None, fs_path) if isinstance(fs, LocalFileSystem) else (fs, fs_path)


def _remote_write(fs, fs_path: str, data: bytes, url) -> None:
    """Write `data` through fsspec: one put on object stores (atomic by themselves), elsewhere a temporary file
    renamed over the target, or a plain write where the filesystem cannot rename."""
    parent = posixpath.dirname(fs_path)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    try:
        fs.makedirs(parent, exist_ok=True)
        if protocols & _OBJECT_STORES:
            fs.pipe_file(fs_path, data)
            return
        tmp = f"{parent}/.{posixpath.basename(fs_path)}.{uuid.uuid4().hex}.tmp"
        try:
            fs.pipe_file(tmp, data)
            fs.mv(tmp, fs_path)
        except NotImplementedError:  # no rename (nor copy) here: a plain write, which a crash can leave half-done
            fs.pipe_file(fs_path, data)
        finally:
            with contextlib.suppress(Exception):
                if fs.exists(tmp):
                    fs.rm(tmp)
    except (OSError, NotImplementedError) as e:
        raise CheckpointSaveError(getattr(e, "errno", None) or errno.EIO, f"saving {url} failed "
                                  f"({e or type(e).__name__}); check the location and its credentials, then resume"
                                  ) from e


def atomic_torch_save(obj: Any, path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`: a crash or a full disk at any
    moment leaves the previous file intact, and no partial file is left behind. Other fsspec URLs (s3://, gs://,
    memory://, ...) are written through fsspec, atomically where that filesystem allows (see `_remote_write`)."""
    fs, where = _where(path)
    if fs is not None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        _remote_write(fs, where, buffer.getvalue(), path)
        return
    path = Path(where)
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
    fs, where = _where(path)
    if fs is not None:
        _remote_write(fs, where, text.encode("utf-8"), path)
        return
    path = Path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Crash-safe saves; loading and removing are TorchCheckpointIO's, which already go through fsspec for URLs."""

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
