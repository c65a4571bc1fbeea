"""Where a trained run's images and texts run when it predicts: onnxruntime on the CPU, or torch.

- A linear-probe run's backbone is the pretrained one, unchanged: it runs from the same cached
  export its training used (no new export), and the head runs in torch.
- Any other run is exported whole (logits out) under its checkpoint file's stamp, so a new
  checkpoint is never run from an old export. The export costs about a second, more than it
  saves on a few images: it is made for jobs of at least ``EXPORT_WORTH_ROWS`` images (an
  evaluation, a folder of predictions) and reused by later ones, Try it included.
- A text linear probe's frozen encoder runs from the export its training made (the training's
  feature pass used it), the head in torch; other text runs stay in torch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from engine.config import Method, Runtime
from engine.files import file_stamp
from engine.frozen.forward import FrozenForward, onnx_key, use_onnxruntime
from engine.frozen.keys import backbone_parts, run_cache_dir

if TYPE_CHECKING:
    from engine.frozen.text import OrtTextEncoder

_log = logging.getLogger(__name__)

EXPORT_WORTH_ROWS = 100


class _ProbeForward:
    """Frozen backbone or text encoder (onnxruntime) then the trained head (torch)."""

    def __init__(self, backbone: FrozenForward | OrtTextEncoder, head: torch.nn.Module) -> None:
        self.backbone, self.head = backbone, head

    @property
    def name(self) -> str:
        return self.backbone.name

    @torch.inference_mode()
    def __call__(self, x: Any) -> torch.Tensor:
        return self.head(self.backbone(x)).float()


def predictor_forward(predictor: Any, rows: int) -> Any:
    """A callable (transformed images -> logits) that runs in onnxruntime, or None for torch."""
    runtime = Runtime(predictor.runtime)
    cache_dir = run_cache_dir(predictor.run)
    if cache_dir is None or not use_onnxruntime(runtime, predictor.device):
        return None
    config, model = predictor.config, predictor.model
    notes = predictor.runtime_notes

    def log(text: str, level: str) -> None:
        notes.append(text)
        if level == "warning":  # a fall back to torch: on stderr in the CLI, the app's log
            _log.warning(text)

    common = {
        "placement": _cpu_placement(),
        "runtime": runtime,
        "cache_dir": cache_dir,
        "log": log,
        "channels_last": predictor.channels_last,
    }
    if Method(config.adapt.method) is Method.LINEAR_PROBE:
        parts = backbone_parts(config, model.preprocess.input_size)
        frozen = FrozenForward(
            model.backbone, key_parts=parts, what="the frozen backbone", **common
        )
        return _ProbeForward(frozen, model.head)
    parts = {
        "cut": "logits",
        "run": predictor.run.run_id,
        "checkpoint": predictor.checkpoint.name,
        "stamp": file_stamp(predictor.checkpoint),  # as evaluation.predictions.checkpoint_stamp
    }
    cached = (cache_dir / f"{onnx_key(parts)}.onnx").is_file()
    if rows < EXPORT_WORTH_ROWS and not cached and runtime is Runtime.AUTO:
        return None
    return FrozenForward(model, key_parts=parts, what="the model", argmax=True, **common)


def text_predictor_forward(predictor: Any, sample: dict[str, torch.Tensor]) -> Any:
    """A callable (token batch -> logits) for a text linear probe whose frozen encoder runs in
    onnxruntime, or None for torch. ``sample``: the job's first batch (the check's texts when
    the export is new or changed). With ``auto`` the export its training made is used (training
    exports it on the CPU: engine/training/text_pipeline.py); a text encoder's export takes
    seconds, so only ``--runtime onnxruntime`` makes one here."""
    runtime = Runtime(predictor.runtime)
    cache_dir = run_cache_dir(predictor.run)
    config, model = predictor.config, predictor.model
    if (
        cache_dir is None
        or not use_onnxruntime(runtime, predictor.device)
        or Method(config.adapt.method) is not Method.LINEAR_PROBE
        or not config.model.pretrained
    ):
        return None
    from engine.frozen.text import encoder_path, ort_text_encoder, probe_encoder_key

    key = probe_encoder_key(
        model.entry, weights=config.model.weights, max_length=predictor.max_length
    )
    if key is None:
        return None
    if runtime is Runtime.AUTO and not encoder_path(cache_dir, key).is_file():
        return None
    notes = predictor.runtime_notes
    encoder = ort_text_encoder(model.backbone, cache_dir, key, sample, notes.append)
    if encoder is None:  # a fall back to torch: on stderr in the CLI, the app's log
        _log.warning(notes[-1])
        return None
    return _ProbeForward(encoder, model.head)


def _cpu_placement() -> Any:
    from engine.config import Precision
    from engine.training.devices import Placement

    return Placement(device=torch.device("cpu"), precision=Precision.FP32, description="CPU")
