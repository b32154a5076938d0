"""The one gate in front of every hub download: offline, fail at once and say what local path to pass instead.

It follows huggingface_hub's own settings: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE, and datasets' HF_DATASETS_OFFLINE)
decides without touching the network, HF_ENDPOINT names the hub or mirror that must answer, and the proxy variables
(HTTPS_PROXY, NO_PROXY, ...) are honoured. Offline, a hub id already in the local cache is used from there.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import List, Optional

from huggingface_hub import constants

from bert_pl.errors import UserError

log = logging.getLogger(__name__)


class OfflineError(UserError, RuntimeError):
    pass


def _offline_variable(datasets: bool = True) -> Optional[str]:
    """The variable that switches the hub off, read now with huggingface_hub's own parsing (it reads them once, at
    import, but launchers and tests set them later). `datasets`: datasets' own switch counts too (downloads)."""
    hub = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    for variable in (hub, "HF_DATASETS_OFFLINE")[:2 if datasets else 1]:
        if os.environ.get(variable, "").upper() in constants.ENV_VARS_TRUE_VALUES:
            return variable
    return None


def hub_endpoint() -> str:
    """The hub, or the mirror HF_ENDPOINT names, that downloads go to."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


@functools.lru_cache(maxsize=8)
def _answers(endpoint: str, timeout: float = 3.0) -> bool:
    """One HEAD request, with the HTTP library huggingface_hub itself uses (so the same proxy variables and
    certificates apply), not its shared session, whose offline switch is frozen at import. Any answer below 500
    means the hub or mirror is there; a proxy that cannot reach it answers 502/503/504."""
    try:
        import httpx2 as httpx  # huggingface_hub >= 2
    except ImportError:
        import httpx
    try:
        with httpx.Client(timeout=timeout, trust_env=True) as client:
            return client.head(endpoint).status_code < 500
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError):
        return False


def offline_reason() -> Optional[str]:
    """None when the hub can be used now; otherwise why not, naming the variable or the endpoint."""
    variable = _offline_variable()
    if variable:
        return f"{variable}={os.environ[variable]} is set"
    endpoint = hub_endpoint()
    if not _answers(endpoint):
        return f"no answer from {endpoint}" + (" (HF_ENDPOINT)" if os.environ.get("HF_ENDPOINT") else "")
    return None


def hub_reachable() -> bool:
    return offline_reason() is None


hub_reachable.cache_clear = _answers.cache_clear  # the network answer is remembered; the variables are read each time


def cached_copy(repo_id: str, repo_type: str = "model", allow_patterns: Optional[List[str]] = None) -> Optional[Path]:
    """The local cache's copy of a hub repo, found without the network; None when nothing complete is cached.
    Models: the snapshot huggingface_hub downloaded (HF_HUB_CACHE). Datasets: the prepared copy `datasets` reads
    offline (HF_DATASETS_CACHE/org___name/config/version/hash), since a raw snapshot is not enough for it."""
    if repo_type == "dataset":
        import datasets.config
        from datasets.naming import camelcase_to_snakecase

        *org, name = repo_id.split("/")
        root = Path(datasets.config.HF_DATASETS_CACHE) / "___".join([*org, camelcase_to_snakecase(name)])
        return root if any(p.is_dir() for p in root.glob("*/*/*")) else None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, allow_patterns=allow_patterns,
                                      local_files_only=True))
    except FileNotFoundError:  # LocalEntryNotFoundError, IncompleteSnapshotError
        return None


def require_online(what: str, instead: str, repo_id: Optional[str] = None, repo_type: str = "model",
                   allow_patterns: Optional[List[str]] = None) -> Optional[Path]:
    """Pass (None) when the hub can be used. Offline, a `repo_id` already in the local cache passes too, and its
    cached folder is returned to be read from there; otherwise one line says what to pass instead."""
    why = offline_reason()
    if why is None:
        return None
    cached = cached_copy(repo_id, repo_type, allow_patterns) if repo_id else None
    if cached is not None:
        log.info("%s: the hub is not reachable (%s); using the cached copy %s", what, why, cached)
        return cached
    raise OfflineError(f"{what} must come from the Hugging Face hub, which is not reachable (offline): {why}"
                       f"{' and nothing usable is cached' if repo_id else ''}; pass {instead}")


def push_folder(folder: Path, repo_id: str) -> str:
    """Upload an exported folder to the Hub as model repo `repo_id` (created if absent); returns its URL. Offline, or
    when the Hub refuses, one line says why; the folder stays as exported."""
    later = f"the export stays in {folder}; upload it later with `hf upload {repo_id} {folder}`"
    variable = _offline_variable(datasets=False)
    if variable:
        raise OfflineError(f"--push-to-hub {repo_id}: the Hugging Face Hub is switched off here ({variable}=1); "
                           f"{later}")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_endpoint())
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload a bert-pl export")
    except Exception as e:  # noqa: BLE001 - no network, no token, no rights: one line, whatever the transport
        status = getattr(getattr(e, "response", None), "status_code", None)
        why = {401: "not logged in (run `hf auth login` or set HF_TOKEN)",
               403: f"this token may not write to {repo_id}"}.get(status, f"{type(e).__name__}: {str(e)[:200]}")
        raise UserError(f"--push-to-hub {repo_id}: {hub_endpoint()} refused or could not be reached ({why}); "
                        f"{later}") from None
    return f"{hub_endpoint()}/{repo_id}"
