"""Why a path the user passed cannot be used, in words: `Path.exists()` is False alike for a missing path, a symlink
loop and a broken link, and "does not exist" would mislead for the last two."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional


def why_missing(path) -> str:
    """"does not exist", "is a symlink loop (...)" or "is a broken symlink (to ...)", naming the link at fault, which
    may be one of the path's parent folders."""
    path = Path(os.path.expanduser(str(path)))
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"is a symlink loop ({_link_at_fault(path)} leads back to itself)"
        if e.errno == errno.EACCES:
            return "cannot be reached (permission denied on a folder above it)"
        if e.errno == errno.ENOTDIR:
            return "does not exist (a part of it is a file, not a folder)"
    else:
        return "exists"
    link = _link_at_fault(path)
    if link is not None and os.path.islink(link):
        return f"is a broken symlink ({link} -> {os.readlink(link)}, which does not exist)"
    return "does not exist"


def _link_at_fault(path: Path):
    """The first component of `path` (from the root) that is a symlink which does not resolve."""
    parts = path.absolute().parts
    for i in range(1, len(parts) + 1):
        prefix = Path(*parts[:i])
        if os.path.islink(prefix) and not os.path.exists(prefix):
            return prefix
    return path


def link_problem(path) -> Optional[str]:
    """why_missing's words when a symlink is at fault (a loop, a broken link), else None: the caller's own
    "not found" then stands."""
    why = why_missing(path)
    return why if why.startswith(("is a symlink loop", "is a broken symlink")) else None


def resolved_parent(path) -> Path:
    """`path.resolve().parent`, which raises RuntimeError on a symlink loop; the unresolved parent then."""
    try:
        return Path(path).resolve().parent
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path)).parent
