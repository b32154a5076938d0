"""`python predict.py KEY=VALUE...` and `bert-pl-predict`: run a trained model on new text (bert_pl.inference.model's
run_predict). The settings are conf/predict.yaml, composed by Hydra as train.py and finetune.py compose theirs, with
--help from the same file. Three things differ, so that the documented commands keep working as written:
- the file is composed on its own (conf/'s groups are not searched), so `model=PATH` names a checkpoint, not
  conf/model/;
- model=, input=, text=, output= and id_column= are taken exactly as typed (`free_text`): the shell has stripped
  the quotes of text="Paris is the [MASK] of France.", and Hydra would read brackets, commas and numbers in it;
- settings are checked for their kind before the model is read (`typed`), in one line, and nothing is written but
  output= (no run folder, .hydra/ record or log file).
"""
from __future__ import annotations

import re
import sys
from typing import List, Optional, Sequence

from bert_pl.cli.entry import entry_point
from bert_pl.errors import UserConfigError
from bert_pl.io.project import CONF_DIR

CONFIG = CONF_DIR / "predict.yaml"
FREE_TEXT = ("model", "input", "text", "output", "id_column")
WHOLE_NUMBERS = ("top_k", "batch_size", "max_seq_length")
LISTS = ("text_columns", "layers")
# Hydra's own flags that take the next argument as their value (`--cfg job`, `-cn NAME`, ...)
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun"}


def quote(value: str) -> str:
    """`value` as a Hydra quoted string that Hydra reads back as exactly `value`: quotes and `${` escaped, and the
    backslashes before them (or at the end) doubled."""
    value = re.sub(r"\\+(?='|\$\{|$)", lambda m: m.group(0) * 2, value)
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def free_text(argv: Sequence[str], settings: Sequence[str]) -> List[str]:
    """predict.py's arguments as Hydra overrides: the free-text settings (FREE_TEXT) quoted, so that Hydra takes
    them as typed (`null` stays null), and anything that is not `setting=value` refused in one line, as Hydra's
    own errors are several. Hydra's flags (--help, --cfg job, ...) and hydra.* overrides pass unchanged."""
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
        out.append(f"{key}={quote(value)}" if key in FREE_TEXT and value != "null" else arg)
    return out


def typed(cfg):
    """The composed settings as run_predict reads them: whole numbers are whole numbers (max_seq_length also null),
    text_columns and layers lists (one value is a one-item list), text_columns names; a wrong kind is one line.
    `key=` (empty) restores a null default."""
    from omegaconf import OmegaConf, open_dict

    def said(value) -> str:
        return repr(str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value))

    with open_dict(cfg):
        for key in WHOLE_NUMBERS + LISTS:
            if cfg[key] == "":
                cfg[key] = None
        for key in WHOLE_NUMBERS:
            value = cfg[key]
            if value is None and key == "max_seq_length":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserConfigError(f"{key}={said(value)}: expected a whole number, e.g. 64"
                                      + (" (or null)" if key == "max_seq_length" else ""))
        for key in LISTS:
            value = cfg[key]
            if value is not None and not OmegaConf.is_list(value):
                cfg[key] = [value]  # text_columns=text means [text]
        if cfg.text_columns is not None:  # names, even when they look like numbers; kept literal (no ${...})
            cfg.text_columns = [str(c).replace("${", "\\${") for c in cfg.text_columns]
    return cfg


def _register() -> list:
    """conf/predict.yaml as the config `predict` (on its own: no conf/ groups in its search path); its settings."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    defaults = OmegaConf.load(CONFIG)
    ConfigStore.instance().store(name="predict", node=defaults)
    return [k for k in defaults if k not in ("defaults", "hydra")]


def compose(argv: Sequence[str]):
    """The settings predict.py runs with for `argv` (as `main` composes them, without running anything)."""
    from hydra import compose as hydra_compose
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra

    overrides = free_text(argv, _register())
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        return typed(hydra_compose("predict", overrides=overrides))


def main(argv: Optional[Sequence[str]] = None):
    """Compose conf/predict.yaml with `argv` (default: the command line) and run the prediction; errors end in one
    line and exit code 2."""
    import hydra

    try:
        overrides = free_text(sys.argv[1:] if argv is None else argv, _register())
    except UserConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    @hydra.main(version_base="1.3", config_path=None, config_name="predict")
    @entry_point
    def predict(cfg):
        from bert_pl.inference.predict_files import run_predict

        return run_predict(typed(cfg))

    saved = sys.argv
    sys.argv = [saved[0], *overrides]  # hydra.main reads the command line
    try:
        predict()
    finally:
        sys.argv = saved
