"""Reading one dataset file safely: :mod:`engine.safe_read` with the dataset's size caps and its
problem kinds.

Every read of a dataset file (scan, training, preview) goes through :func:`read_capped`: regular
files only, never blocking, never past a size cap (see :mod:`engine.safe_read` for why).
"""

from __future__ import annotations

from pathlib import Path

from engine import safe_read
from engine.data.problems import ProblemKind
from engine.safe_read import MIB, size_text, special_file_name

__all__ = [
    "IMAGE_LIMIT",
    "MIB",
    "TABLE_LIMIT",
    "TEXT_FILE_LIMIT",
    "FileReadError",
    "read_capped",
    "read_head",
    "size_text",
    "special_file_name",
]

IMAGE_LIMIT = 256 * MIB  # far above any photo or scan Pillow would decode under its pixel limit
TEXT_FILE_LIMIT = 16 * MIB  # one example; a model reads a few thousand tokens of it at most
TABLE_LIMIT = 512 * MIB  # a whole table of texts, parsed in memory

_KINDS = {
    safe_read.NOT_REGULAR: ProblemKind.NOT_REGULAR,
    safe_read.TOO_BIG: ProblemKind.FILE_TOO_BIG,
    safe_read.LINK_LOOP: ProblemKind.LINK_LOOP,
}


class FileReadError(OSError):
    """A dataset file that is not read; ``reason`` completes "<file> ..." in one sentence."""

    def __init__(self, kind: ProblemKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = ProblemKind(kind)
        self.reason = reason

    def __reduce__(self) -> tuple:
        # DataLoader workers pickle exceptions back to the main process.
        return (type(self), (self.kind, self.reason))


def read_head(path: str | Path, n: int) -> bytes:
    """The first ``n`` bytes of the regular file at ``path`` (for previews); FileReadError as
    :func:`read_capped`."""
    return read_capped(path, n, what="file", head=True)


def read_capped(path: str | Path, limit: int, *, what: str = "file", head: bool = False) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``limit`` of them;
    FileReadError with the problem kind and the reason :mod:`engine.safe_read` gives."""
    try:
        return safe_read.read_capped(path, limit, what=what, head=head)
    except safe_read.NotReadableError as exc:
        kind = _KINDS.get(exc.code, ProblemKind.UNREADABLE)
        raise FileReadError(kind, exc.reason) from exc
