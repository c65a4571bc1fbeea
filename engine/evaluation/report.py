"""The evaluation report of one run on one split: metrics, curves, calibration, operating point.

Metrics come from scikit-learn (the calibration error is binned as torchmetrics bins it); this
module only arranges them. Everything is JSON-safe: NaN (an AUC of a class absent from the
split) is stored as null and read back as NaN.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluation.curves import (
    Calibration,
    Curve,
    calibration,
    class_index,
    pr_of,
    roc_of,
)
from engine.evaluation.intervals import Intervals, counted_intervals, intervals_of
from engine.evaluation.predictions import (
    PredictionError,
    SplitPredictions,
    check_split,
    load_predictions,
    predictions_path,
    saved_predictions,
    split_groups,
)
from engine.files import read_json_object, write_json_atomic
from engine.runs import RunDir
from engine.task import Task

__all__ = [
    "Calibration",
    "ClassMetrics",
    "Curve",
    "Evaluation",
    "Intervals",
    "OperatingPoint",
    "evaluate",
    "evaluate_run",
    "evaluation_path",
    "examples_in_cell",
    "load_evaluation",
    "load_predictions",
    "missing_classes_warning",
    "operating_point",
]

_FORMAT = 1


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (0 where undefined) and its number of examples."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int

    @property
    def measured(self) -> bool:
        """False when the split has no example of the class: its numbers mean nothing."""
        return self.support > 0


@dataclass(frozen=True)
class OperatingPoint:
    """A two-class decision rule "positive when P(positive) >= threshold" and how it does."""

    threshold: float
    sensitivity: float
    specificity: float
    precision: float
    tp: int
    fp: int
    tn: int
    fn: int


@dataclass(frozen=True)
class Evaluation:
    """How well a run does on one split.

    ``intervals`` holds the 95 % confidence interval of every number (None only when built by
    hand); an evaluation saved before intervals existed gets the Wilson ones from its counts
    when read, and notes saying to evaluate again for the bootstrap ones."""

    run_id: str
    split: str
    checkpoint: str
    created: str
    classes: tuple[str, ...]
    n: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]
    roc: dict[str, Curve]
    pr: dict[str, Curve]
    calibration: Calibration
    positive: str | None
    operating: OperatingPoint | None
    modality: str = "image"
    intervals: Intervals | None = None
    #: subgroup tables, one JSON-ready dict per attribute (engine.evaluation.subgroups makes
    #: them; plain dicts here so that the report needs nothing of that module)
    subgroups: tuple[dict[str, Any], ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """Sentences about what the numbers cannot show (a class without examples)."""
        missing = [c.name for c in self.per_class if not c.measured]
        return (missing_classes_warning(self.split, missing),) if missing else ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""
        return {
            "format": _FORMAT,
            "run_id": self.run_id,
            "split": self.split,
            "checkpoint": self.checkpoint,
            "created": self.created,
            "modality": self.modality,
            "classes": list(self.classes),
            "n": self.n,
            "accuracy": _out(self.accuracy),
            "balanced_accuracy": _out(self.balanced_accuracy),
            "macro_f1": _out(self.macro_f1),
            "per_class": [_plain(c) for c in self.per_class],
            "confusion": [list(row) for row in self.confusion],
            "roc": {k: _plain(c) for k, c in self.roc.items()},
            "pr": {k: _plain(c) for k, c in self.pr.items()},
            "calibration": _plain(self.calibration),
            "positive": self.positive,
            "operating": _plain(self.operating) if self.operating else None,
            "warnings": list(self.warnings),  # derived; from_dict recomputes it
            "intervals": self.intervals.to_dict() if self.intervals else None,
            "subgroups": [dict(t) for t in self.subgroups],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        """The inverse of :meth:`to_dict`."""
        cal = d["calibration"]
        ev = cls(
            run_id=d["run_id"],
            split=d["split"],
            checkpoint=d["checkpoint"],
            created=d["created"],
            modality=d.get("modality", "image"),
            classes=tuple(d["classes"]),
            n=int(d["n"]),
            accuracy=_in(d["accuracy"]),
            balanced_accuracy=_in(d["balanced_accuracy"]),
            macro_f1=_in(d["macro_f1"]),
            per_class=tuple(
                ClassMetrics(
                    name=c["name"],
                    precision=_in(c["precision"]),
                    recall=_in(c["recall"]),
                    f1=_in(c["f1"]),
                    support=int(c["support"]),
                )
                for c in d["per_class"]
            ),
            confusion=tuple(tuple(int(v) for v in row) for row in d["confusion"]),
            roc={k: _curve(c) for k, c in d["roc"].items()},
            pr={k: _curve(c) for k, c in d["pr"].items()},
            calibration=Calibration(
                confidence=[_in(v) for v in cal["confidence"]],
                accuracy=[_in(v) for v in cal["accuracy"]],
                count=[int(v) for v in cal["count"]],
                ece=_in(cal["ece"]),
            ),
            positive=d["positive"],
            operating=OperatingPoint(**{k: _in(v) for k, v in d["operating"].items()})
            if d.get("operating")
            else None,
        )
        saved = d.get("subgroups")
        tables = tuple(t for t in saved if isinstance(t, dict)) if isinstance(saved, list) else ()
        return dataclasses.replace(
            ev, intervals=_intervals_in(d.get("intervals"), ev), subgroups=tables
        )

    def metrics_of(self, name: str) -> ClassMetrics:
        """The per-class metrics of class ``name``."""
        return next(c for c in self.per_class if c.name == name)


_SPLIT_WORDS = {"val": "validation", "test": "test", "train": "training"}


def missing_classes_warning(split: str, names: list[str]) -> str:
    """The sentence said when ``split`` has no example of the classes ``names``."""
    what = _SPLIT_WORDS.get(split, split)
    listed = ", ".join(f"'{n}'" for n in names)
    one = len(names) == 1
    return (
        f"The {what} split has no example{'' if one else 's'} of the class{'' if one else 'es'} "
        f"{listed}, so its accuracy says nothing about {'that class' if one else 'them'} and "
        f"{'its' if one else 'their'} precision, recall and F1 are not measured; give the split "
        f"examples of every class (or a larger {what} share) and evaluate again."
    )


# -- computing ----------------------------------------------------------------------------------


def evaluate(
    preds: SplitPredictions,
    *,
    positive: str | None = None,
    groups: Sequence[str] | None = None,
) -> Evaluation:
    """Every metric of the report, with its 95 % confidence interval, from one set of
    predictions.

    Two-class problems get a positive class: ``positive``, else the minority class of the run's
    training split (ties: the second class), with ROC/PR curves for it only and the operating
    point at threshold 0.5. ``groups`` (one id per example, in the predictions' order, e.g. a
    patient) is what the bootstrap intervals resample; without it each example is its own group.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    y, p, k = preds.labels, preds.preds, len(preds.classes)
    labels = list(range(k))
    pos = positive_class(preds, positive)
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": the score is still the one wanted.
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(y, p))
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    curve_classes = [pos] if pos is not None else list(preds.classes)
    confusion = tuple(tuple(int(v) for v in row) for row in confusion_matrix(y, p, labels=labels))
    operating = operating_point(preds, pos, 0.5) if pos is not None else None
    return Evaluation(
        run_id=preds.run_id,
        split=preds.split,
        checkpoint=preds.checkpoint,
        created=datetime.now().isoformat(timespec="seconds"),
        modality=preds.modality,
        classes=tuple(preds.classes),
        n=preds.n,
        accuracy=float(accuracy_score(y, p)),
        balanced_accuracy=balanced,
        macro_f1=float(f1_score(y, p, average="macro", zero_division=0)),
        per_class=tuple(
            ClassMetrics(name, float(prec[i]), float(rec[i]), float(f1[i]), int(support[i]))
            for i, name in enumerate(preds.classes)
        ),
        confusion=confusion,
        roc={c: roc_of(preds, c) for c in curve_classes},
        pr={c: pr_of(preds, c) for c in curve_classes},
        calibration=calibration(preds),
        positive=pos,
        operating=operating,
        intervals=intervals_of(preds, confusion, curve_classes, operating, groups),
    )


def positive_class(preds: SplitPredictions, positive: str | None = None) -> str | None:
    """The positive class of a two-class problem (None for more classes)."""
    classes = preds.classes
    if positive is not None:
        if positive not in classes:
            raise PredictionError(
                f"'{positive}' is not a class of run {preds.run_id}; its classes are "
                f"{', '.join(classes)}."
            )
        if len(classes) != 2:
            raise PredictionError(
                f"A positive class applies to two-class runs; run {preds.run_id} has "
                f"{len(classes)} classes."
            )
        return positive
    if len(classes) != 2:
        return None
    counts = preds.train_counts or tuple(np.bincount(preds.labels, minlength=2).tolist())
    return classes[0] if counts[0] < counts[1] else classes[1]


def operating_point(preds: SplitPredictions, positive: str, threshold: float) -> OperatingPoint:
    """Counts and rates of "``positive`` when P(positive) >= threshold" (0 where undefined).

    Plain boolean counts (the tests check them against scikit-learn's confusion_matrix): the app's
    threshold slider calls this on every move, and sklearn's input checks cost 5-15 ms on 10k
    examples where counting takes a fraction of a millisecond."""
    k = class_index(preds, positive)
    truth = preds.labels == k
    called = preds.probs[:, k] >= threshold
    tp = int(np.count_nonzero(truth & called))
    fp = int(np.count_nonzero(~truth & called))
    fn = int(np.count_nonzero(truth & ~called))
    tn = int(np.count_nonzero(~truth & ~called))
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        precision=_ratio(tp, tp + fp),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )


def examples_in_cell(preds: SplitPredictions, true: int, predicted: int) -> list[int]:
    """Indices of the examples of class ``true`` predicted as ``predicted``, the most confident
    (highest probability of ``predicted``) first; ties keep split order."""
    cell = np.flatnonzero((preds.labels == true) & (preds.preds == predicted))
    order = np.argsort(-preds.probs[cell, predicted], kind="stable")
    return [int(i) for i in cell[order]]


# -- a run's saved evaluations ------------------------------------------------------------------


def evaluation_path(run: RunDir, split: str = "val") -> Path:
    """runs/<id>/evaluation/<split>.json"""
    return run.path / "evaluation" / f"{split}.json"


def evaluate_run(
    run: RunDir,
    split: str = "val",
    *,
    allow_test: bool = False,
    checkpoint: str = "best",
    positive: str | None = None,
    device: str = "cpu",
    task: Task | None = None,
    reuse: bool = True,
    runtime: str = "auto",
    groups: Sequence[str] | None = None,
    notes: list[str] | None = None,
) -> Evaluation:
    """Predict ``split``, evaluate and save runs/<id>/evaluation/<split>.json and
    <split>-predictions.npz. With ``reuse``, predictions saved from the same checkpoint file are
    used instead of predicting again. ``groups``: see :func:`evaluate`. ``notes`` gets the
    sentences that say where the predictions ran (onnxruntime or torch, and why)."""
    from engine.evaluation.predictions import predict_split

    check_split(run, split, allow_test=allow_test)
    preds = saved_predictions(run, split, checkpoint) if reuse else None
    if preds is None:
        preds = predict_split(
            run,
            split,
            allow_test=allow_test,
            checkpoint=checkpoint,
            device=device,
            task=task,
            runtime=runtime,
            notes=notes,
        )
        preds.save(predictions_path(run, split))
    return save_evaluation(run, preds, positive=positive, groups=groups)


def save_evaluation(
    run: RunDir,
    preds: SplitPredictions,
    *,
    positive: str | None = None,
    groups: Sequence[str] | None = None,
) -> Evaluation:
    """Evaluate ``preds`` and write runs/<id>/evaluation/<split>.json (atomically).

    ``groups`` None: the run's own patient groups (the salted hashes of splits.json), so the
    bootstrap intervals resample patients, not images, whenever the run was split by group."""
    if groups is None:
        groups = split_groups(run, preds)
    result = evaluate(preds, positive=positive, groups=groups)
    write_json_atomic(evaluation_path(run, preds.split), result.to_dict())
    return result


def load_evaluation(run: RunDir, split: str = "val") -> Evaluation | None:
    """The saved evaluation of ``split``, or None when there is none, or when it cannot be read
    (the run list names a damaged one; evaluating again rewrites it)."""
    try:
        return Evaluation.from_dict(read_json_object(evaluation_path(run, split)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
        return None  # UnreadableFileError is a ValueError


# -- JSON helpers -------------------------------------------------------------------------------


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _out(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _in(v: Any) -> Any:
    return math.nan if v is None else v


def _plain(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        out[key] = [_out(v) for v in value] if isinstance(value, list) else _out(value)
    return out


def _intervals_in(d: Any, ev: Evaluation) -> Intervals:
    """The saved intervals; for an evaluation saved before them (or with them damaged), the
    Wilson ones from its counts, the bootstrap ones marked as needing a new evaluation."""
    if isinstance(d, dict):
        try:
            return Intervals.from_dict(d)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return counted_intervals(ev.classes, ev.confusion, list(ev.roc), ev.operating)


def _curve(c: dict[str, Any]) -> Curve:
    return Curve(
        x=[_in(v) for v in c["x"]],
        y=[_in(v) for v in c["y"]],
        thresholds=[_in(v) for v in c["thresholds"]],
        auc=_in(c["auc"]),
    )
