"""Likely label errors: the examples whose given label the data itself contradicts.

Confident learning (Northcutt, Jiang & Chuang 2021), written with scikit-learn (cleanlab is
AGPL): out-of-fold class probabilities of a logistic regression on the frozen backbone's
features, per-class thresholds ``t_j`` (the mean probability of class ``j`` over the examples
labeled ``j``: the "self-confidence" a typical member gets), and an example is flagged when its
given label's probability is below that label's threshold while its most probable class clears
its own. Held-out folds are stratified by class and, when samples carry patient groups, by group
too, so a patient's other images never vouch for one of theirs.

Nothing is relabelled and the dataset folder is only read; the features are cached in the
workspace (``cache/features``), so a second review of the same images costs only the folds. What
was reviewed is kept in the workspace for later runs of the folder to record
(engine/evaluation/review_record.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.task import Task

#: At most this many folds (fewer when a class has fewer examples or patients).
MAX_FOLDS = 5
#: The logistic regression's L2 strength: the probe's default; features are standardised.
REVIEW_C = 1.0
RANKINGS = ("self_confidence", "normalized_margin")


class ReviewError(ValueError):
    """The review cannot run on this dataset; the message says why and what to do."""


@dataclass(frozen=True)
class LabelIssue:
    """One example whose label the data contradicts: its file (relative to the dataset), the
    label it was given, the class the out-of-fold model suggests, that class's probability
    (``confidence``) and the given label's (``self_confidence``)."""

    path: str
    given: str
    suggested: str
    confidence: float
    self_confidence: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`refit scan --review --json`)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LabelReview:
    """The review of a dataset: the top flagged examples, most suspicious first."""

    issues: tuple[LabelIssue, ...]
    flagged: int  # how many examples were flagged in all (``issues`` holds the top ones)
    reviewed: int  # examples reviewed
    folds: int
    grouped: bool  # folds kept each patient (group) on one side
    backbone: str
    thresholds: dict[str, float] = field(default_factory=dict)
    kept: bool = False  # kept in the workspace, for later runs of the folder to record

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`refit scan --review --json`)."""
        return {
            "kept": self.kept,
            "issues": [i.to_dict() for i in self.issues],
            "flagged": self.flagged,
            "reviewed": self.reviewed,
            "folds": self.folds,
            "grouped": self.grouped,
            "backbone": self.backbone,
            "thresholds": self.thresholds,
        }


def review_folds(
    labels: Sequence[int], groups: Sequence[str | None], seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs for out-of-fold predictions.

    Stratified by label; when any sample has a group (a patient), StratifiedGroupKFold keeps
    each group on one side (a sample without a group is a group of its own), so that a patient's
    other images cannot vouch for one of theirs. Empty when a class has fewer than two examples
    (or patients) and no fold could hold one out."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return []
    grouped = any(g is not None for g in groups)
    units = [g if g is not None else f"\0{i}" for i, g in enumerate(groups)]
    per_class = [
        len({u for u, label in zip(units, y, strict=True) if label == c}) if grouped else n
        for c, n in enumerate(np.bincount(y))
        if n > 0
    ]
    k = min(MAX_FOLDS, min(per_class))
    if k < 2:
        return []
    x = np.zeros(len(y))
    if grouped:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return [(a, b) for a, b in splitter.split(x, y, groups=units) if len(a) and len(b)]
    plain = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(plain.split(x, y))


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: Sequence[int],
    classes: int,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    task: Task | None = None,
) -> np.ndarray:
    """Each example's class probabilities from a logistic regression fitted without its fold
    (what ``cross_val_predict(..., method="predict_proba")`` gives, one fold at a time so that a
    cancel stops between folds). A class absent from a fold's training part gets probability 0
    there."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels, dtype=np.int64)
    probs = np.zeros((len(y), classes), dtype=np.float64)
    for done, (train, held) in enumerate(folds):
        if task is not None:
            task.check()
        fit_y = y[train]
        if len(np.unique(fit_y)) == 1:  # one class left: it is all the model can say
            probs[np.ix_(held, np.array([int(fit_y[0])]))] = 1.0
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=REVIEW_C, max_iter=2000))
            model.fit(features[train], fit_y)
            probs[np.ix_(held, model.classes_.astype(np.int64))] = model.predict_proba(
                features[held]
            )
        if task is not None:
            task.report(done + 1, len(folds))
    return probs


def class_thresholds(probs: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """``t_j``: the mean probability of class ``j`` over the examples labeled ``j`` (a class
    without examples gets 1.0, so nothing is suggested into it)."""
    y = np.asarray(labels, dtype=np.int64)
    t = np.ones(probs.shape[1])
    for j in range(probs.shape[1]):
        members = y == j
        if members.any():
            t[j] = float(probs[members, j].mean())
    return t


def rank_label_issues(
    probs: np.ndarray, labels: Sequence[int], *, by: str = "self_confidence"
) -> list[int]:
    """Indices of the flagged examples, most suspicious first.

    Flagged: the given label's probability is below its class threshold and the most probable
    other class reaches its own threshold (an off-diagonal entry of the confident joint).
    ``by``: ``self_confidence`` (the given label's probability, lowest first) or
    ``normalized_margin`` (given minus the best other class, lowest first)."""
    if by not in RANKINGS:
        raise ValueError(f"Unknown ranking {by!r}; choose one of {', '.join(RANKINGS)}.")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return []
    t = class_thresholds(probs, y)
    rows = np.arange(len(y))
    given = probs[rows, y]
    others = probs.copy()
    others[rows, y] = -np.inf
    suggested = others.argmax(1)
    best_other = others[rows, suggested]
    flagged = (given < t[y]) & (best_other >= t[suggested])
    score = given if by == "self_confidence" else given - best_other
    order = np.lexsort((rows, score))  # ties: dataset order, so the list is stable
    return [int(i) for i in order if flagged[i]]


def review_labels(
    index: Any,
    *,
    backbone: str | None = None,
    pretrained: bool = True,
    workspace: str | Path | None = None,
    top: int = 20,
    by: str = "self_confidence",
    num_workers: int = 0,
    dicom_window: str | None = None,
    seed: int = 0,
    task: Task | None = None,
) -> LabelReview:
    """The likely label errors of a scanned image dataset (a DatasetIndex), top ``top`` first.

    The frozen ``backbone`` (the starter when None) computes each image's features once
    (cached in ``workspace``); out-of-fold probabilities then rank the examples the data
    contradicts. ``task`` gets the progress (features, then folds) and its cancel raises
    :class:`engine.task.Cancelled`. Raises :class:`ReviewError` when the dataset cannot be
    reviewed (texts, a fatal scan problem, too few examples per class)."""
    from engine.data.dicom import DEFAULT_WINDOW
    from engine.models.catalog import STARTER

    task = task if task is not None else Task()
    if by not in RANKINGS:
        raise ValueError(f"Unknown ranking {by!r}; choose one of {', '.join(RANKINGS)}.")
    samples = tuple(index.samples)
    fatal = index.fatal_problem()
    if fatal is not None:
        raise ReviewError(f"The labels cannot be reviewed: {fatal.message}")
    if any(not hasattr(s, "path") for s in samples):
        raise ReviewError(
            f"The label review works on images; {index.root} holds texts. Review images instead."
        )
    labels = [s.label for s in samples]
    groups = [s.group for s in samples]
    folds = review_folds(labels, groups, seed)
    if not folds:
        unit = "patients (groups)" if any(g is not None for g in groups) else "images"
        raise ReviewError(
            f"The labels of {index.root} cannot be reviewed: every class needs at least 2 "
            f"{unit} so that each can be predicted by a model that has not seen it; add more."
        )
    name = backbone or STARTER
    features = _features(
        index,
        name,
        pretrained=pretrained,
        workspace=workspace,
        num_workers=num_workers,
        dicom_window=dicom_window or DEFAULT_WINDOW,
        seed=seed,
        task=task.stage(0.0, 0.9),
    )
    probs = out_of_fold_probabilities(
        features, labels, len(index.classes), folds, task=task.stage(0.9, 1.0)
    )
    order = rank_label_issues(probs, labels, by=by)
    t = class_thresholds(probs, labels)
    base = Path(index.root)
    base = base if base.is_dir() else base.parent  # a manifest: paths from its folder
    issues = []
    for i in order[: max(0, top)]:
        given = labels[i]
        others = probs[i].copy()
        others[given] = -np.inf
        suggested = int(others.argmax())
        issues.append(
            LabelIssue(
                path=_relative(samples[i].path, base),
                given=index.classes[given],
                suggested=index.classes[suggested],
                confidence=float(probs[i, suggested]),
                self_confidence=float(probs[i, given]),
            )
        )
    review = LabelReview(
        issues=tuple(issues),
        flagged=len(order),
        reviewed=len(samples),
        folds=len(folds),
        grouped=any(g is not None for g in groups),
        backbone=name,
        thresholds={c: float(t[j]) for j, c in enumerate(index.classes)},
    )
    from engine.evaluation.review_record import save_review

    kept = save_review(workspace, index, review) is not None  # for later runs of the folder
    return dataclasses.replace(review, kept=kept)


def _relative(path: str, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).as_posix()


def _features(
    index: Any,
    backbone: str,
    *,
    pretrained: bool,
    workspace: str | Path | None,
    num_workers: int,
    dicom_window: str,
    seed: int,
    task: Task,
) -> np.ndarray:
    """The frozen backbone's pooled features of every sample (evaluation transform, one view),
    from the workspace's feature cache or computed and stored there."""
    import torch

    from engine.config import DataConfig, DicomWindow, ModelConfig, RunConfig
    from engine.data import ImageDataset
    from engine.data.intensity import resolve_intensity
    from engine.frozen import FrozenForward
    from engine.frozen.keys import backbone_parts, cache_key, weights_stamp
    from engine.modalities import modality_of
    from engine.models import build_model, resolve_entry
    from engine.runs import Workspace
    from engine.training.devices import resolve_placement
    from engine.training.features import cached, extract_features
    from engine.training.loaders import auto_workers, decode_threads

    config = RunConfig(
        seed=seed,
        data=DataConfig(
            path=str(index.root), num_workers=num_workers, dicom_window=DicomWindow(dicom_window)
        ),
        model=ModelConfig(backbone=backbone, pretrained=pretrained),
    ).validate()
    if modality_of(resolve_entry(backbone)).name != "image":
        raise ReviewError(
            f"The label review looks at images with an image model; {backbone} is not one. "
            "Leave --backbone out (the starter) or name an image backbone."
        )
    model = build_model(config.model, len(index.classes))
    intensity = resolve_intensity(str(config.data.intensity), index.intensity)
    model.preprocess = dataclasses.replace(
        model.preprocess, intensity=intensity, dicom_window=dicom_window
    )
    transforms = modality_of(model).transforms(model.preprocess, config.augment)
    if transforms is None:
        raise ReviewError(f"The label review works on images; {backbone} is not an image model.")
    dataset = ImageDataset(index.samples, transforms[0], seed=seed)
    placement = resolve_placement(config.device)
    space = Workspace(workspace)
    key = cache_key(
        {
            "v": 1,
            "what": "label-review",
            "backbone": backbone,
            "pretrained": pretrained,
            "weights": weights_stamp(config),
            "preprocess": repr(model.preprocess),
            "precision": str(placement.precision),
            "runtime": str(config.device.runtime),
            "samples": [s.digest for s in index.samples],
            "torch": torch.__version__,
        }
    )
    forward = FrozenForward(
        model.backbone,
        placement=placement,
        runtime=config.device.runtime,
        cache_dir=space.cache_root / "onnx",
        key_parts=backbone_parts(config, model.preprocess.input_size),
        log=lambda text, level: None,
        what="the frozen backbone",
        channels_last=False,
    )
    workers = auto_workers(num_workers)

    def compute() -> torch.Tensor:
        model.backbone.to(placement.device)
        return extract_features(
            forward,
            dataset,
            placement=placement,
            channels_last=False,
            batch_size=64,
            workers=workers,
            task=task,
            decode_threads=decode_threads(placement.device, dataset),
        )

    path = space.cache_root / "features" / f"review-{key}.safetensors"
    features, _was_cached = cached(path, compute, len(dataset), model.num_features)
    task.report(len(dataset), len(dataset))
    return features.double().numpy()
