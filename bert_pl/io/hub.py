"""The one gate in front of every hub download: offline, fail at once and say what local path to pass instead."""
from __future__ import annotations

import functools
import os
import socket

from bert_pl.errors import UserError


class OfflineError(UserError, RuntimeError):
    pass


@functools.lru_cache(maxsize=1)
def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def require_online(what: str, instead: str) -> None:
    if not hub_reachable():
        raise OfflineError(f"{what} must come from the Hugging Face hub, which is not reachable (offline); "
                           f"pass {instead}")
