"""Confidence intervals of evaluations: Wilson against statsmodels, the group bootstrap against
scikit-learn and scipy, degenerate cases, saving and printing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.evaluation import intervals as iv
from engine.evaluation.predictions import SplitPredictions
from engine.evaluation.report import Evaluation, evaluate


def predictions(labels, probs, classes=("healthy", "sick")) -> SplitPredictions:
    n = len(labels)
    return SplitPredictions(
        run_id="r1",
        split="val",
        classes=tuple(classes),
        refs=tuple(f"{i}.png" for i in range(n)),
        digests=tuple(str(i) for i in range(n)),
        labels=np.asarray(labels, dtype=np.int64),
        probs=np.asarray(probs, dtype=np.float32),
        checkpoint="best",
        modality="image",
    )


def noisy(n: int, k: int = 2, seed: int = 0, signal: float = 1.5) -> SplitPredictions:
    """``n`` examples of ``k`` classes whose probabilities favour the true class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += signal
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = ("healthy", "sick") if k == 2 else tuple(f"c{i}" for i in range(k))
    return predictions(labels, probs, classes)


# -- Wilson -------------------------------------------------------------------------------------


@pytest.mark.slow  # importing statsmodels takes about a second
def test_wilson_matches_statsmodels_including_0_and_n():
    from statsmodels.stats.proportion import proportion_confint

    cases = [(0, 1), (1, 1), (0, 5), (5, 5), (3, 7), (0, 200), (200, 200), (1, 200), (57, 60)]
    cases += [(k, 40) for k in range(0, 41, 3)] + [(912, 1000), (4, 10_000)]
    for level in (0.95, 0.9):
        for k, n in cases:
            got = iv.wilson(k, n, level=level)
            low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
            assert got.measured and got.method == "wilson" and got.level == level
            assert got.low == pytest.approx(low, abs=1e-9), (k, n)
            assert got.high == pytest.approx(high, abs=1e-9), (k, n)
            assert 0.0 <= got.low <= k / n <= got.high <= 1.0


def test_0_of_0_has_no_interval_and_says_why():
    empty = iv.wilson(0, 0, empty="no example was predicted 'sick'")
    assert not empty.measured and math.isnan(empty.low)
    assert empty.text() == "no 95% CI: no example was predicted 'sick'"
    assert empty.to_dict()["low"] is None  # JSON null, never NaN
    assert iv.Interval.from_dict(json.loads(json.dumps(empty.to_dict()))) == iv.unmeasured(
        "wilson", "no example was predicted 'sick'"
    )
    with pytest.raises(ValueError, match="0 <= k <= n"):
        iv.wilson(6, 5)


def test_class_intervals_count_each_class_against_the_rest():
    # rows: true class; 'a' has tp 8, fn 2, fp 1 (+ 'c' predicted 'a' 0 times), tn 24
    confusion = [[8, 1, 1], [1, 9, 0], [0, 0, 15]]
    accuracy, per_class = iv.confusion_intervals(("a", "b", "c"), confusion)
    assert accuracy == iv.wilson(32, 35)
    a = per_class[0]
    assert (a.sensitivity, a.ppv) == (iv.wilson(8, 10), iv.wilson(8, 9))
    assert (a.specificity, a.npv) == (iv.wilson(24, 25), iv.wilson(24, 26))
    nothing = iv.confusion_intervals(("a", "b"), [[3, 0], [2, 0]])[1][1]
    assert not nothing.ppv.measured and nothing.ppv.note == "no example was predicted 'b'"
    a = iv.confusion_intervals(("a", "b"), [[3, 0], [2, 0]])[1][0]
    assert not a.npv.measured and a.npv.note == "every example was predicted 'a'"
    assert iv.confusion_intervals(("a", "b"), [[3, 0], [0, 0]])[1][1].sensitivity.note == (
        "the split has no example of 'b'"
    )


# -- the bootstrap ------------------------------------------------------------------------------


def test_resampled_auc_and_balanced_accuracy_equal_scikit_learn_with_weights():
    """The vectorised statistics are scikit-learn's with each example weighted by how often its
    group was drawn (ties in the scores included)."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    rng = np.random.default_rng(4)
    truth = rng.random(300) < 0.4
    score = np.round(rng.random(300) * 0.6 + truth * 0.3, 1)  # many ties
    groups = rng.integers(0, 40, 300)
    index = iv.group_index(groups, 300)
    weights = next(iv._weight_chunks(index, 5, seed=7))
    aucs = iv._auc_stats(truth, score, index, 5, seed=7)
    labels, called = truth.astype(np.int64), (score >= 0.5).astype(np.int64)
    balanced = iv._balanced_stats(labels, called == labels, 2, index, 5, seed=7)
    for b in range(5):
        expected = roc_auc_score(truth, score, sample_weight=weights[b])
        assert aucs[b] == pytest.approx(expected, abs=1e-12)
        expected = balanced_accuracy_score(labels, called, sample_weight=weights[b])
        assert balanced[b] == pytest.approx(expected, abs=1e-12)


def test_resampled_macro_f1_and_calibration_error_equal_the_evaluations_own_on_each_resample():
    """Each resample's macro F1 is scikit-learn's f1_score with the drawn weights, and its
    calibration error the evaluation's own ECE of the resampled examples (three classes,
    patients drawn with replacement)."""
    from sklearn.metrics import f1_score

    from engine.evaluation.curves import calibration

    p = noisy(120, k=3, seed=5)
    groups = np.random.default_rng(5).integers(0, 30, 120)
    index = iv.group_index(groups, 120)
    weights = next(iv._weight_chunks(index, 4, seed=3))
    f1s = iv._macro_f1_stats(p.labels, p.preds, index, 4, seed=3)
    eces = iv._ece_stats(p.correct, p.confidence, index, 4, seed=3)
    for b in range(4):
        expected = f1_score(
            p.labels, p.preds, average="macro", sample_weight=weights[b], zero_division=0
        )
        assert f1s[b] == pytest.approx(expected, abs=1e-12)
        drawn = np.repeat(np.arange(120), weights[b].astype(int))
        resample = predictions(p.labels[drawn], p.probs[drawn], p.classes)
        assert eces[b] == pytest.approx(calibration(resample).ece, abs=1e-6)


def test_every_evaluation_number_has_an_interval_macro_f1_and_calibration_error_too():
    p = noisy(200, k=3, seed=2)
    ev = evaluate(p, groups=[i // 4 for i in range(200)])
    assert ev.intervals.groups == 50
    for interval, value in (
        (ev.intervals.macro_f1, ev.macro_f1),
        (ev.intervals.calibration_error, ev.calibration.ece),
    ):
        assert interval.measured and interval.low <= value <= interval.high
    again = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again.intervals.macro_f1 == ev.intervals.macro_f1
    assert again.intervals.calibration_error == ev.intervals.calibration_error
    assert "macro F1 and the calibration error" in ev.intervals.method


def test_the_bootstrap_is_reproducible_for_a_seed_and_covers_the_estimate():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    p = noisy(150)
    truth, score = p.labels == 1, p.probs[:, 1]
    first = iv.bootstrap_auc(truth, score, seed=11)
    assert first == iv.bootstrap_auc(truth, score, seed=11)
    assert first != iv.bootstrap_auc(truth, score, seed=12)
    assert first.method == "bootstrap percentile" and first.note == ""
    assert first.low < roc_auc_score(truth, score) < first.high
    assert 0.0 < first.high - first.low < 0.3
    balanced = iv.bootstrap_balanced_accuracy(p.labels, p.preds, 2)
    assert balanced.low < balanced_accuracy_score(p.labels, p.preds) < balanced.high


def test_resampling_patients_gives_a_wider_auc_interval_than_resampling_images():
    """10 patients with 20 near-identical images each: the images are not 200 independent
    pieces of evidence, and the interval over patients says so."""
    rng = np.random.default_rng(0)
    patient_label = np.array([0, 1] * 5)
    patient_score = np.clip(0.5 + 0.25 * (2 * patient_label - 1) + rng.normal(0, 0.2, 10), 0, 1)
    groups = np.repeat([f"patient-{i}" for i in range(10)], 20)
    labels = np.repeat(patient_label, 20)
    score = np.repeat(patient_score, 20) + rng.normal(0, 1e-3, 200)
    by_images = iv.bootstrap_auc(labels == 1, score)
    by_patients = iv.bootstrap_auc(labels == 1, score, groups)
    assert by_patients.high - by_patients.low > 2 * (by_images.high - by_images.low)
    preds = (score > 0.5).astype(np.int64)
    wide = iv.bootstrap_balanced_accuracy(labels, preds, 2, groups)
    narrow = iv.bootstrap_balanced_accuracy(labels, preds, 2)
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)


@pytest.mark.slow
def test_the_image_bootstrap_agrees_with_scipy_bootstrap():
    """Each image its own group, the interval is scipy.stats.bootstrap's percentile interval of
    scikit-learn's AUC (other random draws: equal within Monte Carlo error)."""
    from scipy.stats import bootstrap
    from sklearn.metrics import roc_auc_score

    p = noisy(200, seed=3, signal=1.0)
    truth, score = p.labels == 1, p.probs[:, 1].astype(np.float64)
    ours = iv.bootstrap_auc(truth, score, resamples=2000)
    theirs = bootstrap(
        (truth, score),
        lambda t, s: roc_auc_score(t, s),
        paired=True,
        vectorized=False,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.015)
    assert ours.high == pytest.approx(theirs.high, abs=0.015)


def test_resamples_without_a_class_are_left_out_and_counted():
    # one patient has every 'sick' image: a third of the resamples draw no sick image at all
    labels = np.array([0] * 40 + [1] * 5)
    groups = [f"p{i // 5}" for i in range(45)]
    score = np.random.default_rng(0).random(45)
    result = iv.bootstrap_auc(labels == 1, score, groups)
    assert result.measured
    dropped = int(result.note.split(" of ")[0])
    assert 200 < dropped < 500
    assert result.note == f"{dropped} of 1000 resamples lacked a class and were left out"


def test_a_perfect_score_on_few_examples_says_its_interval_is_not_certainty():
    perfect = iv.bootstrap_auc(np.arange(8) >= 4, np.linspace(0, 1, 8))
    assert perfect.measured and perfect.low == perfect.high == 1.0
    assert "too few examples (or patients)" in perfect.note
    p = noisy(60)
    assert "too few" not in iv.bootstrap_auc(p.labels == 1, p.probs[:, 1]).note


def test_one_class_or_one_patient_has_no_bootstrap_interval():
    only_one = iv.bootstrap_auc(np.ones(10, bool), np.linspace(0, 1, 10))
    assert not only_one.measured and "both sides" in only_one.note
    one_patient = iv.bootstrap_auc(np.arange(10) % 2 == 0, np.linspace(0, 1, 10), ["p"] * 10)
    assert not one_patient.measured and "two patients" in one_patient.note
    with pytest.raises(ValueError, match="one entry per example"):
        iv.group_index(["a"], 3)


# -- in the evaluation --------------------------------------------------------------------------


def test_an_evaluation_carries_its_intervals_and_saves_them():
    p = noisy(120)
    groups = [f"p{i // 4}" for i in range(120)]
    ev = evaluate(p, groups=groups)
    i = ev.intervals
    assert i is not None and i.groups == 30 and "30 patients" in i.method
    assert i.accuracy == iv.wilson(int(p.correct.sum()), 120)
    assert i.accuracy.low < ev.accuracy < i.accuracy.high
    assert i.balanced_accuracy.low < ev.balanced_accuracy < i.balanced_accuracy.high
    auc = i.roc_auc[ev.positive]
    assert auc.low < ev.roc[ev.positive].auc < auc.high
    op = ev.operating
    assert i.operating.sensitivity == iv.wilson(op.tp, op.tp + op.fn)
    assert i.operating.specificity == iv.wilson(op.tn, op.tn + op.fp)
    assert evaluate(p, groups=groups).intervals == i  # fixed seed: the same numbers again
    assert evaluate(p).intervals.roc_auc != i.roc_auc  # without groups, each image its own
    again = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again.intervals == i


def test_a_multi_class_evaluation_has_per_class_and_mean_auc_intervals():
    p = noisy(150, k=3, seed=2)
    ev = evaluate(p)
    i = ev.intervals
    assert set(i.roc_auc) == {"c0", "c1", "c2"} and ev.positive is None and i.operating is None
    for name, interval in i.roc_auc.items():
        assert interval.low < ev.roc[name].auc < interval.high
    mean = float(np.mean([c.auc for c in ev.roc.values()]))
    assert i.macro_roc_auc.low < mean < i.macro_roc_auc.high


def test_an_evaluation_saved_before_intervals_still_loads_with_its_wilson_intervals():
    ev = evaluate(noisy(80, k=3, seed=5))
    old = ev.to_dict()
    del old["intervals"]
    loaded = Evaluation.from_dict(json.loads(json.dumps(old)))
    assert loaded.intervals.accuracy == ev.intervals.accuracy
    assert loaded.intervals.per_class == ev.intervals.per_class
    assert not loaded.intervals.balanced_accuracy.measured
    assert "older version" in loaded.intervals.roc_auc["c0"].note
    damaged = dict(ev.to_dict(), intervals={"accuracy": "x"})
    assert Evaluation.from_dict(damaged).intervals.accuracy == ev.intervals.accuracy


def test_the_report_prints_an_interval_beside_every_number_and_never_nan():
    from engine.cli.reports import evaluation_lines
    from engine.export.card import _metrics

    ev = evaluate(noisy(120), groups=[f"p{i // 4}" for i in range(120)])
    text = "\n".join(evaluation_lines(ev))
    i = ev.intervals
    assert f"accuracy {ev.accuracy:.1%} ({i.accuracy.text(True)})" in text
    assert (
        f"balanced accuracy {ev.balanced_accuracy:.1%} ({i.balanced_accuracy.text(True)})" in text
    )
    assert f"ROC AUC {ev.roc[ev.positive].auc:.3f} ({i.roc_auc[ev.positive].text()})" in text
    assert "1000 resamples of the 30 patients (groups)" in " ".join(text.split())
    card = _metrics(ev, "Validation metrics", "validation")
    assert i.accuracy.text() in card and i.roc_auc[ev.positive].text() in card
    # one class only: no AUC interval, no PPV for a class nothing was predicted as, no NaN shown
    one = evaluate(predictions([0] * 6, [[0.9, 0.1]] * 6))
    text = "\n".join(evaluation_lines(one)) + _metrics(one, "Validation metrics", "validation")
    assert "nan" not in text.lower()
    assert "no interval, the split needs examples of both sides to rank" in text


@pytest.mark.slow  # trains a tiny run (once per test process)
def test_refit_evaluate_prints_intervals_on_a_trained_run(tmp_path, capsys):
    from trained_runs import train_image_run

    from engine.cli import main
    from engine.evaluation.report import load_evaluation
    from engine.runs import RunDir

    run = train_image_run(tmp_path)
    ws = run.parent.parent
    assert main(["--workspace", str(ws), "evaluate", run.name]) == 0
    out = " ".join(capsys.readouterr().out.split())
    ev = load_evaluation(RunDir(run), "val")
    i = ev.intervals
    assert f"accuracy {ev.accuracy:.1%} ({i.accuracy.text(True)})" in out
    assert i.accuracy.low <= ev.accuracy <= i.accuracy.high
    assert "Each class vs the rest, 95% CI in brackets" in out
    assert "1000 resamples of the images, seed 0" in out
    assert "nan" not in out.lower()
    # saved with the evaluation: --json carries them too
    assert main(["--workspace", str(ws), "evaluate", run.name, "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)["intervals"]
    assert saved["accuracy"]["method"] == "wilson" and saved["resamples"] == 1000
