"""Who trains a run right now: a lock file in the run folder naming the owning process.

The file holds the owner's PID, the time that process started and the host. The owner is alive
while a process with that PID exists and started at that time (a reused PID started later); a
lock whose owner is gone is stale and the next trainer takes it over. On another host the owner
cannot be checked, so its lock is respected.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

LOCK_NAME = "run.lock"
_LATEST_START = 253402300799  # 9999-12-31 23:59:59 UTC, the last second datetime shows
_START_TOLERANCE_S = 1.0  # start times are read from the OS in clock ticks; allow rounding


class RunBusyError(RuntimeError):
    """The run is being trained by another live process (or by this one already)."""


@dataclass(frozen=True)
class LockOwner:
    """The process that holds a run lock."""

    pid: int
    started: float  # process start, seconds since the epoch
    host: str

    def describe(self) -> str:
        try:
            since = datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M")
        except (OverflowError, OSError, ValueError):  # a start time no clock shows
            since = "at an unknown time"
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"process {self.pid}{where} (started {since})"


def this_process() -> LockOwner:
    """The LockOwner describing the current process."""
    pid = os.getpid()
    return LockOwner(pid=pid, started=process_started(pid) or 0.0, host=socket.gethostname())


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when there is none."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.ZombieProcess:
        return None  # it has exited; only its exit status is left
    except psutil.AccessDenied:
        return -1.0  # it exists but hides its start: treat as alive (see is_alive)
    except (psutil.NoSuchProcess, ValueError, OverflowError):
        return None


def is_alive(owner: LockOwner) -> bool:
    """Whether ``owner`` still runs: same PID, same start time. Another host's: assumed alive."""
    if owner.host != socket.gethostname():
        return True
    started = process_started(owner.pid)
    if started is None:
        return False
    return started < 0 or abs(started - owner.started) <= _START_TOLERANCE_S


def read_owner(lock: Path) -> LockOwner | None:
    """The owner recorded in ``lock``; None when there is no lock or it cannot be read (not a
    regular file, not JSON, or fields no process has: a PID out of range, a start time that is
    not a finite time in the years 1970 to 9999, a host that is not a short name)."""
    from engine.files import UnreadableFileError, read_json_object

    try:
        data = read_json_object(lock, max_bytes=64 * 1024)
    except (OSError, UnreadableFileError):
        return None
    pid, started, host = data.get("pid"), data.get("started"), data.get("host")
    if not (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**32):
        return None
    if not (
        isinstance(started, int | float)
        and not isinstance(started, bool)
        and 0 <= started < _LATEST_START  # False for NaN too
    ):
        return None
    if not (isinstance(host, str) and 0 < len(host) <= 255):
        return None
    return LockOwner(pid=pid, started=float(started), host=host)


def live_owner(lock: Path) -> LockOwner | None:
    """The owner of ``lock`` when it is alive; None for no lock, a stale or an unreadable one."""
    owner = read_owner(lock)
    return owner if owner is not None and is_alive(owner) else None


@contextmanager
def hold(lock: Path, run_name: str) -> Iterator[LockOwner]:
    """Hold ``lock`` while the block runs; RunBusyError (one sentence) when it is taken."""
    me = acquire(lock, run_name)
    try:
        yield me
    finally:
        release(lock, me)


def acquire(lock: Path, run_name: str) -> LockOwner:
    """Take ``lock`` for this process, taking over a stale one; RunBusyError when it is held."""
    me = this_process()
    for _ in range(5):
        if _create(lock, me):
            return me
        owner = read_owner(lock)
        if owner is not None and is_alive(owner):
            raise RunBusyError(
                f"The run {run_name} is already being trained by {owner.describe()}; wait for it "
                f"to end or stop it there (if it no longer runs, delete {lock} and try again)."
            )
        _remove_stale(lock, owner)
    raise RunBusyError(
        f"Another process keeps taking the lock {lock} of the run {run_name}; try again."
    )


def release(lock: Path, me: LockOwner) -> None:
    """Remove ``lock`` if this process still owns it (a lock left behind is stale anyway)."""
    if read_owner(lock) == me:
        with suppress(OSError):
            lock.unlink(missing_ok=True)


def _create(lock: Path, me: LockOwner) -> bool:
    """Create ``lock`` holding ``me``, whole or not at all; False when it exists already."""
    data = (json.dumps(asdict(me)) + "\n").encode("utf-8")
    tmp = lock.with_name(f".{lock.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    try:
        os.link(tmp, lock)  # atomic and exclusive: a reader never sees a half-written lock
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create instead
        return _create_exclusive(lock, data)
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(lock: Path, data: bytes) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return True


def _remove_stale(lock: Path, stale: LockOwner | None) -> None:
    """Move the stale lock aside and delete it; if what was moved turns out to be a fresh lock
    (another process replaced the stale one meanwhile), put it back."""
    aside = lock.with_name(f".{lock.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # someone else removed it; try to take it again
    moved = read_owner(aside)
    if moved is not None and moved != stale and is_alive(moved):
        with suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)
