"""Frozen text encoders through onnxruntime on the CPU: exported once, checked against torch.

A frozen encoder's forward pass (the text linear probe's feature pass, the advisor's probe) is
all inference, and onnxruntime runs all-MiniLM-L6-v2 about 1.6x faster than eager PyTorch on two
CPU cores (docs/benchmarks.md, "Texts"). The encoder and its mean pooling are exported with
dynamic batch and sequence axes into the workspace cache, keyed by what decides the network (model
folder and its weight files, a weights override, max_length, pooling, torch version), and checked
against torch on a real batch when first used (engine/frozen/cache.py). When the export, the session
or the check fails, the caller gets None and the run goes on in torch after one log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.files import file_stamp
from engine.frozen.cache import fingerprint, prepare, sentence
from engine.frozen.forward import onnx_key, use_onnxruntime
from engine.frozen.onnx import OnnxSession, OnnxUnavailable, compare, export

TokenBatch = dict[str, torch.Tensor]

# Largest difference allowed between onnxruntime's and torch's pooled features (float32; the
# measured difference on all-MiniLM-L6-v2 is under 1e-6; features are of order 0.1-1).
TOLERANCE = 1e-4
_EXPORT_VERSION = 2  # bump when the exported graph changes
_INPUTS = ("input_ids", "attention_mask")


def text_runtime_enabled(config: Any) -> bool:
    """Whether ``device.runtime`` lets a frozen text encoder run in onnxruntime (the caller
    checks the run's device): engine.frozen.use_onnxruntime on the CPU."""
    return use_onnxruntime(config.device.runtime, torch.device("cpu"))


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

    name = "onnxruntime"  # the runtime in use, as FrozenForward.name says it

    def __init__(self, session: OnnxSession) -> None:
        super().__init__()
        self.session = session

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        return self.session.run_feeds({name: batch[name] for name in _INPUTS})[0]


def encoder_key(folder: Path | None, *, weights: str | None, max_length: int, pooling: str) -> str:
    """Cache key of an exported encoder (engine.frozen.forward.onnx_key): the model folder with
    its weight and configuration files' stamps, a weights override file, max_length, pooling."""
    files = [
        [f.name, file_stamp(f)]
        for f in (sorted(folder.iterdir()) if folder else [])
        if f.suffix in (".safetensors", ".bin", ".json") and f.is_file()
    ]
    override = [str(Path(weights).resolve()), file_stamp(weights)] if weights else None
    return onnx_key(
        {
            "cut": "text-encoder",
            "text-v": _EXPORT_VERSION,
            "folder": str(folder.resolve()) if folder else None,
            "files": files,
            "weights": override,
            "max_length": max_length,
            "pooling": pooling,
        }
    )


def probe_encoder_key(entry: Any, *, weights: str | None, max_length: int) -> str | None:
    """The key of a text linear probe's encoder export (its model folder, mean pooling), the
    same for its training and its predictions; None when there is no folder to key on."""
    from engine.models.text import text_folder

    try:
        folder = text_folder(entry, need_weights=False)
    except Exception:  # no folder to key on: torch
        return None
    return encoder_key(folder, weights=weights, max_length=max_length, pooling="mean")


def encoder_path(cache_dir: Path, key: str) -> Path:
    """Where the encoder export of ``key`` lives in an ONNX cache folder."""
    return cache_dir / f"text-encoder-{key}.onnx"


def export_text_encoder(backbone: nn.Module, dest: Path, sample: TokenBatch) -> str:
    """Write ``backbone`` (with its pooling) as ONNX to ``dest`` atomically, batch and sequence
    axes dynamic; returns the exporter that worked (engine.frozen.onnx.export)."""
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    args = tuple(sample[name].cpu() for name in _INPUTS)
    return export(_Traceable(backbone), args, dest, inputs=axes)


def check_against_torch(encoder: OrtTextEncoder, backbone: nn.Module, sample: TokenBatch) -> float:
    """The largest difference of the two on ``sample``; OnnxUnavailable above TOLERANCE or when
    a text's largest feature is another one."""
    with torch.inference_mode():
        was_training = backbone.training
        backbone.eval()
        want = backbone(sample).float().cpu()
        backbone.train(was_training)
        got = encoder(sample)
    diff = compare(got, want, what="features", tolerance=TOLERANCE)
    if not torch.equal(got.argmax(-1), want.argmax(-1)):
        raise OnnxUnavailable("onnxruntime's largest feature of a text differs from torch's")
    return diff


def ort_text_encoder(
    backbone: nn.Module,
    cache_dir: Path,
    key: str,
    sample: TokenBatch,
    log: Callable[[str], None],
) -> OrtTextEncoder | None:
    """``backbone`` in onnxruntime, exported into ``cache_dir`` once per ``key`` and checked
    against torch on ``sample`` (a batch of real texts) when first used (engine.frozen.cache);
    None, after one log line, when the export, the session or the check fails (the caller then
    stays in torch)."""
    path = encoder_path(cache_dir, key)
    started = time.monotonic()
    try:
        prepared = prepare(
            path,
            make=lambda target: export_text_encoder(backbone, target, sample),
            check=lambda session: check_against_torch(OrtTextEncoder(session), backbone, sample),
            threads=torch.get_num_threads(),
            weights=fingerprint(backbone),
        )
    except (OnnxUnavailable, OSError) as exc:
        log(f"The frozen text encoder runs in torch: {exc}.")
        return None
    rows = len(sample["input_ids"])
    seconds = time.monotonic() - started
    log(sentence("the frozen text encoder", prepared, rows, seconds, unit="texts"))
    return OrtTextEncoder(prepared.session)
