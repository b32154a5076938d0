"""Distributed (DDP) runs under Hydra: the ranks Lightning starts keep this job's folder and overrides, and each job
of a multirun starts its own process group."""
from __future__ import annotations

import contextlib
import os
import sys

from omegaconf import OmegaConf


def pin_ddp_children(output_dir: str) -> None:
    """Lightning starts DDP ranks > 0 by re-running sys.argv with `hydra.run.dir=<HydraConfig run.dir>`. Under
    multirun that would start a whole sweep per rank, in the wrong folder. Give the children this job's own
    overrides (no -m, no comma sweeps) and this job's output folder instead."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    sys.argv = [sys.argv[0], *hc.overrides.task]
    OmegaConf.set_readonly(hc, False)
    hc.run.dir = output_dir
    OmegaConf.set_readonly(hc, True)


LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def distributed_job():
    """One job's distributed run. Afterwards: tear down its process group, and restore the variables Lightning's
    launcher set in this process (LOCAL_RANK, WORLD_SIZE, ...): left behind, they would tell the next job of a
    multirun that its processes are started externally, and it would wait forever for ranks nobody starts."""
    import torch.distributed as dist

    saved = {k: os.environ.get(k) for k in LAUNCHER_ENV}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
