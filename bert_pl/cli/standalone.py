"""Entry points that compose one YAML file of conf/ on its own (predict.py: conf/predict.yaml, serve.py:
conf/serve.yaml) rather than conf/'s groups, so that `model=PATH` names a checkpoint, not a conf/model/ preset.

Their free-text settings (model=, input=, text=, ...) are taken exactly as typed (`free_text`): the shell has stripped
the quotes of text="Paris is the [MASK] of France.", and Hydra would read brackets, commas and numbers in it. Each
app checks its settings' kinds (`typed`) before anything is loaded, and an error is one line with exit code 2.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from bert_pl.cli.entry import entry_point
from bert_pl.errors import UserConfigError

# Hydra's own flags that take the next argument as their value (`--cfg job`, `-cn NAME`, ...)
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun"}


def quote(value: str) -> str:
    """`value` as a Hydra quoted string that Hydra reads back as exactly `value`: quotes and `${` escaped, and the
    backslashes before them (or at the end) doubled."""
    value = re.sub(r"\\+(?='|\$\{|$)", lambda m: m.group(0) * 2, value)
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def free_text(argv: Sequence[str], settings: Sequence[str], free: Sequence[str]) -> List[str]:
    """The arguments as Hydra overrides: the free-text settings (`free`) quoted, so that Hydra takes them as typed
    (`null` stays null), and anything that is not `setting=value` refused in one line, as Hydra's own errors are
    several. Hydra's flags (--help, --cfg job, ...) and hydra.* overrides pass unchanged."""
    out, flag_value = [], False
    for arg in argv:
        if flag_value or arg.startswith("-"):
            out.append(arg)
            flag_value = arg in _FLAGS_WITH_VALUE
            continue
        key, eq, value = arg.partition("=")
        if key.startswith(("hydra.", "+hydra.", "++hydra.")):
            out.append(arg)
            continue
        if not eq:
            raise UserConfigError(f"{arg!r}: arguments are key=value; settings: {', '.join(settings)}")
        if key not in settings:
            raise UserConfigError(f"unknown setting {key!r}; settings: {', '.join(settings)}")
        out.append(f"{key}={quote(value)}" if key in free and value != "null" else arg)
    return out



def register(config: Path) -> List[str]:
    """`config` (a YAML file) as the Hydra config named by its stem, on its own (no conf/ groups in its search
    path); its settings."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    defaults = OmegaConf.load(config)
    ConfigStore.instance().store(name=config.stem, node=defaults)
    return [k for k in defaults if k not in ("defaults", "hydra")]


def compose(config: Path, argv: Sequence[str], free: Sequence[str], typed: Callable):
    """The settings the app runs with for `argv` (as `run` composes them, without running anything)."""
    from hydra import compose as hydra_compose
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra

    overrides = free_text(argv, register(config), free)
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        return typed(hydra_compose(config.stem, overrides=overrides))


def run(config: Path, argv: Optional[Sequence[str]], free: Sequence[str], job: Callable):
    """Compose `config` with `argv` (default: the command line) and run `job(cfg)` as a Hydra app (--help, --cfg
    job ... work); errors end in one line and exit code 2."""
    import hydra

    try:
        overrides = free_text(sys.argv[1:] if argv is None else argv, register(config), free)
    except UserConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    @hydra.main(version_base="1.3", config_path=None, config_name=config.stem)
    @entry_point
    def app(cfg):
        return job(cfg)

    saved = sys.argv
    sys.argv = [saved[0], *overrides]  # hydra.main reads the command line
    try:
        app()
    finally:
        sys.argv = saved
