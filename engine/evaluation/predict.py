"""Predicting classes of new images with a trained run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.runs import RunDir
from engine.training.checkpoint import CheckpointError, load_weights


@dataclass(frozen=True)
class Prediction:
    """Top classes of one file, or the reason it could not be read."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


class Predictor:
    """A run's best (or last) checkpoint, ready to classify images on the CPU or a GPU."""

    def __init__(self, run: RunDir, *, checkpoint: str = "best", device: str = "cpu") -> None:
        from engine.data import build_transform
        from engine.models import build_model

        weights = run.checkpoints / f"{checkpoint}.safetensors"
        if not weights.is_file():
            weights = run.checkpoints / "last.safetensors"
        if not weights.is_file():
            raise CheckpointError(
                f"The run {run.run_id} has no checkpoint yet; train it (or resume it) first."
            )
        config = run.config()
        classes = run.summary().get("classes") or run.splits().get("classes")
        if not classes:
            raise CheckpointError(f"The run {run.run_id} does not record its classes.")
        self.classes: list[str] = list(classes)
        self.device = torch.device(device)
        self.model = build_model(config.model, len(self.classes), load_weights=False)
        load_weights(self.model, weights)
        self.model.to(self.device).eval()
        self.transform = build_transform(self.model.preprocess, train=False)
        self.checkpoint = weights

    @torch.inference_mode()
    def predict(
        self, paths: Iterable[str | Path], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify each file; unreadable files get an error sentence instead of a crash."""
        from engine.data import ImageError, load_image

        paths = [str(p) for p in paths]
        results: dict[str, Prediction] = {}
        batch: list[tuple[str, torch.Tensor]] = []
        min_size = getattr(self.transform, "min_size", None)

        def flush() -> None:
            if not batch:
                return
            x = torch.stack([t for _, t in batch]).to(self.device)
            probs = self.model(x).float().softmax(dim=1).cpu()
            k = min(top_k, len(self.classes))
            values, indices = probs.topk(k, dim=1)
            for (p, _), vals, idxs in zip(batch, values, indices, strict=True):
                top = [(self.classes[i], float(v)) for v, i in zip(vals, idxs, strict=True)]
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
