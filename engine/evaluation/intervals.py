"""95 % confidence intervals for the numbers a clinician reads off an evaluation.

A number without an interval is not evidence: 90 % accuracy on 20 images and on 2,000 images
mean different things. Two kinds of interval, each where it fits:

- **Wilson score intervals** for proportions counted from the confusion matrix (accuracy, and per
  class sensitivity, specificity, PPV and NPV): scipy's ``binomtest(...).proportion_ci(method=
  "wilson")``. Wilson, unlike the textbook normal interval, stays inside [0, 1] and keeps its
  coverage near 0 % and 100 %, where diagnostic rates often sit. It counts every image as
  independent, which is optimistic when patients have several images.
- **Bootstrap percentile intervals** for ROC AUC and balanced accuracy, which are not simple
  proportions. The bootstrap resamples *groups* (patients) with replacement, not images: images
  of one patient are alike, and resampling them one by one would pretend there is more evidence
  than there is. Without groups each image is its own group. The seed is fixed, so the same
  predictions give the same interval.

An interval that cannot be measured (0 of 0, a split with one class only) has NaN ends and a
``note`` saying why; it is never shown as a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.evaluation.curves import N_BINS as CALIBRATION_BINS

__all__ = [
    "LEVEL",
    "RESAMPLES",
    "SEED",
    "ClassIntervals",
    "Interval",
    "Intervals",
    "bootstrap_auc",
    "bootstrap_balanced_accuracy",
    "class_intervals",
    "confusion_intervals",
    "counted_intervals",
    "group_index",
    "intervals_of",
    "unmeasured",
    "wilson",
]

#: confidence level of every interval
LEVEL = 0.95
#: bootstrap resamples: enough for stable 2.5th/97.5th percentiles, fast on 2 cores
RESAMPLES = 1000
#: the bootstrap's seed: the same predictions give the same interval
SEED = 0
#: resamples weighed at once (a resamples x examples float64 matrix stays a few MB)
_CHUNK = 50

WILSON = "wilson"
BOOTSTRAP = "bootstrap percentile"
OLD_VERSION = (
    "not computed: this evaluation was saved by an older version; evaluate again to get it"
)


@dataclass(frozen=True)
class Interval:
    """A confidence interval [low, high] at ``level``, computed by ``method``.

    ``low``/``high`` are NaN when it cannot be measured; ``note`` then says why (and otherwise
    may say what was left out, e.g. resamples with one class only)."""

    low: float
    high: float
    method: str
    level: float = LEVEL
    note: str = ""

    @property
    def measured(self) -> bool:
        """False when there is no interval (``note`` says why)."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    def text(self, percent: bool = False) -> str:
        """The interval as a reader sees it: '95% CI 0.871-0.941' (or '95% CI 87.1-94.1%'),
        or 'no 95% CI: <why>'."""
        head = f"{self.level:.0%} CI"
        if not self.measured:
            return f"no {head}: {self.note or 'not measured'}"
        if percent:
            return f"{head} {100 * self.low:.1f}-{100 * self.high:.1f}%"
        return f"{head} {self.low:.3f}-{self.high:.3f}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as null)."""
        return {
            "low": _out(self.low),
            "high": _out(self.high),
            "method": self.method,
            "level": self.level,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Interval:
        """The inverse of :meth:`to_dict`."""
        return cls(
            low=_in(d["low"]),
            high=_in(d["high"]),
            method=str(d["method"]),
            level=float(d.get("level", LEVEL)),
            note=str(d.get("note", "")),
        )


def unmeasured(method: str, note: str, level: float = LEVEL) -> Interval:
    """An interval that cannot be given, and why."""
    return Interval(math.nan, math.nan, method, level, note)


@dataclass(frozen=True)
class ClassIntervals:
    """Wilson intervals of one class against the rest: sensitivity (recall), specificity,
    PPV (precision) and NPV."""

    name: str
    sensitivity: Interval
    specificity: Interval
    ppv: Interval
    npv: Interval

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            **{k: getattr(self, k).to_dict() for k in ("sensitivity", "specificity", "ppv", "npv")},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassIntervals:
        """The inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            sensitivity=Interval.from_dict(d["sensitivity"]),
            specificity=Interval.from_dict(d["specificity"]),
            ppv=Interval.from_dict(d["ppv"]),
            npv=Interval.from_dict(d["npv"]),
        )


@dataclass(frozen=True)
class Intervals:
    """Every interval of one evaluation.

    ``roc_auc`` has the same keys as the evaluation's ROC curves (the positive class of a
    two-class run, else every class one-vs-rest); ``macro_roc_auc`` (more than two classes) is
    the interval of their mean. ``groups`` is how many groups (patients) the bootstrap
    resampled: fewer than the images when images share a patient."""

    accuracy: Interval
    balanced_accuracy: Interval
    per_class: tuple[ClassIntervals, ...]
    roc_auc: dict[str, Interval]
    macro_roc_auc: Interval | None = None
    operating: ClassIntervals | None = None
    macro_f1: Interval | None = None  # None: an evaluation saved before it was computed
    calibration_error: Interval | None = None
    resamples: int = RESAMPLES
    seed: int = SEED
    groups: int = 0
    level: float = LEVEL

    @property
    def method(self) -> str:
        """One sentence on how the intervals were computed, for reports."""
        what = f"the {self.groups} patients (groups)" if self.groups else "the images"
        return (
            f"{self.level:.0%} confidence intervals: Wilson score intervals for accuracy, "
            "sensitivity, specificity, PPV and NPV; bootstrap percentile intervals for ROC AUC, "
            "balanced accuracy, macro F1 and the calibration error "
            f"({self.resamples} resamples of {what}, seed {self.seed})."
        )

    def notes(self, measured: Sequence[str] = ()) -> list[str]:
        """One sentence per interval that is missing (or whose bootstrap left resamples out),
        without repeats; per-class ones only for the classes ``measured`` (a class without
        examples has its own warning)."""
        named: list[tuple[str, Interval]] = [
            ("accuracy", self.accuracy),
            ("balanced accuracy", self.balanced_accuracy),
        ]
        named += [(f"ROC AUC of '{k}'", v) for k, v in self.roc_auc.items()]
        if self.macro_roc_auc is not None:
            named.append(("mean ROC AUC", self.macro_roc_auc))
        if self.macro_f1 is not None:
            named.append(("macro F1", self.macro_f1))
        if self.calibration_error is not None:
            named.append(("calibration error", self.calibration_error))
        for c in self.per_class:
            if c.name in measured:
                for label, attr in (("specificity", "specificity"), ("PPV", "ppv"), ("NPV", "npv")):
                    named.append((f"{label} of '{c.name}'", getattr(c, attr)))
        seen: set[str] = set()
        out = []
        for label, interval in named:
            if interval.note and interval.note not in seen:
                seen.add(interval.note)
                verb = "no interval" if not interval.measured else "note"
                out.append(f"{label}: {verb}, {interval.note}.")
        return out

    def of_class(self, name: str) -> ClassIntervals | None:
        """The intervals of class ``name`` (None when there are none)."""
        return next((c for c in self.per_class if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "accuracy": self.accuracy.to_dict(),
            "balanced_accuracy": self.balanced_accuracy.to_dict(),
            "per_class": [c.to_dict() for c in self.per_class],
            "roc_auc": {k: v.to_dict() for k, v in self.roc_auc.items()},
            "macro_roc_auc": self.macro_roc_auc.to_dict() if self.macro_roc_auc else None,
            "operating": self.operating.to_dict() if self.operating else None,
            "macro_f1": self.macro_f1.to_dict() if self.macro_f1 else None,
            "calibration_error": (
                self.calibration_error.to_dict() if self.calibration_error else None
            ),
            "resamples": self.resamples,
            "seed": self.seed,
            "groups": self.groups,
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Intervals:
        """The inverse of :meth:`to_dict`."""
        macro, op = d.get("macro_roc_auc"), d.get("operating")
        f1, ece = d.get("macro_f1"), d.get("calibration_error")
        return cls(
            accuracy=Interval.from_dict(d["accuracy"]),
            balanced_accuracy=Interval.from_dict(d["balanced_accuracy"]),
            per_class=tuple(ClassIntervals.from_dict(c) for c in d["per_class"]),
            roc_auc={str(k): Interval.from_dict(v) for k, v in d["roc_auc"].items()},
            macro_roc_auc=Interval.from_dict(macro) if macro else None,
            operating=ClassIntervals.from_dict(op) if op else None,
            macro_f1=Interval.from_dict(f1) if f1 else None,
            calibration_error=Interval.from_dict(ece) if ece else None,
            resamples=int(d.get("resamples", RESAMPLES)),
            seed=int(d.get("seed", SEED)),
            groups=int(d.get("groups", 0)),
            level=float(d.get("level", LEVEL)),
        )


# -- Wilson -------------------------------------------------------------------------------------


def wilson(
    k: int, n: int, *, level: float = LEVEL, empty: str = "no examples to count"
) -> Interval:
    """Wilson score interval of the proportion ``k`` of ``n`` (scipy's binomtest).

    With ``n == 0`` there is no proportion: the interval is unmeasured with ``empty`` as note."""
    from scipy.stats import binomtest

    k, n = int(k), int(n)
    if n <= 0:
        return unmeasured(WILSON, empty, level)
    if not 0 <= k <= n:
        raise ValueError(f"A proportion needs 0 <= k <= n; got k={k}, n={n}.")
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return Interval(float(ci.low), float(ci.high), WILSON, level)


def class_intervals(
    name: str, tp: int, fp: int, tn: int, fn: int, *, level: float = LEVEL
) -> ClassIntervals:
    """Wilson intervals of ``name`` against the rest from its 2x2 counts."""
    q = f"'{name}'"
    return ClassIntervals(
        name=name,
        sensitivity=wilson(tp, tp + fn, level=level, empty=f"the split has no example of {q}"),
        specificity=wilson(
            tn, tn + fp, level=level, empty=f"the split has no example other than {q}"
        ),
        ppv=wilson(tp, tp + fp, level=level, empty=f"no example was predicted {q}"),
        npv=wilson(tn, tn + fn, level=level, empty=f"every example was predicted {q}"),
    )


def confusion_intervals(
    classes: Sequence[str], confusion: Sequence[Sequence[int]], *, level: float = LEVEL
) -> tuple[Interval, tuple[ClassIntervals, ...]]:
    """Accuracy and per-class Wilson intervals from a confusion matrix (rows: true class)."""
    m = np.asarray(confusion, dtype=np.int64).reshape(len(classes), len(classes))
    total = int(m.sum())
    accuracy = wilson(int(np.trace(m)), total, level=level, empty="the split has no examples")
    per_class = []
    for i, name in enumerate(classes):
        tp = int(m[i, i])
        fn = int(m[i].sum()) - tp
        fp = int(m[:, i].sum()) - tp
        per_class.append(class_intervals(name, tp, fp, total - tp - fn - fp, fn, level=level))
    return accuracy, tuple(per_class)


# -- the group bootstrap ------------------------------------------------------------------------


def group_index(groups: Sequence[Any] | None, n: int) -> np.ndarray:
    """Group number (0..G-1) of each of ``n`` examples; each example its own group without
    ``groups``. ValueError when ``groups`` does not have one entry per example."""
    if groups is None:
        return np.arange(n, dtype=np.int64)
    if len(groups) != n:
        raise ValueError(f"Groups need one entry per example: {len(groups)} for {n} examples.")
    _, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return index.astype(np.int64).reshape(-1)


def _weight_chunks(group: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield (b, n) weight matrices: how often each example is drawn when the groups are
    resampled with replacement (an example's weight is its group's count)."""
    rng = np.random.default_rng(seed)
    g = int(group.max()) + 1 if len(group) else 0
    done = 0
    while done < resamples:
        b = min(_CHUNK, resamples - done)
        counts = np.stack([np.bincount(rng.integers(0, g, g), minlength=g) for _ in range(b)])
        yield counts[:, group].astype(np.float64)
        done += b


def _percentile(stats: np.ndarray, level: float, resamples: int) -> Interval:
    """Percentile interval of the finite ``stats`` (NaN marks a degenerate resample)."""
    kept = stats[np.isfinite(stats)]
    dropped = resamples - len(kept)
    if len(kept) < 2:
        return unmeasured(
            BOOTSTRAP,
            "too few resamples had every class; more patients (groups) are needed",
            level,
        )
    alpha = (1 - level) / 2
    low, high = np.quantile(kept, [alpha, 1 - alpha])
    notes = []
    if dropped:
        notes.append(f"{dropped} of {resamples} resamples lacked a class and were left out")
    if low == high:  # e.g. a perfect AUC on a handful of examples: no resample differs
        notes.append(
            "every resample gave the same value, which shows too few examples (or patients) "
            "to measure the uncertainty, not that there is none"
        )
    return Interval(float(low), float(high), BOOTSTRAP, level, "; ".join(notes))


def _auc_stats(
    truth: np.ndarray, score: np.ndarray, group: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """ROC AUC of every resample (NaN when it has one class only): the weighted Mann-Whitney
    statistic, ties counted half, as scikit-learn's roc_auc_score with sample_weight gives
    (a test holds them equal). Vectorised over resamples: scores are sorted once, and each
    resample only changes the weights."""
    order = np.argsort(score, kind="stable")
    s, t = score[order], truth[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # blocks of tied scores
    out = []
    for w in _weight_chunks(group[order], resamples, seed):
        pos = np.add.reduceat(w * t, starts, axis=1)
        neg = np.add.reduceat(w * ~t, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # weighted negatives scored strictly lower
        num = (pos * (below + 0.5 * neg)).sum(axis=1)
        den = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))
    return np.concatenate(out) if out else np.zeros(0)


def bootstrap_auc(
    truth: np.ndarray,
    score: np.ndarray,
    groups: Sequence[Any] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """Bootstrap percentile interval of the ROC AUC of ``score`` for ``truth`` (bool),
    resampling ``groups`` (default: each example its own group)."""
    truth = np.asarray(truth, dtype=bool)
    group = group_index(groups, len(truth))
    return _auc_interval(truth, np.asarray(score, np.float64), group, resamples, seed, level)


def _auc_interval(
    truth: np.ndarray,
    score: np.ndarray,
    group: np.ndarray,
    resamples: int,
    seed: int,
    level: float,
    stats: np.ndarray | None = None,
) -> Interval:
    """The AUC interval from the resamples' AUCs (``stats``, computed when not given)."""
    if truth.all() or not truth.any():
        return unmeasured(BOOTSTRAP, "the split needs examples of both sides to rank", level)
    if int(group.max()) + 1 < 2:
        return unmeasured(BOOTSTRAP, "the bootstrap needs at least two patients (groups)", level)
    if stats is None:
        stats = _auc_stats(truth, score, group, resamples, seed)
    return _percentile(stats, level, resamples)


def _balanced_stats(
    labels: np.ndarray, correct: np.ndarray, k: int, group: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """Balanced accuracy of every resample (NaN when it lacks a class the split has).

    Counted per group once: a resample's per-class totals are its group counts times them."""
    g = int(group.max()) + 1
    present = np.bincount(labels, minlength=k) > 0
    n_gc = np.zeros((g, k))
    hit_gc = np.zeros((g, k))
    np.add.at(n_gc, (group, labels), 1.0)
    np.add.at(hit_gc, (group, labels), correct.astype(np.float64))
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, g, g), minlength=g) for _ in range(resamples)])
    n = counts @ n_gc[:, present]
    hit = counts @ hit_gc[:, present]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hit / n
    return np.where((n > 0).all(axis=1), recall.mean(axis=1), np.nan)


def bootstrap_balanced_accuracy(
    labels: np.ndarray,
    preds: np.ndarray,
    n_classes: int,
    groups: Sequence[Any] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """Bootstrap percentile interval of the balanced accuracy (mean recall over the classes the
    split has, as scikit-learn's balanced_accuracy_score), resampling ``groups``."""
    labels = np.asarray(labels, dtype=np.int64)
    group = group_index(groups, len(labels))
    correct = np.asarray(preds, dtype=np.int64) == labels
    return _balanced_interval(labels, correct, n_classes, group, resamples, seed, level)


def _balanced_interval(
    labels: np.ndarray,
    correct: np.ndarray,
    n_classes: int,
    group: np.ndarray,
    resamples: int,
    seed: int,
    level: float,
) -> Interval:
    if not len(labels):
        return unmeasured(BOOTSTRAP, "the split has no examples", level)
    if int(group.max()) + 1 < 2:
        return unmeasured(BOOTSTRAP, "the bootstrap needs at least two patients (groups)", level)
    stats = _balanced_stats(labels, correct, n_classes, group, resamples, seed)
    return _percentile(stats, level, resamples)


def _macro_f1_stats(
    labels: np.ndarray, preds: np.ndarray, group: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """Macro F1 of every resample, over the classes the split's labels or predictions have (as
    scikit-learn's f1_score(average="macro", zero_division=0) counts them on the split)."""
    present = np.union1d(labels, preds)
    out = []
    for w in _weight_chunks(group, resamples, seed):
        f1 = []
        for c in present:
            is_c, said_c = labels == c, preds == c
            tp = w @ (is_c & said_c).astype(np.float64)
            fp = w @ (~is_c & said_c).astype(np.float64)
            fn = w @ (is_c & ~said_c).astype(np.float64)
            den = 2 * tp + fp + fn
            with np.errstate(invalid="ignore", divide="ignore"):
                f1.append(np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0))
        out.append(np.mean(f1, axis=0))
    return np.concatenate(out) if out else np.zeros(0)


def _ece_stats(
    correct: np.ndarray, confidence: np.ndarray, group: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """The calibration error of every resample, binned as engine/evaluation/curves.py bins it
    (15 equal bins of the top probability, a confidence of exactly 1.0 a bin of its own)."""
    conf = confidence.astype(np.float32)
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1, dtype=np.float32)
    bins = np.searchsorted(edges, conf, side="right") - 1
    onehot = np.zeros((len(conf), CALIBRATION_BINS + 1))
    onehot[np.arange(len(conf)), bins] = 1.0
    gap = onehot * (correct.astype(np.float64) - conf.astype(np.float64))[:, None]
    out = []
    for w in _weight_chunks(group, resamples, seed):
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.abs(w @ gap).sum(axis=1) / np.where(total > 0, total, np.nan))
    return np.concatenate(out) if out else np.zeros(0)


def _bootstrapped(stats: Any, group: np.ndarray, resamples: int, level: float) -> Interval:
    """The percentile interval of ``stats()`` (the statistic of every resample), or why there is
    none."""
    if not len(group):
        return unmeasured(BOOTSTRAP, "the split has no examples", level)
    if int(group.max()) + 1 < 2:
        return unmeasured(BOOTSTRAP, "the bootstrap needs at least two patients (groups)", level)
    return _percentile(stats(), level, resamples)


def _macro_auc(
    labels: np.ndarray,
    group: np.ndarray,
    stats: dict[int, np.ndarray],
    resamples: int,
    level: float,
) -> Interval:
    """Interval of the mean one-vs-rest AUC over the classes the split has (and not all of it):
    ``stats`` holds each class's AUC on the same resamples."""
    usable = [c for c in stats if 0 < np.count_nonzero(labels == c) < len(labels)]
    if not usable:
        return unmeasured(BOOTSTRAP, "the split needs examples of two classes to rank", level)
    if int(group.max()) + 1 < 2:
        return unmeasured(BOOTSTRAP, "the bootstrap needs at least two patients (groups)", level)
    return _percentile(np.mean([stats[c] for c in usable], axis=0), level, resamples)


def intervals_of(
    preds: Any,
    confusion: Sequence[Sequence[int]],
    curve_classes: Sequence[str],
    operating: Any = None,
    groups: Sequence[Any] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Intervals:
    """Every interval of an evaluation of ``preds`` (a SplitPredictions): Wilson from
    ``confusion`` (and ``operating``, an OperatingPoint of the positive class), the bootstrap
    over ``groups`` (one id per example, e.g. a patient; default: each example its own) for
    balanced accuracy and the ROC AUC of each of ``curve_classes``."""
    classes = tuple(preds.classes)
    labels, probs = np.asarray(preds.labels, np.int64), np.asarray(preds.probs)
    group = group_index(groups, len(labels))
    accuracy, per_class = confusion_intervals(classes, confusion, level=level)
    stats: dict[int, np.ndarray] = {}  # each class's AUC per resample, computed once
    roc = {}
    for name in curve_classes:
        c = classes.index(name)
        truth, score = labels == c, probs[:, c].astype(np.float64)
        if truth.any() and not truth.all() and len(group) and group.max() > 0:
            stats[c] = _auc_stats(truth, score, group, resamples, seed)
        roc[name] = _auc_interval(truth, score, group, resamples, seed, level, stats.get(c))
    macro = _macro_auc(labels, group, stats, resamples, level) if len(classes) > 2 else None
    op = None
    if operating is not None and len(classes) == 2:
        positive = next(iter(curve_classes))
        op = class_intervals(
            positive, operating.tp, operating.fp, operating.tn, operating.fn, level=level
        )
    predicted = probs.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
    confidence = probs.max(axis=1) if len(labels) else np.zeros(0)
    return Intervals(
        accuracy=accuracy,
        balanced_accuracy=_balanced_interval(
            labels, predicted == labels, len(classes), group, resamples, seed, level
        ),
        macro_f1=_bootstrapped(
            lambda: _macro_f1_stats(labels, predicted, group, resamples, seed),
            group,
            resamples,
            level,
        ),
        calibration_error=_bootstrapped(
            lambda: _ece_stats(predicted == labels, confidence, group, resamples, seed),
            group,
            resamples,
            level,
        ),
        per_class=per_class,
        roc_auc=roc,
        macro_roc_auc=macro,
        operating=op,
        resamples=resamples,
        seed=seed,
        groups=int(group.max()) + 1 if groups is not None and len(group) else 0,
        level=level,
    )


def counted_intervals(
    classes: Sequence[str],
    confusion: Sequence[Sequence[int]],
    roc_classes: Sequence[str],
    operating: Any = None,
) -> Intervals:
    """The intervals of an evaluation saved before intervals existed: Wilson ones from its
    counts; the bootstrap ones need the predictions, so they say to evaluate again."""
    accuracy, per_class = confusion_intervals(classes, confusion)
    old = unmeasured(BOOTSTRAP, OLD_VERSION)
    op = None
    if operating is not None and roc_classes:
        o = operating
        op = class_intervals(roc_classes[0], int(o.tp), int(o.fp), int(o.tn), int(o.fn))
    return Intervals(
        accuracy=accuracy,
        balanced_accuracy=old,
        per_class=per_class,
        roc_auc={name: old for name in roc_classes},
        macro_roc_auc=old if len(classes) > 2 else None,
        operating=op,
    )


def _out(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _in(v: Any) -> float:
    return math.nan if v is None else float(v)
