"""The evaluation report on fixed, hand-made predictions: every number against scikit-learn,
torchmetrics or a hand count; curves, calibration, operating points, JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.functional.classification import multiclass_calibration_error

from engine.evaluation.curves import ABOVE_ONE, MAX_POINTS, N_BINS
from engine.evaluation.predictions import PredictionError, SplitPredictions
from engine.evaluation.report import (
    Evaluation,
    evaluate,
    examples_in_cell,
    operating_point,
)


def predictions(labels, probs, classes, *, train_counts=(), digests=None) -> SplitPredictions:
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    return SplitPredictions(
        run_id="run-x",
        split="val",
        classes=tuple(classes),
        refs=tuple(f"/data/{i}.png" for i in range(n)),
        digests=tuple(digests or (f"d{i}" for i in range(n))),
        labels=labels,
        probs=np.asarray(probs, np.float32),
        checkpoint="best",
        modality="image",
        train_counts=tuple(train_counts),
    )


# Three classes, ten examples; rows sum to 1.
THREE_LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
THREE_PROBS = [
    [0.80, 0.10, 0.10],  # 0 -> 0
    [0.60, 0.30, 0.10],  # 0 -> 0
    [0.30, 0.50, 0.20],  # 0 -> 1
    [0.20, 0.70, 0.10],  # 1 -> 1
    [0.10, 0.20, 0.70],  # 1 -> 2
    [0.05, 0.90, 0.05],  # 1 -> 1
    [0.10, 0.10, 0.80],  # 2 -> 2
    [0.40, 0.20, 0.40],  # 2 -> 0 (tie: argmax takes the first)
    [0.20, 0.15, 0.65],  # 2 -> 2
    [0.15, 0.25, 0.60],  # 2 -> 2
]
THREE = ("cat", "dog", "fox")

# Two classes: 6 healthy (negative), 4 sick (positive); P(sick) below.
P_SICK = [0.1, 0.2, 0.3, 0.6, 0.4, 0.05, 0.9, 0.8, 0.45, 0.7]
TWO_LABELS = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
TWO = ("healthy", "sick")


def two_class(train_counts=(60, 40)) -> SplitPredictions:
    p = np.array(P_SICK)
    return predictions(TWO_LABELS, np.stack([1 - p, p], 1), TWO, train_counts=train_counts)


def test_three_classes_match_scikit_learn():
    preds = predictions(THREE_LABELS, THREE_PROBS, THREE)
    y, p = np.array(THREE_LABELS), np.array(THREE_PROBS).argmax(1)
    assert p.tolist() == [0, 0, 1, 1, 2, 1, 2, 0, 2, 2]
    ev = evaluate(preds)
    assert ev.n == 10 and ev.classes == THREE
    assert ev.accuracy == pytest.approx(0.7) == skm.accuracy_score(y, p)
    assert ev.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert ev.balanced_accuracy == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)
    assert ev.macro_f1 == pytest.approx(skm.f1_score(y, p, average="macro"))
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, p, zero_division=0)
    for i, c in enumerate(ev.per_class):
        assert c.name == THREE[i]
        assert (c.precision, c.recall, c.f1) == pytest.approx((prec[i], rec[i], f1[i]))
        assert c.support == support[i]
    assert ev.metrics_of("fox").support == 4
    assert ev.confusion == ((2, 1, 0), (0, 2, 1), (1, 0, 3))
    assert np.array_equal(np.array(ev.confusion), skm.confusion_matrix(y, p))
    assert ev.positive is None and ev.operating is None
    assert set(ev.roc) == set(ev.pr) == set(THREE)
    probs = np.array(THREE_PROBS, np.float32)
    for k, name in enumerate(THREE):
        truth = y == k
        assert ev.roc[name].auc == pytest.approx(skm.roc_auc_score(truth, probs[:, k]))
        assert ev.pr[name].auc == pytest.approx(skm.average_precision_score(truth, probs[:, k]))


def test_a_class_that_is_never_predicted_gets_zero_not_a_crash():
    # Everything predicted as cat: dog and fox have precision 0 (zero_division=0).
    probs = [[0.9, 0.05, 0.05]] * 6
    ev = evaluate(predictions([0, 0, 1, 1, 2, 2], probs, THREE))
    assert [c.precision for c in ev.per_class] == pytest.approx([1 / 3, 0.0, 0.0])
    assert [c.f1 for c in ev.per_class] == pytest.approx([0.5, 0.0, 0.0])


def test_two_classes_sensitivity_and_specificity_by_hand():
    ev = evaluate(two_class())
    assert ev.positive == "sick"  # the minority of the training split
    op = ev.operating
    assert (op.tp, op.fn, op.tn, op.fp) == (3, 1, 5, 1)
    assert op.threshold == 0.5
    assert op.sensitivity == pytest.approx(0.75)
    assert op.specificity == pytest.approx(5 / 6)
    assert op.precision == pytest.approx(0.75)
    # Sensitivity and specificity are the recalls of the positive and the negative class.
    assert ev.metrics_of("sick").recall == pytest.approx(op.sensitivity)
    assert ev.metrics_of("healthy").recall == pytest.approx(op.specificity)
    # Only the positive class gets curves; ROC AUC by counting pairs: 23 of 24 ordered right.
    assert set(ev.roc) == set(ev.pr) == {"sick"}
    assert ev.roc["sick"].auc == pytest.approx(23 / 24)
    truth, score = np.array(TWO_LABELS) == 1, np.array(P_SICK, np.float32)
    assert ev.pr["sick"].auc == pytest.approx(skm.average_precision_score(truth, score))


@pytest.mark.parametrize(
    ("threshold", "tp", "fp", "tn", "fn", "precision"),
    [
        (0.0, 4, 6, 0, 0, 0.4),
        (0.4, 4, 2, 4, 0, 4 / 6),
        (0.5, 3, 1, 5, 1, 0.75),
        (0.85, 1, 0, 6, 3, 1.0),
        (0.95, 0, 0, 6, 4, 0.0),  # nothing called positive: precision 0, not a crash
    ],
)
def test_operating_points_at_several_thresholds(threshold, tp, fp, tn, fn, precision):
    op = operating_point(two_class(), "sick", threshold)
    assert (op.tp, op.fp, op.tn, op.fn) == (tp, fp, tn, fn)
    assert op.sensitivity == pytest.approx(tp / 4)
    assert op.specificity == pytest.approx(tn / 6)
    assert op.precision == pytest.approx(precision)
    called = np.array(P_SICK, np.float32) >= threshold
    assert op.sensitivity == pytest.approx(
        skm.recall_score(np.array(TWO_LABELS) == 1, called, zero_division=0)
    )
    truth = np.array(TWO_LABELS) == 1
    sk_tn, sk_fp, sk_fn, sk_tp = skm.confusion_matrix(truth, called, labels=[False, True]).ravel()
    assert (op.tp, op.fp, op.tn, op.fn) == (sk_tp, sk_fp, sk_tn, sk_fn)


def test_positive_class_given_or_the_training_minority_with_ties_to_the_second():
    assert evaluate(two_class((60, 40))).positive == "sick"
    assert evaluate(two_class((30, 50))).positive == "healthy"
    assert evaluate(two_class((40, 40))).positive == "sick"
    ev = evaluate(two_class((60, 40)), positive="healthy")
    assert ev.positive == "healthy" and set(ev.roc) == {"healthy"}
    assert ev.operating.sensitivity == pytest.approx(ev.metrics_of("healthy").recall)
    with pytest.raises(PredictionError, match="'ill' is not a class"):
        evaluate(two_class(), positive="ill")
    with pytest.raises(PredictionError, match="two-class runs"):
        evaluate(predictions(THREE_LABELS, THREE_PROBS, THREE), positive="cat")


def test_curves_are_scikit_learns_from_strict_to_loose():
    preds = two_class()
    truth, score = np.array(TWO_LABELS) == 1, np.array(P_SICK, np.float32)
    roc = evaluate(preds).roc["sick"]
    fpr, tpr, thr = skm.roc_curve(truth, score)
    assert roc.x == pytest.approx(fpr.tolist()) and roc.y == pytest.approx(tpr.tolist())
    assert roc.thresholds[0] == ABOVE_ONE  # scikit-learn's inf: finite, above every probability
    assert roc.thresholds[1:] == pytest.approx(thr[1:].tolist())
    assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
    pr = evaluate(preds).pr["sick"]
    precision, recall, pthr = skm.precision_recall_curve(truth, score)
    assert pr.x == pytest.approx(recall[::-1].tolist())
    assert pr.y == pytest.approx(precision[::-1].tolist())
    assert pr.thresholds == pytest.approx([ABOVE_ONE, *pthr[::-1].tolist()])
    assert pr.x == sorted(pr.x) and pr.thresholds == sorted(pr.thresholds, reverse=True)


def test_long_curves_are_thinned_but_keep_their_ends_and_full_auc():
    rng = np.random.default_rng(0)
    n = 4000
    labels = rng.integers(0, 2, n)
    p = np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1)
    preds = predictions(labels, np.stack([1 - p, p], 1), TWO)
    full_fpr, full_tpr, _ = skm.roc_curve(labels == 1, preds.probs[:, 1])
    assert len(full_fpr) > MAX_POINTS
    ev = evaluate(preds, positive="sick")
    roc, pr = ev.roc["sick"], ev.pr["sick"]
    for curve in (roc, pr):
        assert 2 <= len(curve.x) <= MAX_POINTS
        assert len(curve.x) == len(curve.y) == len(curve.thresholds)
    assert (roc.x[0], roc.y[0]) == (full_fpr[0], full_tpr[0])
    assert (roc.x[-1], roc.y[-1]) == (full_fpr[-1], full_tpr[-1])
    assert roc.auc == pytest.approx(skm.roc_auc_score(labels == 1, preds.probs[:, 1]))
    assert pr.auc == pytest.approx(skm.average_precision_score(labels == 1, preds.probs[:, 1]))


def test_calibration_bins_give_torchmetrics_ece():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([0.6, 0.6, 0.6, 0.6], size=300).astype(np.float32)
    labels = np.where(rng.random(300) < 0.6, probs.argmax(1), rng.integers(0, 4, 300))
    preds = predictions(labels, probs, ("a", "b", "c", "d"))
    cal = evaluate(preds).calibration
    assert len(cal.confidence) == len(cal.accuracy) == len(cal.count) == N_BINS
    assert sum(cal.count) == 300
    expected = multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(labels), num_classes=4, n_bins=15, norm="l1"
    ).item()
    assert cal.ece == pytest.approx(expected, abs=1e-6)
    from_bins = sum(
        n / 300 * abs(acc - conf)
        for n, acc, conf in zip(cal.count, cal.accuracy, cal.confidence, strict=True)
        if n
    )
    assert from_bins == pytest.approx(expected, abs=1e-6)
    # Bin b holds confidences in [b/15, (b+1)/15): check one bin by hand.
    conf = probs.max(1)
    inside = (conf >= 7 / 15) & (conf < 8 / 15)
    assert cal.count[7] == inside.sum()
    assert cal.confidence[7] == pytest.approx(conf[inside].mean())
    assert cal.accuracy[7] == pytest.approx((probs.argmax(1) == labels)[inside].mean())


def test_empty_calibration_bins_and_a_confidence_of_one():
    preds = predictions([0, 1], [[1.0, 0.0], [0.0, 1.0]], TWO)
    cal = evaluate(preds).calibration
    assert cal.count[-1] == 2 and sum(cal.count) == 2
    assert cal.accuracy[-1] == 1.0 and cal.confidence[-1] == 1.0 and cal.ece == 0.0
    assert all(math.isnan(v) for v in cal.confidence[:-1])


def test_a_class_absent_from_the_split_has_nan_auc_and_json_null():
    probs = [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.5, 0.2]]
    ev = evaluate(predictions([0, 1, 0, 1], probs, THREE))  # no fox
    assert math.isnan(ev.roc["fox"].auc) and math.isnan(ev.pr["fox"].auc)
    assert ev.roc["fox"].x == [] and ev.metrics_of("fox").support == 0
    assert ev.roc["cat"].auc == 1.0
    text = json.dumps(ev.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["roc"]["fox"]["auc"] is None
    back = Evaluation.from_dict(data)
    assert math.isnan(back.roc["fox"].auc)
    assert back.to_dict() == ev.to_dict()


@pytest.mark.parametrize("case", ["three", "two"])
def test_json_round_trip_is_exact(case):
    if case == "three":
        ev = evaluate(predictions(THREE_LABELS, THREE_PROBS, THREE))
    else:
        ev = evaluate(two_class())
    data = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    back = Evaluation.from_dict(data)
    assert back.to_dict() == ev.to_dict()
    # Equal as objects too, where no NaN (never equal to itself) is involved.
    nan_free = dict(back.__dict__, calibration=None)
    assert nan_free == dict(ev.__dict__, calibration=None)
    assert back.calibration.count == ev.calibration.count
    assert back.calibration.ece == ev.calibration.ece


def test_examples_in_a_confusion_cell_most_confident_first():
    preds = predictions(THREE_LABELS, THREE_PROBS, THREE)
    assert examples_in_cell(preds, 2, 2) == [6, 8, 9]  # P(fox) 0.8, 0.65, 0.6
    assert examples_in_cell(preds, 0, 0) == [0, 1]
    assert examples_in_cell(preds, 1, 2) == [4]
    assert examples_in_cell(preds, 2, 1) == []
    # Ties keep split order.
    tied = predictions([0, 0, 0], [[0.6, 0.4], [0.7, 0.3], [0.6, 0.4]], TWO)
    assert examples_in_cell(tied, 0, 0) == [1, 0, 2]


def test_predictions_save_and_load_round_trip(tmp_path):
    preds = predictions(THREE_LABELS, THREE_PROBS, THREE, train_counts=(5, 6, 7))
    path = preds.save(tmp_path / "evaluation" / "val-predictions.npz")
    back = SplitPredictions.load(path)
    for name in ("run_id", "split", "classes", "refs", "digests", "checkpoint", "modality"):
        assert getattr(back, name) == getattr(preds, name)
    assert back.train_counts == (5, 6, 7)
    assert np.array_equal(back.labels, preds.labels) and back.labels.dtype == np.int64
    assert np.array_equal(back.probs, preds.probs) and back.probs.dtype == np.float32
    assert back.preds.tolist() == [0, 0, 1, 1, 2, 1, 2, 0, 2, 2]
    assert back.confidence[0] == pytest.approx(0.8)
    assert [p.name for p in path.parent.iterdir()] == ["val-predictions.npz"]  # no temp file left
    path.write_bytes(b"not a zip")
    with pytest.raises(PredictionError, match=r"not a whole \.npz archive; evaluate the run"):
        SplitPredictions.load(path)


def test_ece_equals_torchmetrics_with_certain_wrong_answers():
    # Rows with a confidence of exactly 1.0, some of them wrong: torchmetrics bins them alone.
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([0.5, 0.5, 0.5], size=120).astype(np.float32)
    probs[:30] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 30)]
    labels = rng.integers(0, 3, 120)
    expected = multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(labels), num_classes=3, n_bins=15, norm="l1"
    ).item()
    assert evaluate(predictions(labels, probs, ("a", "b", "c"))).calibration.ece == pytest.approx(
        expected, abs=1e-6
    )
