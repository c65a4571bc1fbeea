"""Checking an exported model against the run's PyTorch model on real validation examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.export.manifest import ExportError
from engine.modalities import modality_of

TOLERANCE = 1e-4  # largest allowed difference of any softmax probability
CHECK_EXAMPLES = 32


@dataclass(frozen=True)
class CheckBatch:
    """Model inputs made from validation examples and the run's own probabilities on them."""

    inputs: tuple[torch.Tensor, ...]  # (pixel_values,) or (input_ids, attention_mask)
    reference: np.ndarray  # float32 [N, C] softmax of the run's PyTorch model
    source: str  # e.g. "32 validation images"

    @property
    def size(self) -> int:
        return int(self.reference.shape[0])


def check_batch(predictor: Any, val: tuple[Any, ...], limit: int = CHECK_EXAMPLES) -> CheckBatch:
    """Up to ``limit`` validation examples, transformed exactly as the Predictor does."""
    inputs, source = modality_of(predictor).check_inputs(predictor, val, limit)
    return CheckBatch(inputs, reference_probs(predictor.model, inputs), source)


@torch.inference_mode()
def reference_probs(model: Any, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Softmax probabilities of a Classifier on (pixel_values,) or (input_ids, attention_mask)."""
    if len(inputs) == 2:
        logits = model({"input_ids": inputs[0], "attention_mask": inputs[1]})
    else:
        logits = model(inputs[0])
    return logits.float().softmax(dim=1).cpu().numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def trace_inputs(batch: CheckBatch, pad_id: int = 0) -> tuple[torch.Tensor, ...]:
    """Two examples to trace or export with; texts get extra padding so the traced graph keeps
    the attention mask (a mask of all ones could be optimised away)."""
    first = tuple(t[:2] for t in batch.inputs)
    if first[0].shape[0] < 2:
        first = tuple(torch.cat([t, t]) for t in first)
    if len(first) == 1:
        return first
    ids, mask = first
    pad = 2
    ids = torch.cat([ids, torch.full((ids.shape[0], pad), pad_id, dtype=ids.dtype)], dim=1)
    mask = torch.cat([mask, torch.zeros((mask.shape[0], pad), dtype=mask.dtype)], dim=1)
    return ids, mask


def compare(probs: np.ndarray, batch: CheckBatch, what: str) -> tuple[float, str]:
    """(max |difference|, sentence) of ``probs`` against the reference; raises ExportError when
    they differ by more than TOLERANCE or pick another class."""
    ref = batch.reference
    if probs.shape != ref.shape:
        raise ExportError(
            f"The {what} gives {probs.shape[-1]} class scores for {probs.shape[0]} examples where "
            f"the run gives {ref.shape[-1]} for {ref.shape[0]}; the export is broken."
        )
    diff = float(np.abs(probs.astype(np.float64) - ref).max())
    agree = probs.argmax(1) == ref.argmax(1)
    top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.zeros((len(ref), 2))
    near_tie = (top2[:, 1] - top2[:, 0]) <= 2 * TOLERANCE
    n, same = len(ref), int(agree.sum())
    if diff > TOLERANCE or not np.all(agree | near_tie):
        raise ExportError(
            f"The {what} does not reproduce the run on {batch.source}: probabilities differ by "
            f"up to {diff:.1e} (allowed {TOLERANCE:.0e}) and the predicted class agrees on "
            f"{same} of {n}, so it was not saved; please report this."
        )
    agreement = (
        f"the predicted class agrees on all {n}"
        if same == n
        else f"the predicted class agrees on {same} of {n} (the others are near ties)"
    )
    sentence = (
        f"{what} vs PyTorch on {batch.source}: max probability difference {diff:.1e}; {agreement}."
    )
    return diff, sentence
