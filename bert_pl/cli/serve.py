"""`python serve.py KEY=VALUE...` and `bert-pl-serve`: serve a trained model over HTTP (bert_pl.inference.server).
The settings are conf/serve.yaml, composed by Hydra on its own as predict.py composes conf/predict.yaml (model= is a
checkpoint, taken as typed); each is checked for its kind before the model is read, in one line with exit code 2.
"""
from __future__ import annotations

from typing import Optional, Sequence

from bert_pl.cli import standalone
from bert_pl.errors import UserConfigError
from bert_pl.io.project import CONF_DIR

CONFIG = CONF_DIR / "serve.yaml"
FREE_TEXT = ("model",)  # taken exactly as typed (a path may hold brackets, commas, '=')
# setting: (smallest value, None allowed)
WHOLE_NUMBERS = {"port": (0, False), "max_batch_size": (1, False), "max_inputs": (1, False), "max_chars": (1, False),
                 "max_seq_length": (1, True), "threads": (1, True)}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def typed(cfg):
    """The composed settings, checked: whole numbers (port 0..65535), max_wait_ms a number >= 0, access_log true or
    false, log_level one of uvicorn's. `key=` (empty) restores a null default."""
    from omegaconf import open_dict

    with open_dict(cfg):
        for key, (least, nullable) in WHOLE_NUMBERS.items():
            value = cfg[key]
            if nullable and value in (None, ""):
                cfg[key] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least or \
                    (key == "port" and value > 65535):
                shown = "0..65535 (0: a free port)" if key == "port" else f"at least {least}"
                raise UserConfigError(f"{key}={value!r}: expected a whole number, {shown}"
                                      + (" (or null)" if nullable else ""))
        wait = cfg.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 60000:
            raise UserConfigError(f"max_wait_ms={wait!r}: expected milliseconds from 0 to 60000, e.g. 5")
        if not isinstance(cfg.access_log, bool):
            raise UserConfigError(f"access_log={cfg.access_log!r}: expected true or false")
        if cfg.log_level not in LOG_LEVELS:
            raise UserConfigError(f"log_level={cfg.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
        for key in ("host", "device"):
            if not isinstance(cfg[key], str) or not cfg[key]:
                raise UserConfigError(f"{key}={cfg[key]!r}: expected a name, e.g. "
                                      + ("127.0.0.1 or 0.0.0.0" if key == "host" else "cpu or cuda"))
    return cfg


def compose(argv: Sequence[str]):
    """The settings serve.py runs with for `argv` (as `main` composes them, without serving)."""
    return standalone.compose(CONFIG, argv, FREE_TEXT, typed)


def run_serve(cfg) -> None:
    """Load the model and serve it until SIGTERM / Ctrl-C."""
    import torch

    from bert_pl.inference.model import load
    from bert_pl.inference.server import Limits, bind, serve

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bind(cfg.host, cfg.port).close()  # a taken port is said before the model is read
    limits = Limits(max_batch_size=cfg.max_batch_size, max_wait_ms=float(cfg.max_wait_ms),
                    max_inputs=cfg.max_inputs, max_chars=cfg.max_chars)
    model = load(cfg.model, device=cfg.device, batch_size=cfg.max_batch_size, max_seq_length=cfg.max_seq_length)
    serve(model, cfg.host, cfg.port, limits, access_log=cfg.access_log, log_level=cfg.log_level)


def main(argv: Optional[Sequence[str]] = None):
    """Compose conf/serve.yaml with `argv` (default: the command line) and serve; errors end in one line and exit
    code 2."""
    standalone.run(CONFIG, argv, FREE_TEXT, lambda cfg: run_serve(typed(cfg)))
