"""ExportedModel: predictions from an exported folder alone, on a CPU, like the run's Predictor."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.evaluation.predict import Prediction
from engine.export.checks import softmax
from engine.export.manifest import (
    BACKBONE_DIR,
    ONNX_FILE,
    SAFETENSORS_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    ExportFormat,
    read_manifest,
)


def _onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class ExportedModel:
    """A folder written by export_run, usable without the run folder or the HF cache.

    Runs model.onnx with onnxruntime when the folder has one, else model.torchscript.pt, else
    rebuilds the classifier from model.safetensors with engine code. Images are decoded and
    transformed, and texts tokenized, exactly as the run's Predictor does.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], runtime: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self.classes: list[str] = list(manifest["classes"])
        self.modality: str = manifest["modality"]
        self.runtime = runtime
        self.tokenizer: Any = None
        self.max_length = 0
        if self.modality == "text":
            from engine.models.text import load_tokenizer

            self.tokenizer = load_tokenizer(
                folder / manifest.get("text", {}).get("tokenizer", BACKBONE_DIR)
            )
            self.max_length = int(manifest["text"]["max_length"])
        else:
            from engine.data import build_transform

            self.transform = build_transform(preprocess_of(manifest), train=False)

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

    def _top(self, logits: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
        probs = torch.from_numpy(softmax(logits))
        values, indices = probs.topk(min(top_k, len(self.classes)), dim=1)
        return [
            [(self.classes[i], float(v)) for v, i in zip(vals, idxs, strict=True)]
            for vals, idxs in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def predict_texts(
        self, named: Iterable[tuple[str, str]], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify texts given as (name, text); an empty text gets an error sentence."""
        from engine.data.tokens import sorted_batches

        if self.modality != "text":
            raise ExportError(f"The model in {self.folder} classifies images, not texts.")
        named = list(named)
        results: list[Prediction | None] = [None] * len(named)
        usable = [i for i, (_, text) in enumerate(named) if text.strip()]
        for i, (name, text) in enumerate(named):
            if not text.strip():
                results[i] = Prediction(path=name, error="The text is empty.")
        tok = self.tokenizer
        encoded = tok([named[i][1] for i in usable], truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        lengths = [len(ids) for ids in encoded]
        for idx in sorted_batches(lengths, batch_size):
            batch = tok.pad({"input_ids": [encoded[j] for j in idx]}, return_tensors="pt")
            logits = self.runtime.logits((batch["input_ids"], batch["attention_mask"]))
            for j, top in zip(idx, self._top(logits, top_k), strict=True):
                results[usable[j]] = Prediction(path=named[usable[j]][0], top=top)
        return [r for r in results if r is not None]

    def predict(
        self, paths: Iterable[str | Path], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify image files; unreadable files get an error sentence instead of a crash."""
        from engine.data import ImageError, load_image

        if self.modality != "image":
            raise ExportError(f"The model in {self.folder} classifies texts, not images.")
        paths = [str(p) for p in paths]
        results: dict[str, Prediction] = {}
        batch: list[tuple[str, torch.Tensor]] = []
        min_size = getattr(self.transform, "min_size", None)

        def flush() -> None:
            if not batch:
                return
            logits = self.runtime.logits((torch.stack([t for _, t in batch]),))
            for (p, _), top in zip(batch, self._top(logits, top_k), strict=True):
                results[p] = Prediction(path=p, top=top)
            batch.clear()

        for p in paths:
            try:
                image = load_image(p, min_size=min_size)
            except (ImageError, OSError) as exc:
                results[p] = Prediction(path=p, error=str(exc))
                continue
            batch.append((p, self.transform(image)))
            if len(batch) >= batch_size:
                flush()
        flush()
        return [results[p] for p in paths]


def preprocess_of(manifest: dict[str, Any]) -> Any:
    """The Preprocess recorded in refit_model.json."""
    from engine.preprocess import Preprocess

    pre = manifest.get("preprocess") or {}
    try:
        return Preprocess(
            input_size=int(pre["input_size"]),
            mean=tuple(float(v) for v in pre["mean"]),
            std=tuple(float(v) for v in pre["std"]),
            interpolation=str(pre["interpolation"]),
            crop_pct=float(pre["crop_pct"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
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
