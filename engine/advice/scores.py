"""The scores the Recommended method compares, all on training images: a cross-validated probe
per depth, and the probe on two held-out halves (the same halves the fine-tune trials use)."""

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
    feats: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> float:
    """The linear probe fitted on each fold's first part (C by inner CV), scored on its second:
    the share of all held-out images it gets right."""
    correct = total = 0
    for fit_idx, test_idx in folds:
        xf, yf = feats[fit_idx].double(), y[fit_idx]
        cv = CrossValidation(xf.unsqueeze(0), yf, classes, None, seed)
        c = best_point([cv.score(c) for c in C_GRID]).c if cv.folds else 1.0
        scale = Standardizer.fit(xf)
        fit = fit_logistic(scale(xf), yf, classes, c)
        pred = fit.logits(scale(feats[test_idx].double())).argmax(1)
        correct += int((pred == y[test_idx]).sum())
        total += len(test_idx)
    return correct / max(1, total)


def inner_folds(
    labels: torch.Tensor, seed: int, limit: int
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Two stratified halves of (at most ``limit``) training images, as (fit, held-out) pairs:
    each image is held out once. None when a class has fewer than 4 images (a half could not
    both train on and hold out two of them)."""
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    y = labels.numpy()
    n = len(y)
    size = min(n, limit)
    counts = np.bincount(y)
    if not (counts > 0).any() or counts[counts > 0].min() < 4:
        return None
    pick = np.arange(n)
    if size < n:
        keep = StratifiedShuffleSplit(1, train_size=size, random_state=seed)
        pick = next(keep.split(np.zeros(n), y))[0]
    halves = StratifiedKFold(2, shuffle=True, random_state=seed + 1)
    try:
        return [(pick[a], pick[b]) for a, b in halves.split(np.zeros(size), y[pick])]
    except ValueError:  # a class too small in the subset
        return None
