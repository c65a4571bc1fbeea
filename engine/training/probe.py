"""The linear probe's fit: a cross-validated logistic regression on cached backbone features.

Replaces the epoch loop when the backbone is frozen. Each ``C`` of the grid is one "epoch":
its mean CV score on the training features, and the validation metrics of the head fitted on
all training features at that ``C`` (shown, never used to choose). A last epoch is the head at
the chosen ``C``; it is the run's best. Everything is deterministic, so a cancelled probe is
simply refit on resume, emitting only the steps and epochs it had not reached.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from engine.events import EpochEnded, StepEnded
from engine.training.context import RunContext
from engine.training.logistic import (
    C_GRID,
    CrossValidation,
    CvPoint,
    LinearFit,
    Standardizer,
    best_point,
    fit_logistic,
    fold_into_linear,
    weighted_loss_accuracy,
)
from engine.training.metrics import classification_metrics
from engine.training.pipeline import FeaturePipeline

#: The value metrics.jsonl records as "lr" for the probe: no learning rate is involved.
NO_LR = 0.0
DEFAULT_C = 1.0
SINGLE_THREAD_ELEMENTS = 8_000_000  # about 6000 images of 1280 features


def probe_plan(ctx: RunContext) -> tuple[int, int]:
    """Epochs (grid points plus the final fit) and steps per epoch (folds) of the probe."""
    from engine.training.logistic import cv_folds

    folds = cv_folds([s.label for s in ctx.data.train], ctx.config.seed)
    return (len(C_GRID) + 1, len(folds)) if folds else (1, 1)


class ProbeFit:
    """Runs the probe of a run whose features ``pipe`` cached, emitting its usual events;
    ``class_weight`` is the loss's class weights (None: unweighted)."""

    def __init__(
        self, ctx: RunContext, pipe: FeaturePipeline, class_weight: torch.Tensor | None
    ) -> None:
        self.t = ctx
        self.pipe = pipe
        self.views = pipe.train_features.detach().double().cpu()
        self.labels = pipe.train_labels.detach().cpu()
        self.classes = ctx.data.classes
        weight = class_weight
        self.class_weight = None if weight is None else weight.detach().double().cpu()
        self.cv = CrossValidation(
            self.views, self.labels, len(self.classes), self.class_weight, ctx.config.seed
        )
        self.epochs, self.steps_per_epoch = probe_plan(ctx)
        self.total_steps = max(1, (self.epochs - 1) * self.steps_per_epoch)
        self.step = 0
        self.epoch = 0

    def run(self) -> None:
        # On features of a few thousand images the fits are many small matrix products: one
        # thread is several times faster than a pool whose threads wait on each other (and on
        # other programs) at every L-BFGS step. Large feature sets keep every thread.
        threads = torch.get_num_threads()
        self.fold_workers = 1
        if self.views.numel() <= SINGLE_THREAD_ELEMENTS:
            torch.set_num_threads(1)
            self.fold_workers = threads  # the cores one-thread fits leave idle: a fold each
        try:
            self._run()
        finally:
            torch.set_num_threads(threads)

    def _run(self) -> None:
        t = self.t
        self._explain()
        x, y = self.cv.rows(torch.arange(len(self.labels)))
        self.scale = Standardizer.fit(x)
        self.x, self.y = self.scale(x), y
        self.w = self.cv.weights(y)
        if not self.cv.folds:
            fit = self._fit_all(DEFAULT_C, None)
            self._emit_epoch(fit, DEFAULT_C, None, final=True)
            return
        points: list[CvPoint] = []
        fits: dict[float, LinearFit] = {}
        previous = None
        for c in C_GRID:
            started = time.monotonic()
            point = self.cv.score(c, after_fold=self._fold_done, workers=self.fold_workers)
            previous = fits[c] = self._fit_all(c, previous)
            points.append(point)
            self._emit_epoch(fits[c], c, point, final=False, started=started)
        chosen = best_point(points)
        t.log(
            f"Linear probe: L2 strength C={chosen.c:g} chosen by {len(self.cv.folds)}-fold "
            f"cross-validation on the training images (CV accuracy {chosen.accuracy:.3f}); "
            "the validation split played no part in the choice."
        )
        self._emit_epoch(fits[chosen.c], chosen.c, chosen, final=True)

    def _explain(self) -> None:
        t, cfg = self.t, self.t.config
        t.log(
            "Linear probe: fitting a logistic-regression head to convergence on standardised "
            "backbone features (L-BFGS); the learning rate, schedule and epochs do not apply."
        )
        if cfg.optim.label_smoothing:
            t.log(
                "Label smoothing does not apply to the logistic-regression probe and is ignored.",
                level="warning",
            )
        if not self.cv.folds:
            t.log(
                "A class has fewer than two training images, so the L2 strength cannot be "
                f"cross-validated; C={DEFAULT_C:g} is used.",
                level="warning",
            )

    def _fit_all(self, c: float, init: LinearFit | None) -> LinearFit:
        return fit_logistic(self.x, self.y, len(self.classes), c, self.w, init=init)

    def _fold_done(self, loss: float, rows_per_second: float) -> None:
        self.step += 1
        t = self.t
        if self.step > t.loop.global_step:
            t.loop.global_step = self.step
            t.emit(
                StepEnded(
                    step=self.step,
                    epoch=self.epoch,
                    total_steps=self.total_steps,
                    loss=loss,
                    lr=NO_LR,
                    samples_per_sec=rows_per_second,
                )
            )
        t.task.check()

    def _emit_epoch(
        self,
        fit: LinearFit,
        c: float,
        point: CvPoint | None,
        *,
        final: bool,
        started: float | None = None,
    ) -> None:
        t = self.t
        epoch = self.epoch
        self.epoch += 1
        if epoch < t.loop.epoch:  # already recorded before a resume
            return
        metrics = self._metrics(fit, c, point)
        if final:
            self._install(fit, metrics, epoch)
        t.loop.epoch = epoch + 1
        t.loop.step_in_epoch = 0
        t.loop.last_metrics = metrics
        t.emit(
            EpochEnded(
                epoch=epoch,
                epochs=self.epochs,
                metrics=metrics,
                is_best=final,
                seconds=time.monotonic() - started if started else 0.0,
            )
        )

    def _metrics(self, fit: LinearFit, c: float, point: CvPoint | None) -> dict[str, float]:
        """The validation metrics of the head at ``c``, its training fit and its CV score."""
        val_x = self.pipe.val_features.detach().double().cpu()
        logits = fit.logits(self.scale(val_x)).float()
        metrics = classification_metrics(logits, self.pipe.val_labels, self.classes)
        loss, acc = weighted_loss_accuracy(fit, self.x, self.y, self.w)
        metrics.update(train_loss=loss, train_accuracy=acc, lr=NO_LR, l2_c=c)
        if point is not None:
            metrics.update(cv_accuracy=point.accuracy, cv_loss=point.loss)
        return metrics

    def _install(self, fit: LinearFit, metrics: dict[str, float], epoch: int) -> None:
        """Fold the standardisation into the head's Linear layer and make it the run's best."""
        t = self.t
        linear = [m for m in t.model.head.modules() if isinstance(m, nn.Linear)][-1]
        fold_into_linear(linear, fit, self.scale)
        # The folded head's own logits: what predicting with the saved checkpoint gives.
        t.best.logits = self.pipe.validation_logits()[0]
        t.best.install(metrics, epoch)
