"""Atomic file writes (every file the engine writes appears whole or not at all), and readers
of JSON files that survive any bytes."""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.safe_read import TOO_BIG, NotReadableError, open_capped, read_capped, size_text


def file_stamp(path: str | Path) -> str:
    """ "<size>:<mtime_ns>" of ``path``: changes whenever the file is rewritten; "" when it
    cannot be looked at."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def write_atomic(path: str | Path, writer: Callable[[Path], object]) -> Path:
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


def jsonl_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    """``records`` as JSON lines (UTF-8), one object a line."""
    return "".join(json.dumps(r, default=str) + "\n" for r in records).encode("utf-8")


def append_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Append whole JSON lines; a reader skips a torn last line after a crash."""
    if not records:
        return
    data = jsonl_bytes(records)
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()


class UnreadableFileError(ValueError):
    """A file whose bytes are not what its reader needs; the message says what is wrong with it
    (e.g. "is not valid JSON (line 3, column 1)"), without naming the file or a remedy."""


MAX_JSON_BYTES = 512 * 1024 * 1024  # far above any file the engine writes; a bound on memory


def read_json_object(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in ``path``. FileNotFoundError when it is missing; UnreadableFileError for
    anything else that is not one (a pipe or device, too big, empty, not UTF-8, not JSON, not an
    object) or an OSError. Reads only a regular file, never blocking (engine.safe_read)."""
    try:
        data = read_capped(path, max_bytes)
    except FileNotFoundError:
        raise
    except NotReadableError as exc:
        if exc.code == TOO_BIG:
            big = f"is larger than {size_text(max_bytes)}, more than it can be"
            raise UnreadableFileError(big) from exc
        raise UnreadableFileError(exc.reason) from exc
    if not data.strip():
        raise UnreadableFileError("is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"is not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFileError(
            f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError as exc:  # "[[[[..." nested deeper than the parser's stack
        raise UnreadableFileError("is not valid JSON (nested too deeply)") from exc
    if not isinstance(value, dict):
        raise UnreadableFileError(f"holds a JSON {_json_kind(value)}, not an object")
    return value


@dataclass(frozen=True)
class JsonLines:
    """The readable records of a JSON-lines file and how many lines were not readable."""

    records: list[dict[str, Any]]
    unreadable: int = 0
    problem: str = ""  # why the whole file is not read ("is a named pipe (FIFO), ..."), if so


MAX_JSONL_LINE = 16 * 1024 * 1024  # a metrics line is ~200 bytes; longer is garbage
MAX_JSONL_BYTES = 2 * 1024 * 1024 * 1024  # ten million metrics lines; a bound on time


def scan_jsonl(path: str | Path) -> JsonLines:
    """Every line of ``path`` that is a JSON object; other lines (torn, not UTF-8, not JSON, not
    an object, absurdly long) are counted, never fatal. A missing file has no records; one that
    is not a regular file or is too big has none and says why in ``problem``."""
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        # Bytes, so no line can fail decoding.
        fh = open_capped(path, MAX_JSONL_BYTES, what="file of JSON lines")
    except FileNotFoundError:
        return JsonLines(records)
    except NotReadableError as exc:
        return JsonLines(records, problem=exc.reason)
    with fh:
        while line := fh.readline(MAX_JSONL_LINE):
            if len(line) >= MAX_JSONL_LINE and not line.endswith(b"\n"):
                bad += 1
                while (rest := fh.readline(MAX_JSONL_LINE)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of an over-long line without holding it
                continue
            if not line.strip():
                continue
            record = _json_line(line)
            if record is None:
                bad += 1
            else:
                records.append(record)
    return JsonLines(records, bad)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, skipping torn, blank or unreadable lines."""
    return scan_jsonl(path).records


def _json_line(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _json_kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "number")
