"""The ONNX cache: an export is made once, checked against torch on its first use, and trusted
afterwards only while its bytes are the ones that were checked.

Next to ``<key>.onnx`` lies ``<key>.checked.json``: the SHA-256 of the file that passed the check,
a fingerprint of the torch weights it was checked against, the difference it found, and an HMAC
of the three with a random key kept outside every workspace (next to the allow-list of
engine/trust.py). A later session whose file and weights have those digests, and whose record
this user's key signed, skips the check (torch's first forward pass alone costs about a second
on a CPU); anything else (a replaced, damaged or planted file, a forged or copied record, other
weights under the same key) is checked again, and the file removed when it fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.files import read_json_object, write_bytes_atomic, write_json_atomic
from engine.frozen.onnx import ONNX_LIMIT, OnnxSession, OnnxUnavailable
from engine.safe_read import NotReadableError, read_capped


@dataclass(frozen=True)
class Prepared:
    """A checked session, how it was made and what its check found."""

    session: OnnxSession
    exported: str  # the exporter that made the file in this session, or "" for a cached file
    difference: float  # largest difference from torch, relative to the output scale
    checked_now: bool  # False: the check recorded for these exact bytes was reused


def record_path(path: Path) -> Path:
    return path.with_suffix(".checked.json")


def prepare(
    path: Path,
    *,
    make: Callable[[Path], str],
    check: Callable[[OnnxSession], float],
    threads: int,
    weights: str,
) -> Prepared:
    """The session of the export at ``path``: made with ``make(path)`` (returns the exporter's
    name) when missing, checked with ``check(session)`` (returns the difference, raises
    OnnxUnavailable) unless these bytes passed before against the same ``weights``
    (:func:`fingerprint`). On any failure both files are removed and
    OnnxUnavailable (or OSError) is raised."""
    try:
        exported = ""
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            record_path(path).unlink(missing_ok=True)
            exported = _made(make, path)
        try:
            data = read_capped(path, ONNX_LIMIT, what="ONNX model")
        except NotReadableError as exc:  # its reason completes "<file> ..."
            raise OnnxUnavailable(f"{path} {exc.reason}") from None
        digest = hashlib.sha256(data).hexdigest()
        session = OnnxSession(path, threads=threads, data=data)
        recorded = _recorded_difference(path, digest, weights)
        if recorded is not None:
            return Prepared(session, exported, recorded, checked_now=False)
        difference = check(session)
        record = {"sha256": digest, "weights": weights, "difference": difference}
        signature = _sign(record)
        if signature:  # without a key nothing is trusted later: every session checks
            write_json_atomic(record_path(path), {**record, "signature": signature})
        return Prepared(session, exported, difference, checked_now=True)
    except (OnnxUnavailable, OSError):
        path.unlink(missing_ok=True)  # never kept when it failed: exported again next time
        record_path(path).unlink(missing_ok=True)
        raise


def fingerprint(module: torch.nn.Module) -> str:
    """A digest of every tensor of ``module``'s state (names, shapes and values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())  # no copy
    return h.hexdigest()


def _made(make: Callable[[Path], str], path: Path) -> str:
    try:
        return make(path)
    except (OnnxUnavailable, OSError):
        raise
    except Exception as exc:  # an exporter's own error types
        text = str(exc).strip().splitlines()
        raise OnnxUnavailable(
            f"torch could not export it to ONNX ({text[0] if text else type(exc).__name__})"
        ) from exc


def _recorded_difference(path: Path, digest: str, weights: str) -> float | None:
    try:
        record = read_json_object(record_path(path))
    except (OSError, ValueError):
        return None
    difference = record.get("difference")
    same = record.get("sha256") == digest and record.get("weights") == weights
    if not same or not isinstance(difference, int | float):
        return None
    expected = _sign({"sha256": digest, "weights": weights, "difference": difference})
    signature = record.get("signature")
    if not expected or not isinstance(signature, str):
        return None
    return float(difference) if hmac.compare_digest(expected, signature) else None


KEY_NAME = "onnx-check.key"


def _sign(record: dict) -> str:
    """HMAC-SHA256 of ``record`` with this user's key; "" when there is no key and none can be
    made (a read-only home folder)."""
    key = _user_key()
    if key is None:
        return ""
    blob = json.dumps(record, sort_keys=True).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _user_key() -> bytes | None:
    from engine.trust import allow_list_path

    path = allow_list_path().parent / KEY_NAME
    try:
        key = read_capped(path, 64, what="key file")
        if len(key) == 32:
            return key
    except OSError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, os.urandom(32))
        os.chmod(path, 0o600)
        return read_capped(path, 64, what="key file")
    except OSError:
        return None


def sentence(
    what: str,
    prepared: Prepared,
    rows: int,
    seconds: float,
    outputs: str = "",
    unit: str = "images",
) -> str:
    """The log line of a network that runs in onnxruntime."""
    how = f"exported ({prepared.exported}) and " if prepared.exported else ""
    if prepared.checked_now:
        checked = (
            f"{how}{outputs}checked against torch on {rows} of your {unit} (largest difference "
            f"{prepared.difference:.1e} of the output scale)"
        )
    else:
        checked = (
            f"{outputs}the export checked against torch when first used (largest difference "
            f"{prepared.difference:.1e}), unchanged since"
        )
    return (
        f"{what.capitalize()} runs in onnxruntime on the CPU: {checked}; ready in {seconds:.1f} s."
    )
