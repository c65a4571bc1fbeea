"""Reading one dataset file safely: regular files only, never blocking, never past a size cap.

A dataset folder may hold anything: a named pipe called ``pipe.jpg`` (opening it for reading
waits forever for a writer), a link to ``/dev/zero`` called ``zero.jpg`` (reading it never
ends), or a 40 GB file. Every read of a dataset file (scan, training, preview) goes through
:func:`read_capped`, which checks the type with ``stat`` first, opens with ``O_NONBLOCK`` (so a
file swapped for a pipe between the check and the open cannot hang either), checks the type of
what was opened again with ``fstat``, and reads at most ``limit + 1`` bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from engine.data.problems import ProblemKind

MIB = 1024 * 1024
IMAGE_LIMIT = 256 * MIB  # far above any photo or scan Pillow would decode under its pixel limit
TEXT_FILE_LIMIT = 16 * MIB  # one example; a model reads a few thousand tokens of it at most
TABLE_LIMIT = 512 * MIB  # a whole table of texts, parsed in memory

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)
_CHUNK = 4 * MIB


class FileReadError(OSError):
    """A dataset file that is not read; ``reason`` completes "<file> ..." in one sentence."""

    def __init__(self, kind: ProblemKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = ProblemKind(kind)
        self.reason = reason

    def __reduce__(self) -> tuple:
        # DataLoader workers pickle exceptions back to the main process.
        return (type(self), (self.kind, self.reason))


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


def size_text(n: int) -> str:
    """``256 MiB``, ``1.5 GiB``: a size a person reads at a glance."""
    if n >= 1024 * MIB:
        return f"{n / (1024 * MIB):.3g} GiB"
    if n >= MIB:
        return f"{n / MIB:.3g} MiB"
    return f"{n / 1024:.3g} KiB" if n >= 1024 else f"{n} bytes"


def read_head(path: str | Path, n: int) -> bytes:
    """The first ``n`` bytes of the regular file at ``path`` (for previews); FileReadError as
    :func:`read_capped`."""
    return read_capped(path, n, what="file", head=True)


def read_capped(path: str | Path, limit: int, *, what: str = "file", head: bool = False) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``limit`` of them.

    Raises FileReadError (an OSError) with a reason such as "is a named pipe (FIFO), not a
    regular file" or "is larger than 256 MiB, the most read for one image". With ``head`` a
    longer file is not an error: its first ``limit`` bytes are returned.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise _os_error(exc) from exc
    _check_type(mode)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(exc) from exc
    try:
        st = os.fstat(fd)
        _check_type(st.st_mode)  # what was opened, not what was looked at a moment before
        too_big = FileReadError(
            ProblemKind.FILE_TOO_BIG,
            f"is larger than {size_text(limit)}, the most read for one {what}",
        )
        if st.st_size > limit and not head:
            raise too_big
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
            raise too_big
        return b"".join(chunks)
    except FileReadError:
        raise
    except OSError as exc:
        raise _os_error(exc) from exc
    finally:
        os.close(fd)


def _check_type(mode: int) -> None:
    name = special_file_name(mode)
    if name is None:
        return
    if name == "a folder":
        raise FileReadError(ProblemKind.UNREADABLE, "cannot be read (it is a folder)")
    raise FileReadError(
        ProblemKind.NOT_REGULAR, f"is {name}, not a regular file, so it is not opened"
    )


def _os_error(exc: OSError | ValueError) -> FileReadError:
    if isinstance(exc, FileReadError):
        return exc
    if not isinstance(exc, OSError):
        return FileReadError(ProblemKind.UNREADABLE, f"cannot be read ({exc})")
    if isinstance(exc, PermissionError):
        return FileReadError(ProblemKind.UNREADABLE, "cannot be read (permission denied)")
    if isinstance(exc, FileNotFoundError):
        return FileReadError(
            ProblemKind.UNREADABLE, "cannot be read (the file is gone or a broken link)"
        )
    if isinstance(exc, IsADirectoryError):
        return FileReadError(ProblemKind.UNREADABLE, "cannot be read (it is a folder)")
    if exc.errno == errno.ELOOP:
        return FileReadError(ProblemKind.LINK_LOOP, "is a link in a loop of links")
    return FileReadError(ProblemKind.UNREADABLE, f"cannot be read ({exc.strerror or exc})")
