"""A Hydra callback that checks, before Hydra creates the run folder, that it can be written: Hydra makes the folder
(and resolves `hydra.run.dir`, whose `run_dir` resolver creates it) before the task function starts, so a read-only
or full disk there would end in Hydra's own traceback instead of the entry point's one line."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def _os_fault(e: Optional[BaseException]) -> Optional[OSError]:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError):
            return e
        e = e.__cause__ or e.__context__
    return None


def check_writable(config: DictConfig, key: str) -> None:
    """Create the folder `key` names and write a scratch file there; on an OSError print one line, exit 2."""
    from omegaconf.errors import OmegaConfBaseException

    folder = None
    try:
        folder = Path(str(OmegaConf.select(config, key)))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (OSError, OmegaConfBaseException) as e:
        fault = _os_fault(e)
        if fault is None:
            raise
        where = fault.filename or folder
        print(f"error: cannot write the run folder {where} ({fault.strerror}); choose a writable place with "
              f"paths.log_dir=... (or hydra.run.dir=... / hydra.sweep.dir=...)", file=sys.stderr)
        sys.exit(2)


class WritableOutput(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.sweep.dir")
