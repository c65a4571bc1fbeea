"""The frozen backbone's features made early: by `refit train`'s prefetching child, in onnxruntime,
while the run itself is still importing torch (engine/data/prefetch.py).

A linear probe's run spends its first seconds importing torch, timm and scikit-learn on one core.
When the backbone's export is in the workspace's ONNX cache already, the child runs it over the
views it made, on the other core, so that most features are there when the run reaches its
feature pass. Nothing here imports torch.

Trust: the child only runs an export whose record this user's key signed (engine/frozen/
records.py) and whose bytes are the ones that record names; it looks the export up by what its
record says it is (backbone, weights file, input size, onnxruntime's version), not by the name
the run would compute (that needs torch's version). The run then takes the features only when the
child ran the very file its own key names and the record was checked against the run's own
weights (:func:`engine.frozen.forward.accept_early`); anything else is computed again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.data.view import normalised_batch
from engine.frozen.ort import ONNX_LIMIT, OnnxUnavailable, cpu_session
from engine.frozen.records import SUFFIX, export_path, signed_record
from engine.safe_read import read_capped

#: Images per onnxruntime call in the child: the run takes what the child finished, in these steps.
BATCH = 16
#: How often a child waiting for the run's first export looks for it, in seconds.
POLL_S = 0.05
#: Records looked at, newest first (a workspace holds a few exports, one per backbone and size).
MOST_RECORDS = 64


@dataclass(frozen=True)
class EarlySpec:
    """What the child needs to find and run the export: picklable, no torch.

    ``parts``: the export's key parts the run will use (engine.frozen.keys.backbone_parts), without
    the library versions; ``mean``/``std``: the backbone's normalisation."""

    cache_dir: str
    parts: dict[str, Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    threads: int


@dataclass(frozen=True)
class EarlyExport:
    """The export the child ran: its file name and the SHA-256 of the bytes it ran."""

    name: str
    digest: str


class EarlyFeatures:
    """The checked export of ``spec``'s backbone in an onnxruntime session; raises
    OnnxUnavailable when there is none to run (onnxruntime missing, no signed record matches)."""

    def __init__(self, spec: EarlySpec) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise OnnxUnavailable("onnxruntime is not installed") from None
        found = find_export(spec, str(onnxruntime.__version__))
        if found is None:
            raise OnnxUnavailable("no checked export of this backbone in the workspace")
        path, data, digest = found
        self.spec, self._path, self._data = spec, path, data
        self.export = EarlyExport(path.name, digest)
        self.session = cpu_session(data, threads=spec.threads, path=path)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def widen(self, threads: int) -> bool:
        """Run on ``threads`` threads from the next batch on (the same checked bytes in a new
        session); False, and the current session stays, when onnxruntime refuses."""
        try:
            self.session = cpu_session(self._data, threads=threads, path=self._path)
        except OnnxUnavailable:
            return False
        return True

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        """The float32 features of RGB views (one row each)."""
        return self.run(normalised_batch(images, self.spec.mean, self.spec.std))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The float32 features of a normalised float32 NCHW ``batch`` (one row each)."""
        return np.asarray(self.session.run([self.output], {self.input: batch})[0], np.float32)


def wait_for_export(
    spec: EarlySpec,
    *,
    seconds: float,
    waiting: Callable[[], None],
    idle: Callable[[], bool] | None = None,
) -> EarlyFeatures | None:
    """The checked export of ``spec``'s backbone: at once when the workspace has one, else the
    one the run makes and checks on a backbone's first run (looked for every ``POLL_S``, up to
    ``seconds``; ``waiting()`` is called once when the looking starts). None when none came.

    ``idle()``, while waiting, does a short piece of other work and says whether it did (then it
    is called again instead of sleeping, the export looked for between the pieces)."""
    deadline = time.monotonic() + seconds
    said = False
    while True:
        try:
            return EarlyFeatures(spec)
        except Exception:  # none yet, or onnxruntime missing or refusing it
            pass
        if time.monotonic() >= deadline:
            return None
        if not said:
            waiting()
            said = True
        if idle is None or not idle():
            time.sleep(POLL_S)


def find_export(spec: EarlySpec, ort_version: str) -> tuple[Path, bytes, str] | None:
    """The newest export in ``spec.cache_dir`` whose signed record matches ``spec.parts`` and
    this onnxruntime, with its bytes and their SHA-256; None when there is none."""
    folder = Path(spec.cache_dir)
    try:
        records = sorted(
            (p for p in folder.glob(f"*{SUFFIX}") if p.is_file()),
            key=_modified,
            reverse=True,
        )[:MOST_RECORDS]
    except OSError:
        return None
    for record_file in records:
        path = export_path(record_file)
        record = signed_record(path, create_key=False)
        parts = record.get("parts") if record is not None else None
        if not isinstance(parts, dict) or parts.get("onnxruntime") != ort_version:
            continue
        if any(parts.get(name) != value for name, value in spec.parts.items()):
            continue
        try:
            data = read_capped(path, ONNX_LIMIT, what="ONNX model")
        except OSError:
            continue
        digest = hashlib.sha256(data).hexdigest()
        if record is not None and digest == record.get("sha256"):
            return path, data, digest
    return None


def _modified(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
