"""Comparing two runs' predictions: matching by digest, McNemar's test, the sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.evaluation.compare import (
    CHI_SQUARE,
    EXACT,
    ComparisonError,
    compare_predictions,
    format_p,
    mcnemar,
)
from engine.evaluation.predictions import SplitPredictions

CLASSES = ("no", "yes")


def run_preds(run_id, digests, labels, right, classes=CLASSES) -> SplitPredictions:
    """Predictions that are right exactly where ``right`` says (two classes)."""
    labels = np.asarray(labels, np.int64)
    predicted = np.where(np.asarray(right, bool), labels, 1 - labels)
    probs = np.where(predicted[:, None] == np.arange(2)[None, :], 0.8, 0.2).astype(np.float32)
    return SplitPredictions(
        run_id=run_id,
        split="val",
        classes=tuple(classes),
        refs=tuple(f"/x/{d}.png" for d in digests),
        digests=tuple(digests),
        labels=labels,
        probs=probs,
        checkpoint="best",
        modality="image",
    )


def pair(both, only_a, only_b, neither):
    """Two runs on the same examples with the given counts of each outcome."""
    right_a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    right_b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    n = len(right_a)
    digests = [f"d{i}" for i in range(n)]
    labels = [i % 2 for i in range(n)]
    return run_preds("a", digests, labels, right_a), run_preds("b", digests, labels, right_b)


def test_exact_mcnemar_is_the_hand_computed_binomial_p_value():
    a, b = pair(both=20, only_a=2, only_b=9, neither=3)
    c = compare_predictions(a, b)
    assert (c.both_right, c.only_a_right, c.only_b_right, c.both_wrong) == (20, 2, 9, 3)
    assert c.n == 34
    assert c.accuracy_a == pytest.approx(22 / 34) and c.accuracy_b == pytest.approx(29 / 34)
    # Two-sided: 2 * P(X <= 2) for X ~ Binomial(11, 1/2) = 2 * (1 + 11 + 55) / 2048.
    assert c.method == EXACT
    assert c.p_value == pytest.approx(134 / 2048)
    assert c.statistic == 2
    assert c.sentence == (
        "B is right on 9 examples A gets wrong and A on 2 that B gets wrong; McNemar p = 0.065: "
        "the difference could well be chance."
    )


def test_chi_square_branch_from_25_discordant_pairs():
    a, b = pair(both=40, only_a=25, only_b=5, neither=10)
    c = compare_predictions(a, b, names=("fine-tuned", "base"))
    assert c.method == CHI_SQUARE
    statistic = (abs(25 - 5) - 1) ** 2 / 30
    assert c.statistic == pytest.approx(statistic)
    # Chi-square with one degree of freedom: P(X > x) = erfc(sqrt(x / 2)).
    assert c.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    assert c.p_value < 0.001
    assert c.sentence.startswith("Fine-tuned is right on 25 examples base gets wrong")
    assert c.sentence.endswith("McNemar p < 0.001: the difference is unlikely to be chance.")
    # 24 discordant pairs is still exact.
    assert mcnemar(20, 4)[2] == EXACT and mcnemar(20, 5)[2] == CHI_SQUARE


def test_no_discordant_pairs_gives_p_one():
    a, b = pair(both=5, only_a=0, only_b=0, neither=2)
    c = compare_predictions(a, b)
    assert c.p_value == 1.0 and c.statistic == 0.0
    assert "same examples" in c.sentence
    named = compare_predictions(*pair(1, 0, 3, 0), names=("this run", "the base"))
    assert named.sentence.startswith("The base is right on 3 examples this run gets wrong and")
    assert format_p(0.0123) == "p = 0.012" and format_p(0.5) == "p = 0.50"


def test_examples_are_matched_by_digest_with_partial_overlap():
    # A saw d0..d9, B saw d5..d14 in another order: only d5..d9 are compared.
    a = run_preds("a", [f"d{i}" for i in range(10)], [i % 2 for i in range(10)], [True] * 10)
    b_digests = [f"d{i}" for i in (14, 9, 8, 13, 7, 6, 12, 5, 11, 10)]
    b_labels = [int(d[1:]) % 2 for d in b_digests]
    b_right = [d in ("d6", "d8") for d in b_digests]  # B is right on d6, d8 only
    b = run_preds("b", b_digests, b_labels, b_right)
    c = compare_predictions(a, b)
    assert c.n == 5
    assert (c.both_right, c.only_a_right, c.only_b_right, c.both_wrong) == (2, 3, 0, 0)
    assert c.accuracy_a == 1.0 and c.accuracy_b == pytest.approx(0.4)


def test_copies_of_an_example_pair_up_in_order():
    a = run_preds("a", ["x", "x", "y"], [0, 0, 1], [True, False, True])
    b = run_preds("b", ["x", "y"], [0, 1], [True, True])
    c = compare_predictions(a, b)
    assert c.n == 2 and c.both_right == 2


def test_runs_that_cannot_be_compared_say_why():
    a = run_preds("a", ["d1", "d2"], [0, 1], [True, True])
    other = run_preds("b", ["d1", "d2"], [0, 1], [True, True], classes=("cat", "dog"))
    with pytest.raises(ComparisonError, match="different classes"):
        compare_predictions(a, other)
    with pytest.raises(ComparisonError, match="no val example in common"):
        compare_predictions(a, run_preds("b", ["d7"], [0], [True]))
    with pytest.raises(ComparisonError, match="label some of the same examples differently"):
        compare_predictions(a, run_preds("b", ["d1", "d2"], [1, 1], [True, True]))
