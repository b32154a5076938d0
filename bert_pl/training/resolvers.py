"""The OmegaConf resolvers that conf/*.yaml use, registered when this module is imported (before a config is
composed): ${project_root:}, ${run_dir:RUNS,CKPT} and ${config_subdir:CKPT} (bert_pl.io.runs), ${gpu_precision:} and
${cpu_precision:} (bert_pl.training.hardware)."""
from __future__ import annotations

from omegaconf import OmegaConf

from bert_pl.io import runs
from bert_pl.io.project import PROJECT_ROOT
from bert_pl.training import hardware

RESOLVERS = {"project_root": lambda: str(PROJECT_ROOT), "run_dir": runs.run_dir,
             "config_subdir": runs.config_subdir, "gpu_precision": hardware.gpu_precision,
             "cpu_precision": hardware.cpu_precision}

for _name, _fn in RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
