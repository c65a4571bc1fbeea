"""The scores the Recommended method compares, all on training images: a cross-validated probe
per depth, the probe on a held-out quarter, and that quarter."""

from __future__ import annotations

import numpy as np
import torch

from engine.training.logistic import (
    C_GRID,
    CrossValidation,
    Standardizer,
    best_point,
    fit_logistic,
)

DEPTH_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def cv_accuracy(x: torch.Tensor, y: torch.Tensor, classes: int, seed: int, grid=DEPTH_C) -> float:
    """Best mean held-out accuracy over ``grid`` of a standardised logistic probe on ``x``."""
    cv = CrossValidation(x.double().unsqueeze(0), y, classes, None, seed)
    if not cv.folds:
        return float("nan")
    return best_point([cv.score(c) for c in grid]).accuracy


def holdout_probe(
    feats: torch.Tensor, y: torch.Tensor, classes: int, fit_idx, test_idx, seed: int
) -> float:
    """The linear probe fitted on ``fit_idx`` (C by inner CV), scored on ``test_idx``."""
    xf, yf = feats[fit_idx].double(), y[fit_idx]
    cv = CrossValidation(xf.unsqueeze(0), yf, classes, None, seed)
    c = best_point([cv.score(c) for c in C_GRID]).c if cv.folds else 1.0
    scale = Standardizer.fit(xf)
    fit = fit_logistic(scale(xf), yf, classes, c)
    pred = fit.logits(scale(feats[test_idx].double())).argmax(1)
    return (pred == y[test_idx]).double().mean().item()


def inner_split(
    labels: torch.Tensor, seed: int, limit: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """A stratified three-quarters / one-quarter split of (at most ``limit``) training images;
    None when a class has too few images for both parts to hold it."""
    from sklearn.model_selection import StratifiedShuffleSplit

    y = labels.numpy()
    n = len(y)
    size = min(n, limit)
    counts = np.bincount(y)
    classes = int((counts > 0).sum())
    if not classes or counts[counts > 0].min() < 4:
        return None
    if round(0.25 * size) < classes or size - round(0.25 * size) < classes:
        return None
    pick = np.arange(n)
    if size < n:
        keep = StratifiedShuffleSplit(1, train_size=size, random_state=seed)
        pick = next(keep.split(np.zeros(n), y))[0]
    split = StratifiedShuffleSplit(1, test_size=0.25, random_state=seed + 1)
    try:
        a, b = next(split.split(np.zeros(size), y[pick]))
    except ValueError:  # a class too small in the subset
        return None
    return pick[a], pick[b]
