"""Resuming a run: `ckpt_path=` (a run folder, latest[:TASK], a last.ckpt or auto) checked to be a training
checkpoint of the same model before Lightning loads it."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from bert_pl.errors import UserConfigError

log = logging.getLogger("bert_pl")


def checkpoint_to_resume(cfg: DictConfig, head: str, labels=None) -> Optional[str]:
    """`ckpt_path=` as a checkpoint file, or None for a fresh start. `auto`: this run folder's last.ckpt when Hydra
    chose an unfinished run of the same settings (see `run_dir`), else a new run (said in the log)."""
    spec = cfg.get("ckpt_path")
    if not spec:
        return None
    if str(spec) == "auto":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.info("ckpt_path=auto: no unfinished run with these settings; starting a new one")
            return None
        log.info("ckpt_path=auto: resuming the unfinished run %s", last.parent.parent)
        spec = str(last)
    return resume_checkpoint(spec, head, labels)


def resume_checkpoint(spec, head: str, labels=None, key: str = "ckpt_path") -> str:
    """`ckpt_path=`: a run folder (its checkpoints/last.ckpt), `latest[:TASK]` or a .ckpt that Lightning wrote while
    training a `head` model (with `labels`); anything else is a one-line error naming what it is."""
    import torch

    from bert_pl.io import runs

    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        found = [p for p in (path / "checkpoints" / "last.ckpt", path / "last.ckpt") if p.is_file()]
        if not found:
            raise UserConfigError(f"{key}={spec}: the folder has no checkpoints/last.ckpt to resume from")
        path = found[0]
    elif spec == "latest" or spec.startswith("latest:"):
        path = runs.find_latest(spec.partition(":")[2] or None) / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserConfigError(f"{key}={spec}: no such file or folder")
    try:  # weights_only: tensors and plain containers, never code (a pickle can run anything when loaded)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise UserConfigError(f"{key}={spec}: refused: the file holds pickled Python objects that a bert-pl "
                              f"checkpoint never contains, and loading them could run code (nothing was run); "
                              f"resume from a checkpoint bert-pl wrote") from None
    except Exception as e:  # noqa: BLE001 (any unreadable file is the same user error)
        raise UserConfigError(f"{key}={spec}: not a readable checkpoint ({type(e).__name__}); pass a run's "
                              f"checkpoints/last.ckpt") from None
    if not isinstance(state, dict) or "optimizer_states" not in state or "loops" not in state:
        raise UserConfigError(f"{key}={spec}: not a training checkpoint written by bert-pl (no optimizer and loop "
                              f"state); to start from these weights pass pretrained= instead")
    info = state.get("bert_pl") or {}
    if info.get("head", "pretraining") != head:
        raise UserConfigError(f"{key}={spec} was written while training a {info.get('head')} model; this run trains a "
                              f"{head} model: resume it with the command that made it, or pass pretrained= to start "
                              f"from its weights")
    if labels is not None and info.get("labels") is not None and list(info["labels"]) != list(labels):
        raise UserConfigError(f"{key}={spec} was trained with labels {list(info['labels'])}, this task has "
                              f"{list(labels)}: resume it with the task that made it")
    return str(path)
