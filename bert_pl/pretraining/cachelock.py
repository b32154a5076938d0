"""One builder per cache entry, across processes, ranks and nodes that share a filesystem.

`flock`/`fcntl` locks do not hold on every shared filesystem (NFS without lockd, some Lustre and GPFS mounts), so
the lock is a file created with O_CREAT|O_EXCL, which is atomic on local disks and on NFSv3+ and the parallel
filesystems. The holder writes its host, pid and a heartbeat counter into it every `beat` seconds; a waiter that
sees the file unchanged for `stale_after` seconds of its *own* clock (no clock comparison between hosts) takes it
over: the holder died (kill -9, a lost node). Waiting longer than `timeout` ends in one line that names the cache,
the lock file and its holder.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from bert_pl.errors import UserError

log = logging.getLogger(__name__)


class CacheLockTimeout(UserError, TimeoutError):
    pass


def _holder_text(beats: int) -> str:
    return f"host={socket.gethostname()} pid={os.getpid()} beat={beats}\n"


def _read(path: Path) -> Optional[tuple]:
    """What identifies the lock file's current state (its text and mtime), or None when it is gone."""
    try:
        st = path.stat()
        return path.read_text(errors="replace"), st.st_mtime_ns
    except FileNotFoundError:
        return None


def _holder(state: Optional[tuple]) -> str:
    if not state:
        return "nobody"
    fields = dict(kv.split("=", 1) for kv in state[0].split() if "=" in kv)
    return f"{fields.get('host', '?')} pid {fields.get('pid', '?')}" if fields else "an unknown process"


def _ours(state: Optional[tuple]) -> bool:
    return bool(state) and state[0].startswith(f"host={socket.gethostname()} pid={os.getpid()} ")


def _try_create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(_holder_text(0))
    return True


class _Heartbeat(threading.Thread):
    def __init__(self, path: Path, beat: float):
        super().__init__(daemon=True, name="cache-lock-heartbeat")
        self.path, self.beat, self.stop = path, beat, threading.Event()

    def run(self):
        beats = 0
        while not self.stop.wait(self.beat):
            beats += 1
            try:  # rewritten in place: a waiter compares text and mtime, both change
                if not _ours(_read(self.path)):  # taken over (we were thought dead): keep off the new holder's
                    return
                self.path.write_text(_holder_text(beats))
            except OSError:  # taken over (we were thought dead) or the folder went away: nothing to keep alive
                return


def _break_stale(path: Path, seen: tuple) -> None:
    """Remove a lock file whose holder stopped beating, unless it changed since `seen`. A second O_EXCL file
    guards the check-and-remove, so two waiters cannot both remove it (one of them a fresh lock)."""
    guard = path.with_name(path.name + ".takeover")
    if not _try_create(guard):
        return
    try:
        if _read(path) == seen:
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


@contextlib.contextmanager
def cache_lock(path, what: str, timeout: float = 6 * 3600, stale_after: float = 120.0, beat: float = 10.0,
               poll: float = 1.0, ready: Optional[Callable[[], bool]] = None):
    """Hold `path` (a lock file) while building `what`. Yields True when this process holds the lock, False when
    `ready()` (the cache exists) became true while waiting: then there is nothing to build."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    last_state, last_change, said = None, start, 0.0
    guard = path.with_name(path.name + ".takeover")
    guard_state, guard_change = None, start
    while not _try_create(path):
        if ready is not None and ready():
            yield False
            return
        now = time.monotonic()
        state = _read(path)
        if state != last_state:
            last_state, last_change = state, now
        elif state is not None and now - last_change >= stale_after:
            log.warning("%s: the lock %s of %s has not changed for %.0f s; taking it over (its holder stopped)",
                        what, path, _holder(state), now - last_change)
            _break_stale(path, state)
            last_state, last_change = None, now
            continue
        g = _read(guard)  # a takeover guard left by a waiter that died between its two steps
        if g != guard_state:
            guard_state, guard_change = g, now
        elif g is not None and now - guard_change >= stale_after:
            guard.unlink(missing_ok=True)
        if now - start >= timeout:
            raise CacheLockTimeout(
                f"waited {now - start:.0f} s for {_holder(state)} to finish building {what} (lock file {path}); "
                f"if that process is gone and the file still changes, another one holds it: delete {path} only "
                f"when no job builds this cache, or raise data.lock_timeout")
        if now - said >= 60 or not said:
            said = now
            log.info("waiting for %s, which builds %s (lock file %s)", _holder(state), what, path)
        time.sleep(poll)
    heart = _Heartbeat(path, beat)
    heart.start()
    try:
        yield True
    finally:
        heart.stop.set()
        heart.join()
        if _ours(_read(path)):
            path.unlink(missing_ok=True)
