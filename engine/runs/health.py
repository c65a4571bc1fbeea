"""Which of a run's larger files are damaged, in sentences, for the run list.

splits.json, metrics.jsonl and the saved evaluations can be megabytes, so each file's verdict
is kept by its size and modification time: listing the workspace again reads only what changed.
Stays light: no torch, no engine.evaluation (the run list is shown at startup).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from engine.runs.errors import REMEDY, RunFileError


class RunFiles(Protocol):
    """What the checks read of a run folder (a RunDir): its paths and two of its readers."""

    @property
    def path(self) -> Path: ...

    @property
    def splits_path(self) -> Path: ...

    @property
    def metrics_path(self) -> Path: ...

    def splits(self) -> dict[str, Any]: ...

    def metrics_lines(self) -> Any: ...


_MAX_CACHED = 4096
_cache: dict[tuple[str, int, int], str] = {}
_cache_lock = threading.Lock()  # the app lists runs from worker threads too
_META_LIMIT = 256 * 1024 * 1024  # the meta of a million-example split is ~100 MB


def cached_problems(run: RunFiles) -> tuple[list[str], list[str]]:
    """(problems that make the run "damaged", notes that leave it usable) about splits.json,
    metrics.jsonl and evaluation/*; [] for files that are fine or missing."""
    damaged = [p for p in [splits_problem(run)] if p]
    notes = [_checked(run.metrics_path, lambda: _metrics_problem(run))]
    evaluation = run.path / "evaluation"
    for path in _files(evaluation, "*.json"):
        notes.append(_checked(path, partial(_evaluation_problem, path)))
    for path in _files(evaluation, "*.npz"):
        notes.append(_checked(path, partial(_predictions_problem, path)))
    return damaged, [n for n in notes if n]


def splits_problem(run: RunFiles) -> str:
    """ "" when splits.json is fine or missing, else the sentence naming it."""
    return _checked(run.splits_path, lambda: _splits_problem(run))


def _checked(path: Path, check: Callable[[], str]) -> str:
    try:
        st = path.stat()
    except OSError:
        return ""  # missing: not a problem of this file
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    verdict = check()
    with _cache_lock:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache[key] = verdict
    return verdict


def _splits_problem(run: RunFiles) -> str:
    try:
        data = run.splits()
    except RunFileError as exc:
        return str(exc)
    if not _split_shaped(data):
        return f"The run file {run.splits_path} does not hold the run's split; {REMEDY}."
    return ""


def _split_shaped(data: dict[str, Any]) -> bool:
    classes = data.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return False
    rows = [data.get(split, []) for split in ("train", "val", "test")]
    return all(isinstance(r, list) and all(isinstance(x, list) for x in r) for r in rows)


def _metrics_problem(run: RunFiles) -> str:
    lines = run.metrics_lines()
    if lines.problem:
        return f"The run file {run.metrics_path} {lines.problem}; the curves are not shown."
    skipped = lines.unreadable
    if not skipped:
        return ""
    lines_text = "1 line" if skipped == 1 else f"{skipped} lines"
    verb = "is" if skipped == 1 else "are"
    return (
        f"{lines_text} of {run.metrics_path} cannot be read and {verb} skipped "
        f"(the curves miss {'it' if skipped == 1 else 'them'}); the rest of the run is intact."
    )


def _evaluation_problem(path: Path) -> str:
    from engine.files import UnreadableFileError, read_json_object

    try:
        read_json_object(path)
    except (OSError, UnreadableFileError) as exc:
        return f"The saved evaluation {path} {exc}; evaluate the run again to rewrite it."
    return ""


def _predictions_problem(path: Path) -> str:
    """The archive's members and the small meta member; the arrays are checked when read."""
    import json

    from engine.npz_read import NpzError, read_npz

    try:
        meta_bytes = read_npz(path, ["meta"], require=["labels", "probs"], member_limit=_META_LIMIT)
        meta = json.loads(meta_bytes["meta"].tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise NpzError("holds a meta that is not a JSON object")
    except NpzError as exc:
        return f"The saved predictions {path} {exc}; evaluate the run again."
    except (ValueError, RecursionError):  # meta not UTF-8 or not JSON
        return f"The saved predictions {path} hold a meta that is not JSON; evaluate the run again."
    return ""


def _files(folder: Path, pattern: str) -> list[Path]:
    try:
        # Not is_file(): a pipe or a device there is named by the safe reader, not passed over.
        return sorted(p for p in folder.glob(pattern) if not p.is_dir())
    except OSError:
        return []
