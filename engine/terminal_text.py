"""Text from files and folder names made safe to print to a terminal.

A run folder, class folder, CSV label or a crafted refit_model.json can hold escape sequences
(that set the window title or clear the screen), a newline (that forges a row of a listing) or
bidi overrides (that show text in another order than it is). :func:`terminal_safe` shows each
such character as a visible escape (``\\x1b``, ``\\n``, ``\\u202e``) and keeps every letter.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

# Bidi embeddings, overrides and isolates, marks, and the Unicode line/paragraph separators.
_INVISIBLE = frozenset(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0x2028, 0x2029]
)
_LAYOUT = frozenset("\n\t\r")  # what the CLI itself prints between fields and rows


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}")
    if code in _INVISIBLE:
        return f"\\u{code:04x}"
    return ch


def _unsafe(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or code in _INVISIBLE


def terminal_safe(text: object) -> str:
    """``str(text)`` with control characters (C0 and C1, ESC, DEL, newlines, tabs) and bidi
    controls shown as escapes; for one field of a line the CLI prints."""
    text = str(text)
    if not any(_unsafe(ch) for ch in text):
        return text
    return "".join(_escape(ch) for ch in text)


class _SafeStream:
    """A stream that escapes what :func:`terminal_safe` escapes, except newlines, tabs and
    carriage returns (the layout the CLI and its progress bar write). Everything else
    (encoding, fileno, ...) is the wrapped stream's."""

    def __init__(self, raw: TextIO) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        if any(_unsafe(ch) and ch not in _LAYOUT for ch in text):
            text = "".join(ch if ch in _LAYOUT else _escape(ch) for ch in text)
        return self._raw.write(text)

    def flush(self) -> None:
        self._raw.flush()

    def isatty(self) -> bool:
        return self._raw.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@contextmanager
def safe_terminal() -> Iterator[None]:
    """While inside, nothing printed to stdout or stderr can send a terminal escape sequence:
    a net under the CLI, whose name-bearing fields also go through :func:`terminal_safe`."""
    before = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SafeStream(sys.stdout), _SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = before
