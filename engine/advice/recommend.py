"""The Recommended method: look at the training data, then choose the recipe.

1. One pass over the training images (clean view) records pooled activations at every
   layer-group boundary; a cross-validated logistic probe per depth says how well each depth
   separates the classes, and the last depth's score is what a linear probe would reach.
2. When the probe already separates the classes, the recipe is the linear probe (its features
   are already cached, so the run costs no second pass).
3. Otherwise a few augmented views are recorded at candidate cut points and partial
   fine-tunes (the last 2 groups, then 3, then 4 while going deeper helps) are tried on the
   cached activations, each at the rate a range test suggests, trained on one half of the
   training images and scored on the other, then the other way round (every training image is
   held out once); the linear probe is scored on the same halves. The best wins when it beats
   the probe by more than one held-out image, both there and against the probe's
   cross-validated score on all training images.

Every choice uses the training images only; the validation split is recorded once (for the final
run's caches) and never looked at.

In a job of several processes the recording passes are shared (each rank records every N-th
image, all gathered on every rank: :func:`follow` is the other ranks' part); rank 0 alone scores,
runs the trials and decides (docs/scale-out.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from engine.advice.evidence import Advice, DepthScore
from engine.advice.record import (
    ACTIVATION_BUDGET_BYTES,
    Recording,
    activation_bytes,
    add_views,
    record,
)
from engine.advice.scores import cv_accuracy, holdout_probe, inner_folds
from engine.advice.split import Boundary, verified_boundaries
from engine.advice.trials import (
    BACKBONE_SCALE,
    TRIAL_BATCH,
    WEIGHT_DECAY,
    SuffixModel,
    TrialResult,
    evaluate,
    steps_for,
    train_suffix,
    view_batches,
)
from engine.config import Method, RunConfig, Schedule
from engine.distributed import SINGLE, Dist
from engine.frozen.taps import run_taps
from engine.modalities import modality_of
from engine.task import counting
from engine.training.features import FeedTiming
from engine.training.logistic import C_GRID

#: A linear probe at or above this cross-validated accuracy is kept without trials.
PROBE_GOOD_ENOUGH = 0.93
#: Partial fine-tunes tried: how many backbone groups before the head train.
TRIED_GROUPS = (2, 3, 4)
FINAL_EPOCHS = 12
TRIAL_EPOCHS = FINAL_EPOCHS  # a trial trains as long as the run will, so that it predicts it
AUGMENTED_VIEWS = 5  # besides the clean view, for trials and the final partial fine-tune
MAX_TRIAL_IMAGES = 800  # trials use a stratified subset of larger training sets


class ImageAdvisor:
    """Chooses the recipe of an image run; ``ctx`` is the run's RunContext (data, placement,
    log) or the analysis's own context (``refit advise``)."""

    def __init__(self, ctx: Any, model: Any, transforms: tuple[Callable, Callable]) -> None:
        self.ctx, self.model, self.transforms = ctx, model, transforms
        self.config: RunConfig = ctx.config
        self.started = time.monotonic()
        self.classes = len(ctx.data.classes)
        self.seed = self.config.seed
        # A job of several processes shares the recording passes (``refit advise``: one).
        self.dist: Dist = getattr(ctx, "dist", SINGLE)

    # -- steps ---------------------------------------------------------------------------------

    def advise(self) -> Advice:
        ctx = self.ctx
        ctx.log(
            "Recommended: looking at your training images to choose what to train (the "
            "validation split plays no part in the choice)."
        )
        cuts = self._prepare()
        rec = self._record(cuts, views=1)
        depths = self._depths(rec)
        probe_cv = cv_accuracy(rec.features, rec.labels, self.classes, self.seed, C_GRID)
        ctx.log(_depth_sentence(depths, probe_cv))
        outcome = self._without_trials(cuts, depths, probe_cv, rec)
        self.dist.broadcast(not isinstance(outcome, Advice))  # the others: an augmented pass?
        if isinstance(outcome, Advice):
            return outcome
        folds = outcome
        rec = self._augment(rec, cuts)
        probe_ho = holdout_probe(
            rec.features[: len(rec.labels)], rec.labels, self.classes, folds, self.seed
        )
        trials: list[TrialResult] = []
        curves: dict[str, Any] = {}
        for cut in cuts:
            tried = self._trial_fitting_memory(cut, rec, folds)
            if tried is None:
                break
            result, curve = tried
            if trials and result.accuracy <= max(t.accuracy for t in trials):
                trials.append(result)
                curves[cut.group] = curve
                break  # deeper did not help: deeper still is not tried
            trials.append(result)
            curves[cut.group] = curve
            if self._spent(0.6):
                ctx.log("The time budget leaves no room for more trials.")
                break
        if not trials:
            why = (
                f"A linear probe reaches {probe_cv:.0%} (cross-validated); trying to fine-tune "
                "deeper ran out of memory on this device, so only the head is trained."
            )
            return self._probe(why, depths, probe_cv, probe_ho, [], rec)
        best = max(trials, key=lambda t: (round(t.accuracy, 6), -t.loss, -t.trained_groups))
        # A few hundred held-out images are a noisy judge: fine-tuning must beat the probe on
        # them and its cross-validated score, by more than one image.
        margin = 1.0 / max(1, sum(len(held) for _, held in folds))
        if best.accuracy <= max(probe_ho, probe_cv) + margin:
            why = (
                f"Fine-tuning deeper ({best.accuracy:.0%} on held-out training images) did not "
                f"beat the linear probe ({probe_ho:.0%} on the same images, {probe_cv:.0%} "
                "cross-validated), so only the head is trained."
            )
            return self._probe(why, depths, probe_cv, probe_ho, trials, rec)
        return self._partial(best, depths, probe_cv, probe_ho, trials, curves[best.group], rec)

    def follow(self) -> Recording:
        """A rank other than 0 of a job of several processes: its share of the advisor's
        passes, rank 0 deciding between them (whether augmented views are recorded) and after
        them (the recipe, broadcast by the caller); the recording, gathered, as rank 0's."""
        cuts = self._prepare()
        rec = self._record(cuts, views=1)
        if self.dist.broadcast(None):
            rec = self._augment(rec, cuts)
        return rec

    def _prepare(self) -> list[Boundary]:
        """The boundaries, the cut points and the forward pass both recording passes run."""
        self.bounds, self.shapes = self._boundaries()
        cuts = self._cuts(self.bounds)
        self.taps = run_taps(  # one forward (one exported graph) for both recording passes
            self.ctx,
            self.model,
            full=[c.module for c in cuts],
            pooled=[b.module for b in self.bounds],
            what="the recipe advisor's pass",
        )
        return cuts

    def _without_trials(
        self, cuts: list[Boundary], depths: list[DepthScore], probe_cv: float, rec: Recording
    ) -> Advice | list[tuple[np.ndarray, np.ndarray]]:
        """The linear probe's advice when no trial is to be run, else the trials' folds."""
        if not cuts or math.isnan(probe_cv) or probe_cv >= PROBE_GOOD_ENOUGH:
            why = _probe_reason(probe_cv, bool(cuts))
            return self._probe(why, depths, probe_cv, None, [], rec)
        if self._spent(0.3):
            why = (
                f"A linear probe reaches {probe_cv:.0%} (cross-validated); the time budget "
                "leaves no room to try fine-tuning deeper, so only the head is trained."
            )
            return self._probe(why, depths, probe_cv, None, [], rec)
        folds = inner_folds(rec.labels, self.seed, MAX_TRIAL_IMAGES)
        if folds is None:
            why = (
                f"A linear probe reaches {probe_cv:.0%} (cross-validated); too few training "
                "images per class to try fine-tuning deeper fairly, so only the head is trained."
            )
            return self._probe(why, depths, probe_cv, None, [], rec)
        return folds

    def _spent(self, share: float) -> bool:
        """Whether the run has used more than ``share`` of schedule.time_budget_min."""
        budget = self.config.schedule.time_budget_min * 60
        return bool(budget) and time.monotonic() - self.ctx.started_at > share * budget

    def _boundaries(self) -> tuple[list[Boundary], dict]:
        from engine.data import ImageDataset

        ds = ImageDataset(self.ctx.data.train[:2], self.transforms[0], seed=self.seed)
        images = torch.stack([ds[i][0] for i in range(len(ds))])
        images = images.to(self.ctx.placement.device)
        return verified_boundaries(self.model, images)

    def _cuts(self, bounds: list[Boundary]) -> list[Boundary]:
        """Cut points leaving 2, 3, 4 groups to train, whose activations fit in memory."""
        n = len(self.ctx.data.train)
        views = 1 + AUGMENTED_VIEWS
        cuts = []
        for k in TRIED_GROUPS:
            if len(bounds) < k + 1 or bounds[-(k + 1)].index != len(bounds) - 1 - k:
                continue  # the cut is not verified: its groups are not a plain chain
            cut = bounds[-(k + 1)]
            if activation_bytes(self.shapes, cut.module, n * views) <= ACTIVATION_BUDGET_BYTES:
                cuts.append(cut)
        return cuts

    def _record(self, cuts: list[Boundary], views: int) -> Recording:
        ctx = self.ctx
        from engine.events import StageProgressed

        def progress(done: int, total: int) -> None:
            ctx.emit(StageProgressed(stage="advice", done=done, total=total))

        timing = FeedTiming()
        rec = record(
            self.model,
            list(ctx.data.train),
            list(ctx.data.val),
            transforms=self.transforms,
            boundaries=self.bounds,
            cuts=cuts,
            views=views,
            task=counting(ctx.task, progress),
            timing=timing,
            shard=self.dist,
            **self._pass(),
        )
        ctx.log("Recipe advisor: " + timing.sentence(self.taps.name, self._feeder()))
        return rec

    def _augment(self, rec: Recording, cuts: list[Boundary]) -> Recording:
        """Add ``AUGMENTED_VIEWS`` augmented views to the clean recording (only they run)."""
        self.ctx.log(
            f"The linear probe alone is not enough here; recording {AUGMENTED_VIEWS} augmented "
            "views of each training image to try fine-tuning the last layers."
        )
        ctx = self.ctx
        from engine.events import StageProgressed

        n = len(ctx.data.train)

        def progress(done: int, total: int) -> None:
            ctx.emit(StageProgressed(stage="advice", done=done, total=total))

        timing = FeedTiming()
        rec = add_views(
            self.model,
            rec,
            list(ctx.data.train),
            train_transform=self.transforms[1],
            cuts=cuts,
            views=1 + AUGMENTED_VIEWS,
            # counted after the clean view's n images
            task=counting(ctx.task, progress, offset=n, total=n + n * AUGMENTED_VIEWS),
            timing=timing,
            shard=self.dist,
            **self._pass(),
        )
        ctx.log("Augmented views: " + timing.sentence(self.taps.name, self._feeder()))
        return rec

    def _pass(self) -> dict[str, Any]:
        """What both recording passes run with."""
        ctx = self.ctx
        return {
            "seed": self.seed,
            "placement": ctx.placement,
            "channels_last": ctx.channels_last,
            "workers": ctx.workers,
            "taps": self.taps,
        }

    def _feeder(self) -> str:
        from engine.training.loaders import feeder_text

        return feeder_text(0, self.ctx.workers)

    def _depths(self, rec: Recording) -> list[DepthScore]:
        out = []
        for b in self.bounds:
            x = rec.pooled[b.module]
            score = cv_accuracy(x, rec.labels, self.classes, self.seed)
            out.append(DepthScore(b.group, b.index, int(x.shape[1]), score))
        return out

    def _trial_fitting_memory(self, cut, rec, folds) -> tuple[TrialResult, Any] | None:
        """:meth:`_trial`, or None (and a warning) when it runs out of device memory: the trials
        are optional, the linear probe is already measured."""
        from engine.training.oom import free_device_memory, is_device_oom

        device = self.ctx.placement.device
        try:
            return self._trial(cut, rec, folds)
        except Exception as exc:
            if not is_device_oom(exc, device):
                raise
        free_device_memory(device)  # outside the except block: the failed trial's tensors are gone
        self.ctx.log(
            f"Out of memory on {device.type} while trying to fine-tune the layers after "
            f"{cut.group}; no deeper trials are run.",
            level="warning",
        )
        return None

    def _trial(
        self, cut: Boundary, rec: Recording, folds: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[TrialResult, Any]:
        """Fine-tune the layers after ``cut`` on each half and score it on the other half, at
        the rate a range test on the first half suggests."""
        from engine.advice.lr_finder import lr_range_test

        started = time.monotonic()
        acts, labels = rec.activations[cut.module], rec.labels
        device = self.ctx.placement.device
        suffix = SuffixModel(self.model, cut, self.shapes, device, self.ctx.channels_last)
        batches = view_batches(acts, labels, folds[0][0], self.seed, TRIAL_BATCH)
        criterion = torch.nn.CrossEntropyLoss()
        curve = lr_range_test(
            suffix.model,
            lambda: batches(0),
            suffix,
            lambda logits, y: criterion(logits.float(), y.to(device)),
            groups=suffix.groups(1.0),
            start_lr=1e-6,
            end_lr=1.0,
            steps=40,
            task=self.ctx.task,
        )
        lr = float(np.clip(curve.suggestion or 1e-3, 1e-4, 1e-2))
        correct = np.zeros(TRIAL_EPOCHS + 1)
        loss_sum = 0.0
        for fit_idx, test_idx in folds:
            fold = SuffixModel(self.model, cut, self.shapes, device, self.ctx.channels_last)
            held = acts[0, torch.as_tensor(test_idx)]
            held_y = labels[torch.as_tensor(test_idx)]

            def after_epoch(e: int, fold=fold, held=held, held_y=held_y) -> None:
                correct[e] += evaluate(fold, held, held_y)[0] * len(held_y)

            train_suffix(
                fold,
                view_batches(acts, labels, fit_idx, self.seed, TRIAL_BATCH),
                lr=lr,
                epochs=TRIAL_EPOCHS,
                steps_per_epoch=steps_for(len(fit_idx)),
                task=self.ctx.task,
                after_epoch=after_epoch,
            )
            acc, loss = evaluate(fold, held, held_y)
            correct[TRIAL_EPOCHS] += acc * len(held_y)
            loss_sum += loss * len(held_y)
        total = sum(len(held) for _, held in folds)
        accs = tuple(float(c / total) for c in correct[:TRIAL_EPOCHS])
        acc, loss = float(correct[TRIAL_EPOCHS] / total), loss_sum / total
        k = len(self.bounds) - 1 - cut.index
        result = TrialResult(cut.group, k, lr, acc, loss, accs, time.monotonic() - started)
        self.ctx.log(
            f"Tried fine-tuning the last {k} layer groups (after {cut.group}) at lr {lr:.1e}: "
            f"{acc:.0%} on held-out training images ({result.seconds:.0f} s)."
        )
        return result, curve

    # -- outcomes ------------------------------------------------------------------------------

    def _probe(self, why, depths, probe_cv, probe_ho, trials, rec) -> Advice:
        cfg = self.config
        resolved = cfg.replace(
            adapt=replace(cfg.adapt, method=Method.LINEAR_PROBE, reason=why),
            augment=replace(cfg.augment, cache_views=rec.views),
        )
        return self._advice(resolved, why, depths, probe_cv, probe_ho, trials, rec)

    def _advice(
        self, resolved, why, depths, probe_cv, probe_ho, trials, rec, curve=None, cut=None
    ) -> Advice:
        seconds = time.monotonic() - self.started
        return Advice(resolved, why, depths, probe_cv, probe_ho, trials, curve, cut, seconds, rec)

    def _partial(self, best, depths, probe_cv, probe_ho, trials, curve, rec) -> Advice:
        cfg = self.config
        epochs = self._final_epochs(best)
        why = (
            f"Your images are far from the backbone's pre-training data (a linear probe "
            f"reaches {probe_ho:.0%} on held-out training images and {probe_cv:.0%} "
            f"cross-validated, fine-tuning the last {best.trained_groups} layer groups "
            f"{best.accuracy:.0%}): the last {best.trained_groups} groups are fine-tuned."
        )
        resolved = cfg.replace(
            adapt=replace(
                cfg.adapt,
                method=Method.LAST_N,
                last_n=best.trained_groups,
                cache_prefix=True,
                reason=why,
            ),
            optim=replace(
                cfg.optim, lr=best.lr, backbone_lr_scale=BACKBONE_SCALE, weight_decay=WEIGHT_DECAY
            ),
            schedule=replace(
                cfg.schedule,
                epochs=epochs,
                batch_size=TRIAL_BATCH,
                schedule=Schedule.ONE_CYCLE,
                warmup_fraction=0.25,
            ),
            augment=replace(cfg.augment, cache_views=rec.views),
        )
        return self._advice(
            resolved, why, depths, probe_cv, probe_ho, trials, rec, curve, best.group
        )

    def _final_epochs(self, best: TrialResult) -> int:
        """FINAL_EPOCHS, fewer when the time budget cannot hold them (from the trial's speed)."""
        budget = self.config.schedule.time_budget_min * 60
        if budget <= 0:
            return FINAL_EPOCHS
        n = len(self.ctx.data.train)
        trial_images = max(1, TRIAL_EPOCHS * min(n, MAX_TRIAL_IMAGES))  # two halves per epoch
        per_epoch = best.seconds / trial_images * n * 1.2  # validation and checkpoints
        left = budget - (time.monotonic() - self.ctx.started_at)
        return int(max(1, min(FINAL_EPOCHS, left // max(per_epoch, 1e-3))))


def _depth_sentence(depths: list[DepthScore], probe_cv: float) -> str:
    if math.isnan(probe_cv):
        return "Too few training images per class to cross-validate a probe."
    depths = [d for d in depths if not math.isnan(d.cv_accuracy)]
    best = max(depths, key=lambda d: d.cv_accuracy) if depths else None
    text = f"A linear probe on the pretrained features reaches {probe_cv:.0%} (cross-validated)"
    if best is not None:
        text += f"; the best depth is after {best.group} ({best.cv_accuracy:.0%})"
    return text + "."


def _probe_reason(probe_cv: float, could_cut: bool, unit: str = "images") -> str:
    if math.isnan(probe_cv):
        return f"Too few training {unit} per class to compare recipes: only the head is trained."
    if not could_cut:
        return (
            f"A linear probe reaches {probe_cv:.0%} (cross-validated) and this backbone cannot "
            "be cut for cheap trials: only the head is trained."
        )
    what = "classes" if unit == "images" else unit
    return (
        f"The pretrained features already separate your {what} ({probe_cv:.0%} "
        f"cross-validated on the training {unit}): only the head is trained."
    )


def recommend(ctx: Any, model: Any) -> Advice:
    """The resolved recipe of a run whose method is auto (``ctx`` is the run's RunContext, set
    up up to its data, placement and intensity, or ``refit advise``'s context; ``model`` is the
    classifier, nothing frozen yet)."""
    from engine.models import apply_freeze

    body = [g.name for g in model.groups if g.name != "head"]
    apply_freeze(model, body)  # the advisor only runs the pretrained network forward
    try:
        advice: Advice = modality_of(model).advise(ctx, model)
        return advice
    finally:
        apply_freeze(model, [])


def follow(ctx: Any, model: Any) -> Recording | None:
    """A rank other than 0 of a job whose method is auto: its share of the image advisor's
    passes over the training images (rank 0, running :func:`recommend`, decides); the
    gathered recording, or None for texts (rank 0 advises alone)."""
    from engine.models import apply_freeze

    if modality_of(model).name != "image":
        return None
    body = [g.name for g in model.groups if g.name != "head"]
    apply_freeze(model, body)
    try:
        transforms = modality_of(model).transforms(model.preprocess, ctx.config.augment)
        assert transforms is not None, "an image modality has transforms"
        return ImageAdvisor(ctx, model, transforms).follow()
    finally:
        apply_freeze(model, [])


def recommend_image(ctx: Any, model: Any) -> Advice:
    """Images: the ImageAdvisor's trials on the training data."""
    transforms = modality_of(model).transforms(model.preprocess, ctx.config.augment)
    assert transforms is not None, "an image modality has transforms"
    return ImageAdvisor(ctx, model, transforms).advise()


def recommend_text(ctx: Any, model: Any) -> Advice:
    """Texts: the linear probe when its cross-validated accuracy is high, else LoRA adapters
    (or the last two groups when the backbone takes no adapter)."""
    from engine.models.lora import default_lora_targets
    from engine.training.text_pipeline import TextFeaturePipeline, text_epochs

    started = time.monotonic()
    cfg = ctx.config
    if not getattr(ctx, "max_length", 0):
        from engine.models.text import token_limit

        ctx.max_length = token_limit(model.tokenizer, model.backbone, cfg.data.max_length)
    ctx.model = model
    pipe = TextFeaturePipeline(ctx, alone=True)  # a job's rank 0 advises by itself
    pipe.prepare()  # cached on disk: a linear probe chosen below reuses these features
    feats = pipe.train_features.reshape(-1, pipe.train_features.shape[-1]).cpu()
    labels = pipe.train_labels.cpu()
    probe_cv = cv_accuracy(feats, labels, len(ctx.data.classes), cfg.seed, C_GRID)
    ctx.model = None
    cfg = cfg.replace(schedule=replace(cfg.schedule, epochs=text_epochs(len(ctx.data.train))))
    if math.isnan(probe_cv) or probe_cv >= PROBE_GOOD_ENOUGH:
        why = _probe_reason(probe_cv, True, unit="texts")
        resolved = cfg.replace(adapt=replace(cfg.adapt, method=Method.LINEAR_PROBE, reason=why))
        return Advice(resolved, why, probe_cv=probe_cv, seconds=time.monotonic() - started)
    if default_lora_targets(model):
        why = (
            f"A linear probe on the pretrained features reaches only {probe_cv:.0%} "
            "(cross-validated): low-rank adapters are trained inside the transformer."
        )
        resolved = cfg.replace(adapt=replace(cfg.adapt, method=Method.LORA, reason=why))
    else:
        why = (
            f"A linear probe on the pretrained features reaches only {probe_cv:.0%} "
            "(cross-validated): the last 2 layer groups are fine-tuned."
        )
        resolved = cfg.replace(adapt=replace(cfg.adapt, method=Method.LAST_N, last_n=2, reason=why))
    return Advice(resolved, why, probe_cv=probe_cv, seconds=time.monotonic() - started)
