"""Atomic file writes: every file the engine writes appears whole or not at all."""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` to write a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    mode = stat.S_IMODE(tmp.stat().st_mode)  # what the umask gives a new file
    try:
        writer(tmp)
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer that made its own file
            os.chmod(tmp, mode)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _new_temp_file(path: Path) -> Path:
    """An empty, new sibling of ``path``. Created with mode 0o666 so the umask decides the final
    mode, as for any file a program creates (mkstemp would make every file 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp


def make_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new, empty folder in ``parent`` whose mode the umask decides (mkdtemp makes 0o700)."""
    parent = Path(parent)
    while True:
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            folder.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return folder


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def append_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Append whole JSON lines; a reader skips a torn last line after a crash."""
    if not records:
        return
    data = "".join(json.dumps(r, default=str) + "\n" for r in records).encode("utf-8")
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn or blank line instead of failing."""
    out: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
