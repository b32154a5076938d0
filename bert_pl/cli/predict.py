"""`python predict.py KEY=VALUE...` and `bert-pl-predict`: run a trained model on new text (bert_pl.inference.model's
run_predict). The settings are conf/predict.yaml, composed by Hydra as train.py and finetune.py compose theirs, with
--help from the same file, composed on its own (bert_pl/cli/standalone.py: model= names a checkpoint; model=, input=,
text=, output= and id_column= are taken exactly as typed). Settings are checked for their kind before the model is
read (`typed`), in one line, and nothing is written but output= (no run folder, .hydra/ record or log file).
"""
from __future__ import annotations

from typing import Optional, Sequence

from bert_pl.cli import standalone
from bert_pl.errors import UserConfigError
from bert_pl.io.project import CONF_DIR

CONFIG = CONF_DIR / "predict.yaml"
FREE_TEXT = ("model", "input", "text", "output", "id_column")
WHOLE_NUMBERS = ("top_k", "batch_size", "max_seq_length")
LISTS = ("text_columns", "layers")
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


def compose(argv: Sequence[str]):
    """The settings predict.py runs with for `argv` (as `main` composes them, without running anything)."""
    return standalone.compose(CONFIG, argv, FREE_TEXT, typed)


def main(argv: Optional[Sequence[str]] = None):
    """Compose conf/predict.yaml with `argv` (default: the command line) and run the prediction; errors end in one
    line and exit code 2."""

    def predict(cfg):
        from bert_pl.inference.predict_files import run_predict

        return run_predict(typed(cfg))

    standalone.run(CONFIG, argv, FREE_TEXT, predict)
