"""Reading any file the app did not just write itself: regular files only, never blocking,
never past a size cap.

A run folder, an export folder or a dataset may hold anything: a named pipe called
``state.json`` (opening it for reading waits forever for a writer), a link to ``/dev/zero``
called ``manifest.json`` (reading it never ends), or a 40 GB file. Every such read goes through
this module. :func:`read_capped` checks the type with ``stat`` first, opens with ``O_NONBLOCK``
(so a file swapped for a pipe between the check and the open cannot hang either), checks what
was opened again with ``fstat``, refuses from the size ``fstat`` reports before reading, and
reads at most ``limit + 1`` bytes. :func:`open_capped` gives the same checks as an open file
(``np.load`` and ``torch.load`` read file objects); :func:`check_capped` serves libraries that
only take a path (safetensors).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

MIB = 1024 * 1024
GIB = 1024 * MIB

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)
_CHUNK = 4 * MIB
WEIGHTS_LIMIT = 64 * GIB  # a checkpoint or weights file; far above any model trained here
IS_MISSING = "is missing"

# Why a file is not read (NotReadableError.code).
MISSING = "missing"
NOT_REGULAR = "not_regular"
TOO_BIG = "too_big"
LINK_LOOP = "link_loop"
UNREADABLE = "unreadable"


class NotReadableError(OSError):
    """A file that is not read; ``reason`` completes "<file> ..." in one sentence (e.g. "is a
    named pipe (FIFO), not a regular file, so it is not opened") and ``code`` says which kind."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple:
        # DataLoader workers pickle exceptions back to the main process.
        return (type(self), (self.code, self.reason))


class MissingFileError(NotReadableError, FileNotFoundError):
    """The file is not there (or is a broken link): still a FileNotFoundError for callers for
    whom a missing file is normal."""


def special_file_name(mode: int) -> str | None:
    """ "a named pipe", "a device", ... for a mode that is not a regular file or folder."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def kind_of(path: str | Path) -> str:
    """ "a file", "a named pipe (FIFO)", "a device", "a folder"...: what ``path`` is, for a
    sentence ("/dev/null is a device, not a folder")."""
    try:
        return special_file_name(os.stat(path).st_mode) or "a file"
    except (OSError, ValueError):
        return "a broken link"


def size_text(n: int) -> str:
    """``256 MiB``, ``1.5 GiB``: a size a person reads at a glance."""
    if n >= GIB:
        return f"{n / GIB:.3g} GiB"
    if n >= MIB:
        return f"{n / MIB:.3g} MiB"
    return f"{n / 1024:.3g} KiB" if n >= 1024 else f"{n} bytes"


def check_capped(path: str | Path, limit: int, *, what: str = "file") -> os.stat_result:
    """The stat of ``path`` when it is a regular file (links followed) of at most ``limit``
    bytes; NotReadableError otherwise. For libraries that open the path themselves."""
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise _os_error(exc) from exc
    _check_type(st.st_mode)
    _check_size(st.st_size, limit, what)
    return st


def file_problem(path: str | Path, limit: int, *, what: str = "file") -> str:
    """ "" when ``path`` is a regular file of at most ``limit`` bytes, else what completes
    "<file> ...": IS_MISSING, "is a named pipe (FIFO), not a regular file, ...", ..."""
    try:
        check_capped(path, limit, what=what)
    except MissingFileError:
        return IS_MISSING
    except NotReadableError as exc:
        return exc.reason
    return ""


def open_capped(path: str | Path, limit: int, *, what: str = "file") -> BinaryIO:
    """The regular file at ``path`` opened for reading (the caller closes it; use ``with``), once
    ``fstat`` shows it is a regular file of at most ``limit`` bytes; NotReadableError otherwise."""
    return os.fdopen(_open_checked(path, limit, what, head=False), "rb")


def read_capped(path: str | Path, limit: int, *, what: str = "file", head: bool = False) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``limit`` of them.

    Raises NotReadableError (an OSError) with a reason such as "is a named pipe (FIFO), not a
    regular file, so it is not opened" or "is larger than 256 MiB, the most read for one image".
    With ``head`` a longer file is not an error: its first ``limit`` bytes are returned.
    """
    fd = _open_checked(path, limit, what, head=head)
    try:
        chunks: list[bytes] = []
        total = 0
        cap = limit if head else limit + 1
        while total < cap:
            chunk = os.read(fd, min(_CHUNK, cap - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # the file grew, or lies about its size
            _check_size(total, limit, what)
        return b"".join(chunks)
    except NotReadableError:
        raise
    except OSError as exc:
        raise _os_error(exc) from exc
    finally:
        os.close(fd)


def _open_checked(path: str | Path, limit: int, what: str, *, head: bool) -> int:
    """A file descriptor of the regular file at ``path``, its size checked unless ``head``."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        raise _os_error(exc) from exc
    _check_type(mode)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(exc) from exc
    try:
        st = os.fstat(fd)
        _check_type(st.st_mode)  # what was opened, not what was looked at a moment before
        if not head:
            _check_size(st.st_size, limit, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise NotReadableError(
            TOO_BIG, f"is larger than {size_text(limit)}, the most read for one {what}"
        )


def _check_type(mode: int) -> None:
    name = special_file_name(mode)
    if name is None:
        return
    if name == "a folder":
        raise NotReadableError(UNREADABLE, "cannot be read (it is a folder)")
    raise NotReadableError(NOT_REGULAR, f"is {name}, not a regular file, so it is not opened")


def _os_error(exc: OSError | ValueError) -> NotReadableError:
    if isinstance(exc, NotReadableError):
        return exc
    if not isinstance(exc, OSError):
        return NotReadableError(UNREADABLE, f"cannot be read ({exc})")
    if isinstance(exc, PermissionError):
        return NotReadableError(UNREADABLE, "cannot be read (permission denied)")
    if isinstance(exc, FileNotFoundError):
        return MissingFileError(MISSING, "cannot be read (the file is gone or a broken link)")
    if isinstance(exc, IsADirectoryError):
        return NotReadableError(UNREADABLE, "cannot be read (it is a folder)")
    if exc.errno == errno.ELOOP:
        return NotReadableError(LINK_LOOP, "is a link in a loop of links")
    return NotReadableError(UNREADABLE, f"cannot be read ({exc.strerror or exc})")
