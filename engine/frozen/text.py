"""Frozen text encoders through onnxruntime on the CPU: exported once, checked against torch.

A frozen encoder's forward pass (the text linear probe's feature pass, the advisor's probe) is
all inference, and onnxruntime runs all-MiniLM-L6-v2 about 1.6x faster than eager PyTorch on two
CPU cores (docs/benchmarks.md, "Texts"). The encoder and its mean pooling are exported with
dynamic batch and sequence axes into the workspace cache, keyed by what decides the network (model
folder and its weight files, a weights override, max_length, pooling, torch version), and each
session is checked against torch on a real batch before it is used. When the export, the session
or the check fails, the caller gets None and the run goes on in torch after one log line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.frozen.onnx import ONNX_LIMIT
from engine.safe_read import read_capped

TokenBatch = dict[str, torch.Tensor]

# Largest difference allowed between onnxruntime's and torch's pooled features (float32; the
# measured difference on all-MiniLM-L6-v2 is under 1e-6; features are of order 0.1-1).
TOLERANCE = 1e-4
_EXPORT_VERSION = 1  # bump when the exported graph changes
_INPUTS = ("input_ids", "attention_mask")


def text_runtime_enabled(config: Any) -> bool:
    """Whether a run's frozen text encoder may run in onnxruntime: ``device.runtime`` auto or
    onnxruntime (auto where the config has no such field yet), on a CPU run with onnxruntime
    installed."""
    runtime = str(getattr(getattr(config, "device", None), "runtime", "auto")).lower()
    if runtime.endswith("torch"):
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Traceable(nn.Module):
    """``(input_ids, attention_mask) -> pooled features``: the backbone with tensor arguments."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone({"input_ids": input_ids, "attention_mask": attention_mask})


class OrtTextEncoder(nn.Module):
    """A frozen text backbone in onnxruntime, called like the torch backbone (token batch in,
    float32 features out, on the CPU)."""

    def __init__(self, session: Any, path: Path) -> None:
        super().__init__()
        self.session = session
        self.path = path

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        feeds = {name: batch[name].cpu().numpy() for name in _INPUTS}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def encoder_key(folder: Path | None, *, weights: str | None, max_length: int, pooling: str) -> str:
    """Cache key of an exported encoder: the model folder with its weight files' sizes and
    mtimes, a weights override file, max_length, pooling and the torch version."""
    files: list[Any] = []
    for base in [folder] if folder else []:
        for f in sorted(base.iterdir()):
            if f.suffix in (".safetensors", ".bin", ".json") and f.is_file():
                st = f.stat()
                files.append([f.name, st.st_size, st.st_mtime_ns])
    extra = None
    if weights:
        st = Path(weights).stat()
        extra = [str(Path(weights).resolve()), st.st_size, st.st_mtime_ns]
    spec = {
        "v": _EXPORT_VERSION,
        "folder": str(folder.resolve()) if folder else None,
        "files": files,
        "weights": extra,
        "max_length": max_length,
        "pooling": pooling,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def export_text_encoder(backbone: nn.Module, dest: Path, sample: TokenBatch) -> None:
    """Write ``backbone`` (with its pooling) as ONNX to ``dest`` atomically, batch and sequence
    axes dynamic; the TorchScript exporter first (about 1 s), the dynamo one if it fails."""
    module = _Traceable(backbone).eval()
    args = tuple(sample[name].cpu() for name in _INPUTS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.stem, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    axes["features"] = {0: "batch"}
    try:
        try:
            _export(module, args, tmp, axes, dynamo=False)
        except Exception:  # any exporter failure: try the other exporter
            _export(module, args, tmp, axes, dynamo=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _export(module: nn.Module, args: tuple, path: Path, axes: dict, *, dynamo: bool) -> None:
    import warnings

    kwargs: dict[str, Any] = {"dynamo": dynamo, "opset_version": 17}
    if dynamo:
        batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
        kwargs["dynamic_shapes"] = {
            "input_ids": {0: batch, 1: tokens},
            "attention_mask": {0: batch, 1: tokens},
        }
        kwargs["external_data"] = False
        kwargs["verbose"] = False  # no progress lines in the user's terminal
    else:
        kwargs["dynamic_axes"] = axes
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(_INPUTS),
            output_names=["features"],
            **kwargs,
        )


def ort_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session of ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # From bytes, as for images: a planted file cannot point onnxruntime at other files through
    # external-data references, and a huge one is refused unread.
    data = read_capped(path, ONNX_LIMIT, what="ONNX model")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def check_against_torch(
    encoder: nn.Module, backbone: nn.Module, sample: TokenBatch
) -> tuple[bool, float]:
    """(within TOLERANCE and the same largest feature per text, largest difference) of the
    two on ``sample``."""
    with torch.inference_mode():
        was_training = backbone.training
        backbone.eval()
        want = backbone(sample).float().cpu()
        backbone.train(was_training)
        got = encoder(sample)
    if got.shape != want.shape:
        return False, float("inf")
    diff = float((got - want).abs().max()) if want.numel() else 0.0
    same_argmax = bool(torch.equal(got.argmax(-1), want.argmax(-1)))
    return diff <= TOLERANCE and same_argmax, diff


def ort_text_encoder(
    backbone: nn.Module,
    cache_dir: Path,
    key: str,
    sample: TokenBatch,
    log: Callable[[str], None],
    *,
    threads: int | None = None,
) -> OrtTextEncoder | None:
    """``backbone`` in onnxruntime, exported into ``cache_dir`` once per ``key`` and checked
    against torch on ``sample`` (a batch of real texts); None, after one log line, when the
    export, the session or the check fails (the caller then stays in torch)."""
    path = cache_dir / f"text-encoder-{key}.onnx"
    try:
        if not path.is_file():
            export_text_encoder(backbone, path, sample)
        encoder = OrtTextEncoder(ort_session(path, threads or torch.get_num_threads()), path)
        ok, diff = check_against_torch(encoder, backbone, sample)
    except Exception as exc:  # export and onnxruntime raise many kinds
        from engine.models.text import first_line

        path.unlink(missing_ok=True)  # a damaged or planted file: exported again next time
        log(
            "The frozen text encoder runs in torch: onnxruntime could not take it "
            f"({first_line(exc)})."
        )
        return None
    if not ok:
        log(
            f"The frozen text encoder runs in torch: onnxruntime's features differ from torch's "
            f"by up to {diff:.2g} on real texts (allowed: {TOLERANCE:g})."
        )
        path.unlink(missing_ok=True)  # a bad export is not reused
        return None
    log(
        f"The frozen text encoder runs in onnxruntime on the CPU (checked against torch on "
        f"{len(sample['input_ids'])} texts: largest difference {diff:.1g})."
    )
    return encoder
