"""Honest warnings about a finished run: a model that calls every image one class, or whose
balanced accuracy is within what guessing reaches on a validation set of this size.

Both are judged on the best epoch's validation logits (the checkpoint a user keeps). "Near
chance" is a one-sided test at the 5 % level: a classifier that guesses has balanced accuracy
1/K on average, with standard deviation sqrt(sum_c p(1-p)/n_c) / K (p = 1/K, n_c images of class
c); a run is flagged when its balanced accuracy is not above 1/K + 1.645 of those deviations.
On 45 validation images of two classes that bar is about 62 %; on 1000 it is about 53 %.
"""

from __future__ import annotations

import math

import torch

from engine.modalities import modality_of

Z_ONE_SIDED_5PCT = 1.645

_TRY = (
    "try a method that trains more of the backbone (--method last-2 or full), more epochs or a "
    "higher learning rate, {intensity}or more examples per class"
)
_INTENSITY = "data.intensity 'percentile' if the images look dark or flat, "


def _what_to_try(modality: str) -> str:
    return _TRY.format(intensity=_INTENSITY if modality_of(modality).has_intensity else "")


def chance_bar(counts: list[int]) -> float:
    """Balanced accuracy a guessing classifier stays below 95 % of the time."""
    present = [n for n in counts if n > 0]
    k = len(counts)
    if k < 2 or not present:
        return 1.0
    p = 1.0 / k
    sd = math.sqrt(sum(p * (1 - p) / n for n in present)) / len(present)
    return p + Z_ONE_SIDED_5PCT * sd


def balanced_accuracy(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """Mean recall over the classes present in ``targets``."""
    recalls = [
        float((preds[targets == c] == c).float().mean())
        for c in range(num_classes)
        if bool((targets == c).any())
    ]
    return sum(recalls) / len(recalls) if recalls else 0.0


def run_warnings(
    logits: torch.Tensor,
    targets: torch.Tensor,
    classes: tuple[str, ...],
    modality: str = "image",
) -> list[str]:
    """Sentences saying the model learned nothing useful, with what to try ([] when it did);
    ``modality`` ("image" or "text") names what was classified."""
    k = len(classes)
    items = modality_of(modality).noun
    to_try = _what_to_try(modality)
    targets = targets.cpu()
    if k < 2 or len(torch.unique(targets)) < 2:
        return []  # one class in validation: nothing to judge (the scan already says so)
    preds = logits.float().argmax(dim=1).cpu()
    n = len(targets)
    used = torch.unique(preds).tolist()
    if len(used) == 1:
        name = classes[int(used[0])]
        return [
            f"The model predicts '{name}' for every one of the {n} validation {items}: it learned "
            f"nothing useful; {to_try}."
        ]
    counts = [int((targets == c).sum()) for c in range(k)]
    bal = balanced_accuracy(preds, targets, k)
    bar = chance_bar(counts)
    if bal <= bar:
        return [
            f"Balanced accuracy {100 * bal:.0f}% is within what guessing reaches on {n} "
            f"validation {items} of {k} classes (chance is {100 / k:.0f}%, the bar "
            f"{100 * bar:.0f}%): the model may have learned nothing useful; {to_try}."
        ]
    return []
