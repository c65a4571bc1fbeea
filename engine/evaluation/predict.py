"""Predicting classes of new images or texts with a trained run."""

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
    """A run's best (or last) checkpoint, ready to classify images or texts on a CPU or GPU."""

    def __init__(self, run: RunDir, *, checkpoint: str = "best", device: str = "cpu") -> None:
        from engine.models import trained_architecture

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
        self.model = trained_architecture(config, len(self.classes))
        load_weights(self.model, weights)
        self.model.to(self.device).eval()
        self.modality = self.model.modality
        self.checkpoint = weights
        if self.modality == "text":
            from engine.models.text import token_limit

            self.max_length = token_limit(
                self.model.tokenizer, self.model.backbone, config.data.max_length
            )
        else:
            from engine.data import build_transform

            self.transform = build_transform(self.model.preprocess, train=False)

    def _top(self, logits: torch.Tensor, top_k: int) -> list[list[tuple[str, float]]]:
        probs = logits.float().softmax(dim=1).cpu()
        values, indices = probs.topk(min(top_k, len(self.classes)), dim=1)
        return [
            [(self.classes[i], float(v)) for v, i in zip(vals, idxs, strict=True)]
            for vals, idxs in zip(values, indices, strict=True)
        ]

    @torch.inference_mode()
    def predict_texts(
        self, named: Iterable[tuple[str, str]], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify texts given as (name, text); an empty text gets an error sentence."""
        from engine.data.tokens import sorted_batches

        named = list(named)
        results: list[Prediction | None] = [None] * len(named)
        usable = [i for i, (_, text) in enumerate(named) if text.strip()]
        for i, (name, text) in enumerate(named):
            if not text.strip():
                results[i] = Prediction(path=name, error="The text is empty.")
        tok = self.model.tokenizer
        encoded = tok([named[i][1] for i in usable], truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        lengths = [len(ids) for ids in encoded]
        for idx in sorted_batches(lengths, batch_size):
            batch = tok.pad({"input_ids": [encoded[j] for j in idx]}, return_tensors="pt")
            x = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask")}
            for j, top in zip(idx, self._top(self.model(x), top_k), strict=True):
                results[usable[j]] = Prediction(path=named[usable[j]][0], top=top)
        return [r for r in results if r is not None]

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
            for (p, _), top in zip(batch, self._top(self.model(x), top_k), strict=True):
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


def texts_of_files(files: Iterable[str], text_column: str | None = None) -> list[tuple[str, str]]:
    """(name, text) pairs: a .txt file is one text; a table file gives one text per row.

    Raises DatasetError with one sentence for a file that cannot be read.
    """
    from engine.data import DatasetError
    from engine.data.text_read import (
        TABLE_EXTENSIONS,
        cell_text,
        decode_text,
        read_table,
        text_column_of,
    )

    out: list[tuple[str, str]] = []
    for name in files:
        path = Path(name)
        if path.suffix.lower() in TABLE_EXTENSIONS:
            table = read_table(path)
            column = text_column_of(table, path.name, text_column)
            out.extend(
                (f"{path.name}:{table.unit} {number}", cell_text(row.get(column)))
                for number, row in table.rows
            )
            continue
        try:
            out.append((name, decode_text(path.read_bytes())[0]))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"Cannot read the text file {path}: {exc}.") from exc
    return out
