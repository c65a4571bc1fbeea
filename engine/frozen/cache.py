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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.frozen.onnx import ONNX_LIMIT, OnnxSession, OnnxUnavailable
from engine.frozen.records import record_path, recorded_difference, signed_record, write_record
from engine.safe_read import NotReadableError, read_capped


@dataclass(frozen=True)
class Prepared:
    """A checked session, how it was made and what its check found."""

    session: OnnxSession
    exported: str  # the exporter that made the file in this session, or "" for a cached file
    difference: float  # largest difference from torch, relative to the output scale
    checked_now: bool  # False: the check recorded for these exact bytes was reused


def prepare(
    path: Path,
    *,
    make: Callable[[Path], str],
    check: Callable[[OnnxSession], float],
    threads: int,
    weights: str,
    parts: dict[str, Any] | None = None,
) -> Prepared:
    """The session of the export at ``path``: made with ``make(path)`` (returns the exporter's
    name) when missing, checked with ``check(session)`` (returns the difference, raises
    OnnxUnavailable) unless these bytes passed before against the same ``weights``
    (:func:`fingerprint`). On any failure both files are removed and
    OnnxUnavailable (or OSError) is raised. ``parts``: what the export's name is the hash of,
    kept in its record."""
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
        signed = signed_record(path)
        recorded = recorded_difference(signed, digest, weights)
        if signed is not None and recorded is not None:
            if parts is not None and signed.get("parts") != parts:  # a record made before parts
                write_record(path, {**signed, "parts": parts})
            return Prepared(session, exported, recorded, checked_now=False)
        try:
            difference = check(session)
        except OnnxUnavailable:
            raise
        except Exception as exc:  # another network under this name: its inputs are not these
            raise OnnxUnavailable(f"onnxruntime could not run {path.name} ({exc!r})") from None
        record = {"sha256": digest, "weights": weights, "difference": difference}
        if parts is not None:  # what the prefetching child matches (engine/data/prefetch.py)
            record["parts"] = parts
        write_record(path, record)
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
