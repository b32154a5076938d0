"""Lightning plumbing: crash-safe checkpoint writes and loggers that never prompt."""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import posixpath
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any, List, Optional, Tuple

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


def _write_fault(e: BaseException) -> Optional[OSError]:
    """The OSError behind a failed write: torch's writer reports a full disk as a RuntimeError ("unexpected pos")
    raised while handling the OSError, so the cause is looked for along the chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


def _file_mode() -> int:
    """The mode a plain `open(path, "w")` gets (0644 under the usual umask 022); mkstemp's own is 0600."""
    try:
        with open("/proc/self/status") as f:  # read, not set: os.umask() alone would change it for other threads
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _newest_checkpoint(folder: Path, but: Path) -> Optional[Path]:
    with contextlib.suppress(OSError):
        found = [p for p in folder.glob("*.ckpt") if p != but and p.is_file()]
        return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None
    return None


# `.NAME.XXXXXXXX.tmp`: what atomic_torch_save's mkstemp names its temporary files (8 random characters)
_TEMPORARY = re.compile(r"\.(?P<name>.+\.ckpt)\.[A-Za-z0-9_]{8}\.tmp")


def remove_stale_temporaries(folder) -> List[Path]:
    """Delete the temporary files that killed checkpoint writes (SIGKILL, power loss) left in `folder`: only our own
    `.NAME.ckpt.XXXXXXXX.tmp` names, never another file. Called when a run starts or resumes, before it writes."""
    fs, where = _where(folder)
    if fs is not None or not os.path.isdir(where):
        return []
    removed = []
    for entry in os.scandir(where):
        if entry.is_file(follow_symlinks=False) and _TEMPORARY.fullmatch(entry.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        log.info("removed %d unfinished checkpoint write(s) from %s: %s", len(removed), where,
                 ", ".join(p.name for p in removed))
    return removed


def atomic_torch_save(obj: Any, path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`: a crash or a full disk at any
    moment leaves the previous file intact, and no partial file is left behind (a SIGKILL can leave the temporary
    file: see `remove_stale_temporaries`). The file gets the umask's mode, like any other file the run writes.
    Other fsspec URLs (s3://, gs://, memory://, ...) are written through fsspec, atomically where that filesystem
    allows (see `_remote_write`)."""
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
            with contextlib.suppress(OSError):  # some mounts (SMB, FUSE) refuse chmod: their own mode then
                os.fchmod(f.fileno(), _file_mode())
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        fault = _write_fault(e)
        if fault is not None:
            what = "the disk is full" if fault.errno == errno.ENOSPC else fault.strerror
            newest = path if path.is_file() else _newest_checkpoint(path.parent, path)
            if newest is None:
                kept, then = "no checkpoint was written before it", "start the run again"
            else:
                resume = path.parent.parent if newest == path and path.parent.name == "checkpoints" else newest
                kept = "the previous checkpoint is intact" if newest == path else \
                    f"the newest intact checkpoint is {newest}"
                then = f"resume with ckpt_path={resume}"
            raise CheckpointSaveError(fault.errno, f"saving checkpoint {path} failed ({what}); {kept}. Free space or "
                                                   f"move the output folder, then {then}") from e
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


class MissingExtraError(UserError, ImportError):
    pass


def require_extra(module: str, extra: str, what: str) -> None:
    """One line instead of an ImportError traceback where an optional package is missing (the extras of
    pyproject.toml)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{what} needs the {module} package, which is not installed: "
                                f"pip install 'bert-pl[{extra}]' (or pip install {module})")


def tensorboard_logger(**kwargs):
    """Lightning's TensorBoardLogger, after checking that tensorboard (or tensorboardX) is installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboardX") is None:
        require_extra("tensorboard", "tensorboard", "logger=tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(**kwargs)


def wandb_logger(**kwargs):
    """WandbLogger that works with no account: offline unless an API key is configured, never a login prompt.
    The key is read from the environment by wandb itself and never enters the config or the logs."""
    require_extra("wandb", "wandb", "logger=wandb")
    from lightning.pytorch.loggers import WandbLogger

    has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file() and "api.wandb.ai" in (
        Path.home() / ".netrc").read_text()
    if not has_key or kwargs.get("offline"):
        kwargs["offline"] = True
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    if wandb.run is not None:  # left open by a job of this process that failed: this job gets a run of its own
        wandb.finish(exit_code=1)
    return WandbLogger(**{**_wandb_job_identity(kwargs.get("job_type")), **{k: v for k, v in kwargs.items()
                                                                            if v is not None}})


def _wandb_job_identity(task_name) -> dict:
    """A job of a Hydra sweep (-m) is grouped by its sweep folder and named by its overrides; a single run is named
    by its task (group and name given in the config win)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hc = HydraConfig.get()
        swept = _swept_keys(hc)  # the overrides that tell this job from its siblings (all, where not known)
        own = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") in swept] or list(hc.overrides.task)
        return {"group": Path(hc.sweep.dir).name, "name": " ".join(own) or f"job {hc.job.num}"}
    return {"name": task_name} if task_name else {}


def _swept_keys(hc) -> set:
    """Keys the sweep varies: its sweeper's params (hparams_search configs) and the command line's sweeps
    (`key=a,b`, as recorded in the sweep folder's multirun.yaml)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    keys = set((hc.sweeper.get("params") or {}).keys()) if "sweeper" in hc else set()
    try:
        recorded = OmegaConf.load(Path(hc.sweep.dir) / "multirun.yaml").hydra.overrides.task
        keys |= {o.key_or_group for o in OverridesParser.create().parse_overrides(list(recorded))
                 if o.is_sweep_override()}
    except Exception:  # noqa: BLE001 (another launcher's layout: the name then lists every override)
        pass
    return keys
