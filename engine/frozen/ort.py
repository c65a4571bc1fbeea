"""onnxruntime itself, without torch: its version and a CPU session of an export's bytes.

engine/frozen/onnx.py wraps the session for torch tensors; `refit train`'s prefetching child
(engine/data/prefetch.py) uses it as it is, before the run has imported torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.safe_read import GIB

#: The largest ONNX file read: protobuf cannot hold more than 2 GiB (bigger exports keep their
#: weights as external data, which is never used here), so a bigger file is not read at all.
ONNX_LIMIT = 2 * GIB


class OnnxUnavailable(RuntimeError):
    """The network could not be exported, loaded or checked; the message says why."""


def ort_version() -> str:
    """onnxruntime's version, or "" when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return ""
    return str(onnxruntime.__version__)


def cpu_session(data: bytes, *, threads: int, path: Path) -> Any:
    """An onnxruntime CPU session of an export's ``data`` (the bytes of ``path``, handed over as
    bytes so that the file cannot point onnxruntime at other files), running on ``threads``
    threads. Raises OnnxUnavailable when onnxruntime is missing or cannot load it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxUnavailable("onnxruntime is not installed") from None
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings go to stderr otherwise
        # Threads that spin while waiting take the cores the image decoders need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a damaged or foreign file: onnxruntime raises its own types
        raise OnnxUnavailable(f"onnxruntime could not load {path.name} ({exc})") from None
