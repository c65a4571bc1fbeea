"""The record of a checked ONNX export: which bytes passed the check against torch, against which
weights, and this user's signature of it (engine/frozen/cache.py decides when to check).

Free of torch: `refit train`'s prefetching child reads these records to find the export of its
backbone before the run has imported torch (engine/data/prefetch.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from engine.files import read_json_object, write_json_atomic
from engine.secrets import user_key

KEY_NAME = "onnx-check.key"
SUFFIX = ".checked.json"


def record_path(path: Path) -> Path:
    """Where the record of the export at ``path`` (``<key>.onnx``) lies."""
    return path.with_suffix(SUFFIX)


def export_path(record: Path) -> Path:
    """The export a record at ``record`` (``<key>.checked.json``) is about."""
    return record.with_name(record.name[: -len(SUFFIX)] + ".onnx")


def write_record(path: Path, record: dict[str, Any]) -> bool:
    """Sign ``record`` and write it next to the export at ``path``; False when there is no key
    (nothing is trusted later without one: every session checks again)."""
    signature = _sign(record)
    if not signature:
        return False
    write_json_atomic(record_path(path), {**record, "signature": signature})
    return True


def signed_record(path: Path, *, create_key: bool = True) -> dict[str, Any] | None:
    """The record of the export at ``path`` when this user's key signed it, else None.
    ``create_key`` False: a missing key is not made (a reader that only looks)."""
    try:
        record = read_json_object(record_path(path))
    except (OSError, ValueError):
        return None
    signature = record.pop("signature", None)
    expected = _sign(record, create_key=create_key)
    if not expected or not isinstance(signature, str):
        return None
    return record if hmac.compare_digest(expected, signature) else None


def recorded_difference(record: dict[str, Any] | None, digest: str, weights: str) -> float | None:
    """The difference the check found, when ``record`` (a :func:`signed_record`) is about these
    bytes (``digest``, SHA-256) and these ``weights`` (a fingerprint of the torch state)."""
    if record is None:
        return None
    difference = record.get("difference")
    same = record.get("sha256") == digest and record.get("weights") == weights
    if not same or not isinstance(difference, int | float) or isinstance(difference, bool):
        return None
    return float(difference)


def _sign(record: dict[str, Any], *, create_key: bool = True) -> str:
    """HMAC-SHA256 of ``record`` with this user's key; "" when there is no key and none can be
    made (a read-only home folder), or none exists and ``create_key`` is False."""
    key = _user_key(create=create_key)
    if key is None:
        return ""
    blob = json.dumps(record, sort_keys=True).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _user_key(*, create: bool = True) -> bytes | None:
    return user_key(KEY_NAME, create=create)
