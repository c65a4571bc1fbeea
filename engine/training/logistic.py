"""Multinomial logistic regression on standardised features, fitted to convergence.

The maths of the linear probe, free of the training loop: standardisation, a full-batch
L-BFGS fit with an L2 penalty (the objective of scikit-learn's ``LogisticRegression``), the
choice of the L2 strength by stratified k-fold cross-validation on the training features only,
and folding the standardisation into a plain ``nn.Linear``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Inverse L2 strengths tried, as scikit-learn's ``C`` (log-spaced, strongest penalty first so
#: that each fit warm-starts from the previous one).
C_GRID: tuple[float, ...] = tuple(float(10.0**k) for k in range(-4, 3))
MAX_FOLDS = 5
MAX_ITER = 100
TOL_GRAD = 1e-5


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and std of the training features (std 1 where a feature is constant)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardizer:
        mean = x.mean(0)
        std = x.std(0, unbiased=False)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        return cls(mean, std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class LinearFit:
    """Weights ``(classes, features)`` and bias of a fitted head, on standardised inputs."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    c: float,
    sample_weight: torch.Tensor | None = None,
    init: LinearFit | None = None,
) -> LinearFit:
    """Minimise ``C * sum_i w_i * CE_i + ||W||^2 / 2`` (bias unpenalised) with full-batch L-BFGS.

    The objective is divided by ``C * sum(w)`` so its scale does not depend on the data size.
    """
    x, y = x.double(), y.long()
    w = torch.ones(len(y), dtype=x.dtype) if sample_weight is None else sample_weight.double()
    total = w.sum()
    if init is None:
        weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype)
        bias = torch.zeros(num_classes, dtype=x.dtype)
    else:
        weight, bias = init.weight.double().clone(), init.bias.double().clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=MAX_ITER,
        tolerance_grad=TOL_GRAD,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        ce = F.cross_entropy(x @ weight.T + bias, y, reduction="none")
        loss = (w * ce).sum() / total + (weight * weight).sum() / (2.0 * c * total)
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearFit(weight.detach(), bias.detach())


def weighted_loss_accuracy(
    fit: LinearFit, x: torch.Tensor, y: torch.Tensor, sample_weight: torch.Tensor | None = None
) -> tuple[float, float]:
    """Cross-entropy (weighted like the fit) and plain accuracy of ``fit`` on ``x``."""
    logits = fit.logits(x.double())
    ce = F.cross_entropy(logits, y.long(), reduction="none")
    w = torch.ones_like(ce) if sample_weight is None else sample_weight.double()
    accuracy = (logits.argmax(1) == y).double().mean().item()
    return (w * ce).sum().item() / w.sum().item(), accuracy


def cv_folds(labels: Sequence[int], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds over the training *images* (so all views of one image share a fold);
    empty when a class has fewer than two images and no fold could hold it out."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(np.asarray(labels))
    smallest = int(counts[counts > 0].min()) if len(labels) else 0
    k = min(MAX_FOLDS, smallest)
    if k < 2:
        return []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), np.asarray(labels)))


@dataclass(frozen=True)
class CvPoint:
    """Mean held-out accuracy and loss over the folds for one ``C``."""

    c: float
    accuracy: float
    loss: float


def best_point(points: Sequence[CvPoint]) -> CvPoint:
    """Highest mean CV accuracy; ties (common on small data) go to the lower CV loss."""
    return max(points, key=lambda p: (round(p.accuracy, 9), -p.loss))


class CrossValidation:
    """Fits one ``C`` at a time on every fold, warm-starting each fold from its previous ``C``.

    ``views`` is ``(V, n, d)``: view 0 is the clean view; other views are augmented copies and
    only ever train. Held-out images are scored on their clean view, as validation is.
    """

    def __init__(
        self,
        views: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        class_weight: torch.Tensor | None,
        seed: int,
    ) -> None:
        self.views, self.labels, self.num_classes = views, labels, num_classes
        self.class_weight = class_weight
        self.folds = cv_folds(labels.tolist(), seed)
        self._warm: dict[int, LinearFit] = {}

    def rows(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All views of images ``idx`` as training rows, with their labels."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        x = self.views[:, idx].reshape(-1, self.views.shape[-1])
        return x, self.labels[idx].repeat(self.views.shape[0])

    def weights(self, y: torch.Tensor) -> torch.Tensor | None:
        return None if self.class_weight is None else self.class_weight[y]

    def score(
        self,
        c: float,
        after_fold: Callable[[float, float], None] = lambda loss, rate: None,
        *,
        workers: int = 1,
    ) -> CvPoint:
        """Mean held-out accuracy and (unweighted) loss at ``c``; ``after_fold`` gets each fold's
        held-out loss and its fit's speed (training rows per second), in fold order.

        ``workers`` > 1 fits that many folds at once in threads (torch releases the GIL in its
        kernels): for single-threaded fits on small feature sets, one fold per core. The folds
        are independent, so the result does not depend on it."""
        folds = list(enumerate(self.folds))
        if workers > 1 and len(folds) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refit-cv") as pool:
                done = list(pool.map(lambda fold: self._fold(c, *fold), folds))
        else:
            done = [self._fold(c, *fold) for fold in folds]
        for loss, _acc, rate in done:
            after_fold(loss, rate)
        return CvPoint(
            c, float(np.mean([d[1] for d in done])), float(np.mean([d[0] for d in done]))
        )

    def _fold(
        self, c: float, i: int, fold: tuple[np.ndarray, np.ndarray]
    ) -> tuple[float, float, float]:
        """(held-out loss, held-out accuracy, training rows per second) of fold ``i`` at ``c``,
        warm-started from this fold's previous fit."""
        train_idx, test_idx = fold
        started = time.perf_counter()
        x, y = self.rows(train_idx)
        scale = Standardizer.fit(x)
        fit = fit_logistic(
            scale(x), y, self.num_classes, c, self.weights(y), init=self._warm.get(i)
        )
        self._warm[i] = fit
        held = torch.as_tensor(test_idx, dtype=torch.long)
        loss, acc = weighted_loss_accuracy(fit, scale(self.views[0, held]), self.labels[held])
        return loss, acc, len(y) / max(time.perf_counter() - started, 1e-9)


def fold_into_linear(linear: nn.Linear, fit: LinearFit, scale: Standardizer) -> None:
    """Set ``linear`` so that ``linear(x) == fit.logits(scale(x))`` on raw features:
    ``W' = W / std`` and ``b' = b - W' @ mean``."""
    weight = fit.weight / scale.std.double()
    bias = fit.bias - weight @ scale.mean.double()
    with torch.no_grad():
        linear.weight.copy_(weight.to(linear.weight.dtype))
        linear.bias.copy_(bias.to(linear.bias.dtype))
