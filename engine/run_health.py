"""Which of a run's larger files are damaged, in sentences, for the run list.

splits.json, metrics.jsonl and the saved evaluations can be megabytes, so each file's verdict
is kept by its size and modification time: listing the workspace again reads only what changed.
Stays light: no torch, no engine.evaluation (the run list is shown at startup).
"""

from __future__ import annotations

import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.runs import RunDir

_MAX_CACHED = 4096
_cache: dict[tuple[str, int, int], str] = {}
_cache_lock = threading.Lock()  # the app lists runs from worker threads too
_NPZ_MEMBERS = {"labels.npy", "probs.npy", "meta.npy"}


def cached_problems(run: RunDir) -> tuple[list[str], list[str]]:
    """(problems that make the run "damaged", notes that leave it usable) about splits.json,
    metrics.jsonl and evaluation/*; [] for files that are fine or missing."""
    damaged = [p for p in [splits_problem(run)] if p]
    notes = [_checked(run.metrics_path, lambda: _metrics_problem(run))]
    evaluation = run.path / "evaluation"
    for path in _files(evaluation, "*.json"):
        notes.append(_checked(path, lambda p=path: _evaluation_problem(p)))
    for path in _files(evaluation, "*.npz"):
        notes.append(_checked(path, lambda p=path: _predictions_problem(p)))
    return damaged, [n for n in notes if n]


def splits_problem(run: RunDir) -> str:
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


def _splits_problem(run: RunDir) -> str:
    from engine.runs import REMEDY, RunFileError

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


def _metrics_problem(run: RunDir) -> str:
    skipped = run.metrics_lines().unreadable
    if not skipped:
        return ""
    lines = "1 line" if skipped == 1 else f"{skipped} lines"
    return (
        f"{lines} of {run.metrics_path} cannot be read and are skipped (the curves miss them); "
        "resuming the run rewrites the file without them."
    )


def _evaluation_problem(path: Path) -> str:
    from engine.files import UnreadableFileError, read_json_object

    try:
        read_json_object(path)
    except (OSError, UnreadableFileError) as exc:
        return f"The saved evaluation {path} {exc}; evaluate the run again to rewrite it."
    return ""


def _predictions_problem(path: Path) -> str:
    """The zip directory and the small meta member; the arrays are checked when read."""
    import json

    import numpy as np

    try:
        with zipfile.ZipFile(path) as archive:
            missing = _NPZ_MEMBERS - set(archive.namelist())
        if not missing:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("its meta is not a JSON object")
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, KeyError, zlib.error) as exc:
        reason = getattr(exc, "strerror", None) or "it is not a whole .npz archive"
        return f"The saved predictions {path} cannot be read ({reason}); evaluate the run again."
    if missing:
        return f"The saved predictions {path} lack {', '.join(sorted(missing))}; evaluate again."
    return ""


def _files(folder: Path, pattern: str) -> list[Path]:
    try:
        return sorted(p for p in folder.glob(pattern) if p.is_file())
    except OSError:
        return []
