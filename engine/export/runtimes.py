"""Running an exported model on a CPU: ONNX Runtime, TorchScript, or the engine's own classifier."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.export.manifest import (
    SAFETENSORS_FILE,
    ExportError,
)
from engine.modalities import modality_of

Inputs = tuple[torch.Tensor, ...]  # (pixel_values,) or (input_ids, attention_mask)


def input_names(modality: str) -> tuple[str, ...]:
    """The names of the exported model's inputs, in order."""
    return modality_of(modality).input_names


class OnnxRuntime:
    """A model.onnx run by onnxruntime's CPU execution provider."""

    name = "onnx"

    def __init__(self, path: Path, modality: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ExportError(
                "onnxruntime is not installed, so model.onnx cannot run; install it with "
                "'pip install onnxruntime'."
            ) from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the user cannot act on optimizer notes
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ExportError(f"{path} cannot be loaded by onnxruntime ({exc}).") from exc
        self.names = input_names(modality)
        self.accepted = {i.name for i in self.session.get_inputs()}

    def logits(self, inputs: Inputs) -> np.ndarray:
        """Class logits [B, C] as float32."""
        feed = {
            name: t.detach().cpu().numpy()
            for name, t in zip(self.names, inputs, strict=True)
            if name in self.accepted
        }
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


class TorchScriptRuntime:
    """A model.torchscript.pt loaded with torch.jit.load."""

    name = "torchscript"

    def __init__(self, path: Path) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # also TorchScript's own unpickler refusing unknown types
            from engine.models.errors import first_line

            raise ExportError(
                f"{path} cannot be loaded as TorchScript ({first_line(exc)}); export the run again."
            ) from exc

    @torch.inference_mode()
    def logits(self, inputs: Inputs) -> np.ndarray:
        """Class logits [B, C] as float32."""
        return self.module(*inputs).float().cpu().numpy()


class EngineRuntime:
    """The classifier rebuilt with engine code from refit_model.json and model.safetensors."""

    name = "safetensors"

    def __init__(self, folder: Path, manifest: dict[str, Any], weights: Path | None = None):
        self.model = rebuild_classifier(folder, manifest, weights)

    @torch.inference_mode()
    def logits(self, inputs: Inputs) -> np.ndarray:
        """Class logits [B, C] as float32."""
        if len(inputs) == 2:
            out = self.model({"input_ids": inputs[0], "attention_mask": inputs[1]})
        else:
            out = self.model(inputs[0])
        return out.float().cpu().numpy()


def rebuild_classifier(folder: Path, manifest: dict[str, Any], weights: Path | None = None) -> Any:
    """A Classifier of the exported architecture with the exported weights, on the CPU, in
    eval mode; needs no pretrained weights and no network."""
    from engine.config import ModelConfig
    from engine.models import build_model
    from engine.training.checkpoint import load_weights

    model_cfg = (manifest.get("config") or {}).get("model") or {}
    backbone_dir = manifest.get("backbone_folder")
    backbone = str(folder / backbone_dir) if backbone_dir else str(manifest["backbone"])
    cfg = ModelConfig(
        backbone=backbone,
        pretrained=False,
        head_dropout=_dropout(model_cfg.get("head_dropout")),
        # Kept only as a record: engine.trust, not the manifest, decides whether code runs.
        allow_remote_code=bool(model_cfg.get("allow_remote_code", False)),
    )
    model = build_model(cfg, len(manifest["classes"]), load_weights=False)
    load_weights(model, weights or folder / SAFETENSORS_FILE)
    return model.eval()


def _dropout(value: object) -> float:
    """The recorded head dropout; 0 for anything that is not a probability (it does not change
    predictions, which run in eval mode)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1:
        return float(value)
    return 0.0
