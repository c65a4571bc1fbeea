"""ROC and precision-recall curves (one class against the rest) and calibration bins."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.evaluation.predictions import PredictionError, SplitPredictions

if TYPE_CHECKING:
    import torch

N_BINS = 15
MAX_POINTS = 500
#: threshold of a curve's first point: above every probability, so nothing is called positive
ABOVE_ONE = math.nextafter(1.0, 2.0)


@dataclass(frozen=True)
class Curve:
    """ROC (x: false positive rate, y: true positive rate, auc: ROC AUC) or precision-recall
    (x: recall, y: precision, auc: average precision) curve, from the strictest threshold to the
    loosest. ``thresholds[i]`` gives point i ("positive when P >= threshold"). Empty with
    auc = NaN when the split lacks the class (or, for ROC, has nothing else)."""

    x: list[float]
    y: list[float]
    thresholds: list[float]
    auc: float


@dataclass(frozen=True)
class Calibration:
    """15 equal-width bins of the predicted class's probability: mean confidence, accuracy and
    number of examples per bin (NaN for an empty bin), and the expected calibration error."""

    confidence: list[float]
    accuracy: list[float]
    count: list[int]
    ece: float


def class_index(preds: SplitPredictions, name: str) -> int:
    """Index of class ``name``; PredictionError when the run has no such class."""
    try:
        return preds.classes.index(name)
    except ValueError:
        raise PredictionError(
            f"'{name}' is not a class of run {preds.run_id}; its classes are "
            f"{', '.join(preds.classes)}."
        ) from None


def roc_of(preds: SplitPredictions, name: str) -> Curve:
    """One-vs-rest ROC curve of class ``name`` (AUC on the full curve, points thinned)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    k = class_index(preds, name)
    truth, score = preds.labels == k, preds.probs[:, k]
    if truth.all() or not truth.any():
        return Curve([], [], [], math.nan)
    fpr, tpr, thresholds = roc_curve(truth, score)
    auc = float(roc_auc_score(truth, score))
    return _thinned(fpr, tpr, np.minimum(thresholds, ABOVE_ONE), auc)


def pr_of(preds: SplitPredictions, name: str) -> Curve:
    """One-vs-rest precision-recall curve of ``name``, by increasing recall (AP on the full
    curve)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    k = class_index(preds, name)
    truth, score = preds.labels == k, preds.probs[:, k]
    if not truth.any():
        return Curve([], [], [], math.nan)
    precision, recall, thresholds = precision_recall_curve(truth, score)
    ap = float(average_precision_score(truth, score))
    # scikit-learn goes from the loosest threshold to the strictest; its last point (recall 0,
    # precision 1) has no threshold: nothing is called positive there.
    thresholds = np.append(thresholds, ABOVE_ONE)
    return _thinned(recall[::-1], precision[::-1], thresholds[::-1], ap)


def _thinned(x: np.ndarray, y: np.ndarray, t: np.ndarray, auc: float) -> Curve:
    """At most MAX_POINTS evenly spaced points, both ends kept."""
    n = len(x)
    keep = np.arange(n)
    if n > MAX_POINTS:
        keep = np.unique(np.round(np.linspace(0, n - 1, MAX_POINTS)).astype(np.int64))
    return Curve(
        x=[float(v) for v in x[keep]],
        y=[float(v) for v in y[keep]],
        thresholds=[float(v) for v in t[keep]],
        auc=auc,
    )


def calibration(preds: SplitPredictions) -> Calibration:
    """Reliability bins of the top probability and the ECE (15 bins, l1).

    The ECE is sum(count/n * |accuracy - confidence|) over the bins, binned as torchmetrics'
    ``multiclass_calibration_error`` bins (a test holds them equal): it gives a confidence of
    exactly 1.0 a bin of its own, which the reliability bins here join to the last bin.
    Computed here because importing torchmetrics takes seconds, more than a whole evaluation.
    """
    import torch

    conf = torch.from_numpy(preds.confidence.astype(np.float32))
    edges = torch.linspace(0, 1, N_BINS + 1, dtype=torch.float32)
    bins = (torch.bucketize(conf, edges, right=True) - 1).clamp(0, N_BINS - 1).numpy()
    correct = preds.correct
    confidence, accuracy, count = [], [], []
    for b in range(N_BINS):
        inside = bins == b
        n = int(inside.sum())
        count.append(n)
        confidence.append(float(conf.numpy()[inside].mean()) if n else math.nan)
        accuracy.append(float(correct[inside].mean()) if n else math.nan)
    return Calibration(confidence, accuracy, count, _ece(conf, correct, edges))


def _ece(conf: torch.Tensor, correct: np.ndarray, edges: torch.Tensor) -> float:
    """torchmetrics' l1 calibration error: bins from bucketize(right=True), 1.0 alone."""
    import torch

    index = torch.bucketize(conf, edges, right=True) - 1
    size = len(edges)
    hits = torch.from_numpy(np.asarray(correct, np.float32))
    count = torch.zeros(size).scatter_add_(0, index, torch.ones_like(conf))
    conf_sum = torch.zeros(size).scatter_add_(0, index, conf)
    hit_sum = torch.zeros(size).scatter_add_(0, index, hits)
    filled = count > 0
    gap = (hit_sum[filled] / count[filled] - conf_sum[filled] / count[filled]).abs()
    return float((gap * count[filled] / count.sum()).sum()) if len(conf) else 0.0
