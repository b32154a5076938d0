"""What every command-line entry point shares: bad input ends in one line on stderr and exit code 2 (`entry_point`),
and the console shows each message once, without the noise every run repeated (`one_console_log`)."""
from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from bert_pl.errors import UserError


def entry_point(fn):
    """Wrap a Hydra task function: bad input ends in one line on stderr and exit code 2, never a deep stack trace
    (BERT_PL_TRACEBACK=1 shows it). Missing files and permissions count as bad input too, and so do faults of the
    machine the user can fix: a full or read-only disk, and running out of memory (with the settings to lower)."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    user = (UserError, FileNotFoundError, PermissionError, MissingMandatoryValue)

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        one_console_log()
        try:
            return fn(cfg)
        except KeyboardInterrupt:  # Ctrl-C outside training (within it Lightning stops; SaveOnPreemption says more)
            if os.environ.get("BERT_PL_TRACEBACK"):
                raise
            _remove_if_empty_run()
            print("interrupted (Ctrl-C)", file=sys.stderr)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001 (only the faults named below are reported in one line)
            cause = e.__cause__ if isinstance(e, InstantiationException) else e  # Hydra building a `_target_`
            message = _one_line(cause, user, cfg)
            if message is None or os.environ.get("BERT_PL_TRACEBACK"):
                raise
            _remove_if_empty_run()
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def _one_line(e: BaseException, user, cfg: DictConfig) -> Optional[str]:
    """What entry_point prints for `e`, or None for a fault that is not the user's to fix (a bug: full traceback)."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(e, MissingMandatoryValue):
        return f"{str(e).splitlines()[0]} (pass {e.full_key}=...)"
    if isinstance(e, UserError) and isinstance(e, OSError) and e.strerror:
        return e.strerror  # not OSError's "[Errno 28] ..." prefix
    if isinstance(e, PermissionError) and e.filename:
        return (f"{e.filename}: permission denied; fix its permissions, or choose a folder this user can write "
                f"(paths.log_dir=..., hydra.run.dir=..., data.cache_dir=...)")
    if isinstance(e, user):
        return str(e)
    disk = _disk_fault(e)
    if disk is not None:
        where = f"{disk.filename}: " if disk.filename else ""
        if disk.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"{where}the disk is full ({disk.strerror}); free space or write elsewhere (paths.log_dir=..., "
                    f"hydra.run.dir=..., data.cache_dir=...), then resume the run with ckpt_path=<its run folder>")
        return (f"{where}cannot write here ({disk.strerror}); choose a writable folder (paths.log_dir=..., "
                f"hydra.run.dir=..., data.cache_dir=...)")
    if _out_of_memory(e):
        data = cfg.get("data") or {}
        batch = data.get("batch_size")
        now = f"={batch}" if batch is not None else ""
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return (f"out of memory ({first}); lower data.batch_size{now} (raise trainer.accumulate_grad_batches to keep "
                f"the same effective batch), or data.max_seq_length, or use a smaller model")
    return None


def _disk_fault(e: BaseException) -> Optional[OSError]:
    """A full or read-only disk anywhere along the exception's chain (torch's writer, for one, wraps the OSError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return e
        e = e.__cause__ or e.__context__
    return None


def _out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    import torch

    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text)


def _remove_if_empty_run() -> None:
    """A run refused before it wrote anything leaves no folder behind: only Hydra's record, its log, the copy of the
    tokenizer and the loggers' empty set-up files were there (the error is on the console). Checkpoints, metrics and
    results keep the folder."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if not folder.is_dir():
        return
    setup_only = {".hydra", "tokenizer"}
    written = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".log" and p.name != "hparams.yaml"
               and not setup_only.intersection(p.relative_to(folder).parts[:1])]
    if not written:
        shutil.rmtree(folder, ignore_errors=True)


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip")


def one_console_log() -> None:
    """The `lightning` package prints through its own console handler and then propagates to Hydra's (console + the
    job's log file), so each of its messages appeared twice: keep Hydra's only, and drop Lightning's product tips."""
    silence_known_noise()
    if not logging.getLogger().handlers:  # not under Hydra: Lightning's handler is the only one
        return
    import lightning  # noqa: F401  (its handler is added on import)

    lightning_log = logging.getLogger("lightning")
    for handler in list(lightning_log.handlers):
        if type(handler) is logging.StreamHandler:
            lightning_log.removeHandler(handler)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_NoAdverts())


class _NoFrameworkVersions(logging.Filter):
    """`datasets` logs at import which other frameworks it found ("TensorFlow version 2.x available."): every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not re.fullmatch(r"(PyTorch|TensorFlow|JAX|Polars) version \S+ available\.", str(record.msg))


def silence_known_noise() -> None:
    """The messages every run repeated that say nothing about it: Lightning's own use of a deprecated torch pytree
    API (LeafSpec), and `datasets`' list of installed frameworks. Only these; other warnings still show."""
    import warnings

    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    datasets_log = logging.getLogger("datasets")
    if not any(isinstance(f, _NoFrameworkVersions) for f in datasets_log.filters):
        datasets_log.addFilter(_NoFrameworkVersions())
