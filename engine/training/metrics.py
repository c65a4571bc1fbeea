"""Validation metrics of one epoch, computed with torchmetrics."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_recall,
)


def classification_metrics(
    logits: torch.Tensor, targets: torch.Tensor, classes: tuple[str, ...], prefix: str = "val"
) -> dict[str, float]:
    """Loss, accuracy, macro F1 and per-class recall of ``logits`` against ``targets``."""
    logits = logits.float()
    num_classes = len(classes)
    preds = logits.argmax(dim=1)
    out = {
        f"{prefix}_loss": F.cross_entropy(logits, targets).item(),
        f"{prefix}_accuracy": multiclass_accuracy(
            preds, targets, num_classes=num_classes, average="micro"
        ).item(),
        f"{prefix}_macro_f1": multiclass_f1_score(
            preds, targets, num_classes=num_classes, average="macro"
        ).item(),
    }
    recall = multiclass_recall(preds, targets, num_classes=num_classes, average="none")
    for name, value in zip(classes, recall.tolist(), strict=True):
        out[f"{prefix}_recall/{name}"] = float(value)
    return out
