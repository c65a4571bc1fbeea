"""Predicting classes of new images or texts with a trained run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.modalities import modality_of
from engine.runs import RunDir
from engine.training.checkpoint import CheckpointError, load_weights
from engine.training.checkpoint_files import weights_file
from engine.training.devices import inference_device


@dataclass(frozen=True)
class Prediction:
    """Top classes of one file, or the reason it could not be read."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


class Predictor:
    """A run's best (or last) checkpoint, ready to classify images or texts on a CPU or GPU.

    Raises CheckpointError with a sentence when that checkpoint is missing or damaged; the
    other checkpoint is never used in its place.
    """

    # Set by the modality (prepare_predictor): images a transform, texts a token limit.
    transform: Any
    max_length: int

    def __init__(
        self,
        run: RunDir,
        *,
        checkpoint: str = "best",
        device: str = "cpu",
        runtime: str = "auto",
    ) -> None:
        from engine.models import trained_architecture

        weights = weights_file(run, checkpoint)
        config = run.intact_config()  # a damaged run file: one sentence naming it
        classes = run.summary().get("classes") or run.splits().get("classes")
        if (
            not classes
            or not isinstance(classes, list)
            or not all(isinstance(c, str) for c in classes)
        ):
            raise CheckpointError(f"The run {run.run_id} does not record its classes.")
        self.classes: list[str] = list(classes)
        # Not torch.device(device): its errors name drivers and device types, not the choice.
        self.device = inference_device(device)
        self.model = trained_architecture(config, len(self.classes))
        other = "last" if checkpoint == "best" else "best"
        load_weights(
            self.model,
            weights,
            f"choose the {other} checkpoint (--checkpoint {other}) instead, or train the run again",
        )
        self.model.to(self.device).eval()
        self.modality = self.model.modality
        self.checkpoint = weights
        self.run, self.config, self.runtime = run, config, runtime
        self.channels_last = False
        self.frozen: Any = None  # a FrozenForward once prepare_runtime() chose onnxruntime
        self._text_decided = False  # texts: whether the first batch chose the runtime yet
        self.runtime_notes: list[str] = []
        modality_of(self.modality).prepare_predictor(self)

    def prepare_runtime(self, rows: int) -> None:
        """Choose where images run for a job of about ``rows`` images (see
        :func:`engine.frozen.predictor_forward`); texts choose on their first batch
        (:meth:`text_probs`)."""
        if not modality_of(self.modality).runs_frozen_in_onnxruntime or self.frozen is not None:
            return
        from engine.frozen.predicting import predictor_forward

        self.frozen = predictor_forward(self, rows)

    @torch.inference_mode()
    def image_probs(self, x: torch.Tensor) -> np.ndarray:
        """Class probabilities of a batch of transformed images."""
        if self.frozen is not None:
            logits = self.frozen(x)
        else:
            x = x.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self.model(x)
        return logits.float().softmax(dim=1).cpu().numpy()

    @torch.inference_mode()
    def text_probs(self, batch: Any) -> np.ndarray:
        """Class probabilities of a padded token batch (input_ids, attention_mask); the first
        batch decides where texts run (:func:`engine.frozen.predicting.text_predictor_forward`)."""
        x = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask")}
        if not self._text_decided:
            from engine.frozen.predicting import text_predictor_forward

            self._text_decided = True
            self.frozen = text_predictor_forward(self, x)
        logits = self.frozen(x) if self.frozen is not None else self.model(x)
        return logits.float().softmax(dim=1).cpu().numpy()

    def _probs(self, x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            return self.image_probs(x)
        return self.text_probs(x)

    @torch.inference_mode()
    def predict_texts(
        self, named: Iterable[tuple[str, str]], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify texts given as (name, text); an empty text gets an error sentence."""
        return classify_texts(
            named,
            self.model.tokenizer,
            self.max_length,
            self._probs,
            self.classes,
            top_k=top_k,
            batch_size=batch_size,
        )

    @torch.inference_mode()
    def predict(
        self, paths: Iterable[str | Path], *, top_k: int = 3, batch_size: int = 32
    ) -> list[Prediction]:
        """Classify each file; unreadable files get an error sentence instead of a crash."""
        paths = list(paths)
        self.prepare_runtime(len(paths))
        return classify_images(
            paths, self.transform, self._probs, self.classes, top_k=top_k, batch_size=batch_size
        )


def top_classes(
    probs: np.ndarray, classes: Sequence[str], top_k: int
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` (class, probability) pairs of each row of ``probs``, most likely first."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, : min(top_k, len(classes))]
    return [
        [(classes[i], float(row[i])) for i in idx] for row, idx in zip(probs, order, strict=True)
    ]


def classify_texts(
    named: Iterable[tuple[str, str]],
    tokenizer: Any,
    max_length: int,
    probs_of: Callable[[Any], np.ndarray],
    classes: Sequence[str],
    *,
    top_k: int = 3,
    batch_size: int = 32,
) -> list[Prediction]:
    """Tokenize (name, text) pairs, batch them by length and classify each batch with
    ``probs_of`` (padded input_ids and attention_mask in, probabilities out). Shared by trained
    runs and exported models, so both read texts the same way."""
    from engine.data.tokens import sorted_batches

    named = list(named)
    results: list[Prediction | None] = [None] * len(named)
    usable = [i for i, (_, text) in enumerate(named) if text.strip()]
    for i, (name, text) in enumerate(named):
        if not text.strip():
            results[i] = Prediction(path=name, error="The text is empty.")
    texts = [named[i][1] for i in usable]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []
    for idx in sorted_batches([len(ids) for ids in encoded], batch_size):
        batch = tokenizer.pad({"input_ids": [encoded[j] for j in idx]}, return_tensors="pt")
        tops = top_classes(probs_of(batch), classes, top_k)
        for j, top in zip(idx, tops, strict=True):
            results[usable[j]] = Prediction(path=named[usable[j]][0], top=top)
    return [r for r in results if r is not None]


def classify_images(
    paths: Iterable[str | Path],
    transform: Callable[[Any], torch.Tensor],
    probs_of: Callable[[torch.Tensor], np.ndarray],
    classes: Sequence[str],
    *,
    top_k: int = 3,
    batch_size: int = 32,
) -> list[Prediction]:
    """Decode and transform image files in batches and classify them with ``probs_of``;
    unreadable files get an error sentence instead of a crash. DICOM files are decoded with the
    window the transform carries (its run's or export's), never a process-wide one."""
    from engine.data import ImageError, load_image
    from engine.data.images import window_of

    names = [str(p) for p in paths]
    results: dict[str, Prediction] = {}
    batch: list[tuple[str, torch.Tensor]] = []
    min_size = getattr(transform, "min_size", None)
    window = window_of(transform)
    every_frame = getattr(transform, "dicom_frames", "middle") == "all"

    def flush() -> None:
        if not batch:
            return
        tops = top_classes(probs_of(torch.stack([t for _, t in batch])), classes, top_k)
        for (p, _), top in zip(batch, tops, strict=True):
            results[p] = Prediction(path=p, top=top)
        batch.clear()

    for p in names:
        if every_frame and (frames := _frame_paths(p)):
            results[p] = _mean_over_frames(p, frames, transform, probs_of, classes, top_k, window)
            continue
        try:
            image = load_image(p, min_size=min_size, window=window)
        except (ImageError, OSError) as exc:
            results[p] = Prediction(path=p, error=str(exc))
            continue
        batch.append((p, transform(image)))
        if len(batch) >= batch_size:
            flush()
    flush()
    return [results[p] for p in names]


def _frame_paths(path: str) -> list[str]:
    """The frame paths of a multi-frame DICOM file (at most MAX_FRAMES_PER_FILE, evenly
    spaced); [] for any other file (which is then read as one image)."""
    from engine.data.dicom import frame_path
    from engine.data.frames import chosen_frames, file_frame_count

    count = file_frame_count(path)
    return [frame_path(path, f) for f in chosen_frames(count)] if count > 1 else []


def _mean_over_frames(
    path: str,
    frames: Sequence[str],
    transform: Callable[[Any], torch.Tensor],
    probs_of: Callable[[torch.Tensor], np.ndarray],
    classes: Sequence[str],
    top_k: int,
    window: str,
    batch_size: int = 16,
) -> Prediction:
    """The prediction of a multi-frame file under data.dicom_frames "all": the mean of its
    frames' probabilities, decoded a batch of frames at a time."""
    from engine.data import ImageError, load_image

    total = np.zeros(len(classes), np.float64)
    min_size = getattr(transform, "min_size", None)
    for start in range(0, len(frames), batch_size):
        try:
            batch = [
                transform(load_image(f, min_size=min_size, window=window))
                for f in frames[start : start + batch_size]
            ]
        except (ImageError, OSError) as exc:
            return Prediction(path=path, error=str(exc))
        total += np.asarray(probs_of(torch.stack(batch)), np.float64).sum(axis=0)
    mean = (total / len(frames))[None, :]
    return Prediction(path=path, top=top_classes(mean, classes, top_k)[0])


def texts_of_files(files: Iterable[str], text_column: str | None = None) -> list[tuple[str, str]]:
    """(name, text) pairs: a .txt file is one text; a table file gives one text per row.

    Raises DatasetError with one sentence for a file that cannot be read.
    """
    from engine.data import DatasetError
    from engine.data.safe_read import TEXT_FILE_LIMIT, FileReadError, read_capped
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
            if table.open_quote is not None:
                quote = table.open_quote
                raise DatasetError(
                    f"Row {quote.row} of {path.name} opens a quote in column {quote.column} that "
                    f"is never closed, so {quote.rows} rows would be read as one text; close the "
                    "quote and try again."
                )
            column = text_column_of(table, path.name, text_column)
            out.extend(
                (f"{path.name}:{table.unit} {number}", cell_text(row.get(column)))
                for number, row in table.rows
            )
            continue
        try:
            out.append((name, decode_text(read_capped(path, TEXT_FILE_LIMIT, what="text"))[0]))
        except FileReadError as exc:
            raise DatasetError(f"The text file {path} {exc.reason}; it cannot be read.") from None
        except ValueError as exc:
            raise DatasetError(f"Cannot read the text file {path}: {exc}.") from exc
    return out
