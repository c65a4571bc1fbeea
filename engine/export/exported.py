"""ExportedModel: predictions from an exported folder alone, on a CPU, like the run's Predictor."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from engine.evaluation.predict import Prediction, classify_images, classify_texts
from engine.export.checks import softmax
from engine.export.manifest import (
    ONNX_FILE,
    SAFETENSORS_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    ExportFormat,
    read_manifest,
)
from engine.modalities import IMAGE, TEXT, modality_of


def _onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class ExportedModel:
    """A folder written by export_run, usable without the run folder or the HF cache.

    Runs model.onnx with onnxruntime when the folder has one, else model.torchscript.pt, else
    rebuilds the classifier from model.safetensors with engine code. Images are decoded and
    transformed, and texts tokenized, exactly as the run's Predictor does.
    """

    transform: Any  # images: set by the modality (open_exported)

    def __init__(self, folder: Path, manifest: dict[str, Any], runtime: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self.classes: list[str] = list(manifest["classes"])
        self.modality: str = manifest["modality"]
        self.runtime = runtime
        self.tokenizer: Any = None
        self.max_length = 0
        modality_of(self.modality).open_exported(self)

    @property
    def format(self) -> str:
        """The file that runs: "onnx", "torchscript" or "safetensors"."""
        return self.runtime.name

    @classmethod
    def open(cls, folder: str | Path, *, prefer: str | None = None) -> ExportedModel:
        """Open an exported folder; ``prefer`` picks a format other than the default order
        (onnx, torchscript, safetensors). Raises ExportError with one sentence."""
        folder = Path(folder).expanduser().resolve()
        manifest = read_manifest(folder)
        runtime = _runtime(folder, manifest, prefer)
        return cls(folder, manifest, runtime)

    def predict_texts(
        self, named: Iterable[tuple[str, str]], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify texts given as (name, text); an empty text gets an error sentence."""
        if modality_of(self.modality) is not TEXT:
            raise ExportError(
                f"The model in {self.folder} classifies {modality_of(self.modality).noun}, not "
                "texts."
            )

        def probs_of(batch: Any) -> np.ndarray:
            return softmax(self.runtime.logits((batch["input_ids"], batch["attention_mask"])))

        return classify_texts(
            named,
            self.tokenizer,
            self.max_length,
            probs_of,
            self.classes,
            top_k=top_k,
            batch_size=batch_size,
        )

    def predict(
        self, paths: Iterable[str | Path], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify image files; unreadable files get an error sentence instead of a crash."""
        if modality_of(self.modality) is not IMAGE:
            raise ExportError(
                f"The model in {self.folder} classifies {modality_of(self.modality).noun}, not "
                "images."
            )

        def probs_of(images: torch.Tensor) -> np.ndarray:
            return softmax(self.runtime.logits((images,)))

        # DICOM files decode with the window the model was trained with (refit_model.json),
        # which the transform carries to classify_images.
        return classify_images(
            paths, self.transform, probs_of, self.classes, top_k=top_k, batch_size=batch_size
        )


def preprocess_of(manifest: dict[str, Any]) -> Any:
    """The Preprocess recorded in refit_model.json."""
    from engine.preprocess import Preprocess

    pre = manifest.get("preprocess") or {}
    try:
        return Preprocess(
            input_size=int(pre["input_size"]),
            mean=_floats(pre["mean"]),
            std=_floats(pre["std"]),
            interpolation=str(pre["interpolation"]),
            crop_pct=float(pre["crop_pct"]),
            # Exports from before the intensity choice have no entry: pixels as decoded.
            intensity="percentile" if pre.get("intensity") == "percentile" else "off",
            # Exports from before DICOM intake have none: each file's own window.
            dicom_window=_dicom_window(pre.get("dicom_window")),
            # Exports from before multi-frame choice have none: the middle frame.
            dicom_frames="all" if pre.get("dicom_frames") == "all" else "middle",
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ExportError(
            f"The refit_model.json of this exported image model lacks its preprocessing ({exc}); "
            "export the run again."
        ) from exc


_FILES = {
    ExportFormat.ONNX: ONNX_FILE,
    ExportFormat.TORCHSCRIPT: TORCHSCRIPT_FILE,
    ExportFormat.SAFETENSORS: SAFETENSORS_FILE,
}


def _runtime(folder: Path, manifest: dict[str, Any], prefer: str | None) -> Any:
    from engine.export.runtimes import EngineRuntime, OnnxRuntime, TorchScriptRuntime

    listed = manifest.get("formats")
    order = list(_FILES)
    if prefer is not None:
        if prefer not in _FILES:
            names = ", ".join(f.value for f in _FILES)
            raise ExportError(f"An exported model runs as {names}, not as {prefer!r}.")
        order.remove(ExportFormat(prefer))
        order.insert(0, ExportFormat(prefer))
    for fmt in order:
        path = folder / _FILES[fmt]
        if not path.is_file() or (listed is not None and fmt.value not in listed):
            continue
        if fmt is ExportFormat.ONNX and prefer is None and not _onnx_available():
            continue
        if fmt is ExportFormat.ONNX:
            return OnnxRuntime(path, manifest["modality"])
        if fmt is ExportFormat.TORCHSCRIPT:
            return TorchScriptRuntime(path)
        return EngineRuntime(folder, manifest)
    raise ExportError(
        f"{folder} holds no model file (model.onnx, model.torchscript.pt or model.safetensors); "
        "export the run again with one of those formats."
    )


def _dicom_window(value: Any) -> str:
    """refit_model.json's DICOM window ("file" when it has none; ValueError for an unknown
    one, which preprocess_of turns into its sentence)."""
    from engine.data.dicom import DEFAULT_WINDOW, WINDOWS

    if value is None:
        return DEFAULT_WINDOW
    if value not in WINDOWS:
        raise ValueError(f"its DICOM window {value!r} is unknown to this version")
    return str(value)


def _floats(values: Any) -> tuple[float, float, float]:
    """A mean or std per channel of refit_model.json, as numbers (three of them)."""
    return cast("tuple[float, float, float]", tuple(float(v) for v in values))
