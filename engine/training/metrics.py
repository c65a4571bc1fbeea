"""Validation metrics of one epoch, computed with scikit-learn.

Not torchmetrics: importing it takes seconds (it imports transformers, torchvision and scipy's
signal module), as long as a whole linear probe on a few hundred images; scikit-learn is
imported anyway for the probe's cross-validation folds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def classification_metrics(
    logits: torch.Tensor, targets: torch.Tensor, classes: tuple[str, ...], prefix: str = "val"
) -> dict[str, float]:
    """Loss, accuracy, macro F1 and per-class recall of ``logits`` against ``targets``.

    Macro F1 averages the classes that occur among the targets or the predictions (a class that
    is in neither has no F1), as torchmetrics' ``multiclass_f1_score`` does."""
    from sklearn.metrics import precision_recall_fscore_support

    logits = logits.float()
    labels = list(range(len(classes)))
    y_true = targets.cpu().numpy()
    y_pred = logits.argmax(dim=1).cpu().numpy()
    _, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    seen = np.isin(labels, np.concatenate([y_true, y_pred]))
    out = {
        f"{prefix}_loss": F.cross_entropy(logits, targets).item(),
        f"{prefix}_accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        f"{prefix}_macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
    }
    for name, value in zip(classes, recall.tolist(), strict=True):
        out[f"{prefix}_recall/{name}"] = float(value)
    return out
