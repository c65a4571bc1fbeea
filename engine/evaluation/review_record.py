"""Which label reviews ran on a dataset: kept in the workspace, read into each run.

A label review (`refit scan --review`, the app's Review labels) writes what it reviewed to
``<workspace>/reviews/<hash of the folder>.json``: the day, the counts, the backbone, and an
8-byte hash of each reviewed image's content with the label it had then (no file name, no
pixel). A run of the same folder records in its summary the newest review and how many of its
own images that review saw with the labels they have in the run, so the report can say whether
the labels were reviewed instead of "not recorded". Nothing here relabels anything.

Every file is read as someone else may have made it: capped, parsed as JSON, each field checked;
anything else counts as no review.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REVIEWS_DIR = "reviews"
#: A review record of a million images is about 11 MB; larger files are not read.
RECORD_LIMIT = 64 * 2**20
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOST = 10**12


def _folder_key(root: str | Path) -> str:
    absolute = os.path.normcase(os.path.abspath(Path(root).expanduser()))
    return hashlib.blake2b(absolute.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def record_path(workspace: str | Path | None, root: str | Path) -> Path:
    """Where the review of the dataset at ``root`` is kept in ``workspace``."""
    from engine.runs import Workspace

    return Workspace(workspace).root / REVIEWS_DIR / f"{_folder_key(root)}.json"


def _items(samples: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """A sorted uint64 hash of each (content digest, class name), for the samples that have both."""
    out = set()
    for s in samples:
        digest, label = getattr(s, "digest", None), getattr(s, "label", None)
        if isinstance(digest, str) and isinstance(label, int) and 0 <= label < len(classes):
            item = f"{digest}\0{classes[label]}".encode("utf-8", "surrogatepass")
            out.add(int.from_bytes(hashlib.blake2b(item, digest_size=8).digest(), "little"))
    return np.array(sorted(out), dtype="<u8")


def save_review(workspace: str | Path | None, index: Any, review: Any) -> Path | None:
    """Keep what ``review`` (a LabelReview of the scan ``index``) looked at; the path written,
    or None when the workspace cannot be written (the review itself still stands)."""
    from engine.files import write_atomic

    path = record_path(workspace, index.root)
    items = _items(index.samples, index.classes)
    record = {
        "v": 1,
        "date": datetime.date.today().isoformat(),
        "reviewed": int(review.reviewed),
        "flagged": int(review.flagged),
        "backbone": str(review.backbone),
        "images": base64.b64encode(items.tobytes()).decode("ascii"),
    }
    try:
        write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record), encoding="utf-8"))
    except OSError:
        return None
    return path


def review_of(
    workspace: str | Path | None, root: str | Path, samples: Sequence[Any], classes: Sequence[str]
) -> dict[str, Any] | None:
    """The newest review of the dataset at ``root`` as a run records it: its ``date``,
    ``reviewed`` and ``flagged`` counts, ``backbone``, and how many of ``samples`` (a run's
    images, ``images``) it saw with the label they have here (``covered``); None when no
    usable record is kept."""
    from engine.safe_read import read_capped

    try:
        record = json.loads(read_capped(record_path(workspace, root), RECORD_LIMIT, what="review"))
        packed = base64.b64decode(record["images"], validate=True)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(record, dict) or len(packed) % 8:
        return None
    kept = checked_review({k: record.get(k) for k in ("date", "backbone", "reviewed", "flagged")})
    if kept is None:
        return None
    reviewed = np.frombuffer(packed, dtype="<u8")
    ours = _items(samples, classes)
    covered = int(np.isin(ours, reviewed, assume_unique=False).sum())
    return {**kept, "covered": covered, "images": len(samples)}


def checked_review(record: Any) -> dict[str, Any] | None:
    """The fields of a review record (a review file's, or a run summary's ``label_review``)
    when each is what it should be; None otherwise."""
    if not isinstance(record, dict):
        return None
    date, backbone = record.get("date"), record.get("backbone")
    if not isinstance(date, str) or not _DAY.fullmatch(date):
        return None
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        return None
    counts = {}
    for key in ("reviewed", "flagged", "covered", "images"):
        if key not in record and key in ("covered", "images"):
            continue  # a review file's fields: the run adds these two
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _MOST:
            return None
        counts[key] = value
    if not isinstance(backbone, str):
        return None
    shown = "".join(c for c in backbone if c.isprintable())[:120]
    return {"date": date, "backbone": shown, **counts}
