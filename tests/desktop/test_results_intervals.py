"""The Results page's metric cards and per-class table show each number's 95% interval."""

from __future__ import annotations

import numpy as np

from desktop.results.metrics_view import MetricCards, PerClassTable, percent
from engine.evaluation.predictions import SplitPredictions
from engine.evaluation.report import evaluate, operating_point


def noisy(n: int, k: int, seed: int = 0) -> SplitPredictions:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = ("healthy", "sick") if k == 2 else tuple(f"c{i}" for i in range(k))
    return SplitPredictions(
        run_id="r1",
        split="val",
        classes=classes,
        refs=tuple(f"{i}.png" for i in range(n)),
        digests=tuple(str(i) for i in range(n)),
        labels=labels,
        probs=probs.astype(np.float32),
        checkpoint="best",
        modality="image",
    )


def test_the_cards_show_intervals_and_follow_the_threshold(qtbot):
    preds = noisy(120, 2)
    ev = evaluate(preds)
    cards = MetricCards()
    qtbot.addWidget(cards)
    cards.set_evaluation(ev)
    iv = ev.intervals
    low, high = 100 * iv.accuracy.low, 100 * iv.accuracy.high
    assert cards.text("accuracy") == percent(ev.accuracy)
    assert cards.cards["accuracy"].interval == f"95% CI {low:.1f}–{high:.1f}%"
    auc = iv.roc_auc[ev.positive]
    assert cards.cards["auc"].interval == f"95% CI {auc.low:.3f}–{auc.high:.3f}"
    assert "bootstrap" in cards.cards["auc"].interval_label.toolTip()
    sens = iv.operating.sensitivity
    expected = f"95% CI {100 * sens.low:.1f}–{100 * sens.high:.1f}%"
    assert cards.cards["sensitivity"].interval == expected
    # at a stricter threshold fewer positives are found: the interval is counted again
    strict = operating_point(preds, ev.positive, 0.9)
    cards.set_operating_point(strict)
    assert cards.cards["sensitivity"].interval != expected
    assert cards.text("sensitivity") == percent(strict.sensitivity)
    # Macro F1 and the calibration error have their bootstrap intervals too (every number).
    assert cards.cards["macro_f1"].interval.startswith("95% CI 0.")
    assert cards.cards["ece"].interval.startswith("95% CI 0.")


def test_the_table_puts_intervals_beside_precision_and_recall_and_says_why_one_is_missing(
    qtbot,
):
    ev = evaluate(noisy(90, 3, seed=1))
    table = PerClassTable()
    qtbot.addWidget(table)
    table.set_metrics(ev.per_class, ev.macro_f1, ev.intervals.per_class)
    c0, ci = ev.per_class[0], ev.intervals.per_class[0]
    expected = f"{percent(c0.precision)} ({100 * ci.ppv.low:.1f}–{100 * ci.ppv.high:.1f}%)"
    assert table.row_texts(0)[1] == expected
    assert "Wilson" in table.item(0, 2).toolTip()
    # an evaluation without intervals (built by hand) shows the plain numbers
    table.set_metrics(ev.per_class, ev.macro_f1)
    assert table.row_texts(0)[1] == percent(c0.precision)
    # a card whose interval cannot be measured says so, and the tooltip says why
    one = evaluate(
        SplitPredictions(
            run_id="r1",
            split="val",
            classes=("healthy", "sick"),
            refs=tuple("abcdef"),
            digests=tuple("abcdef"),
            labels=np.zeros(6, np.int64),
            probs=np.tile(np.float32([[0.9, 0.1]]), (6, 1)),
            checkpoint="best",
            modality="image",
        )
    )
    cards = MetricCards()
    qtbot.addWidget(cards)
    cards.set_evaluation(one)
    assert cards.cards["auc"].interval == "no 95% CI"
    assert "both sides" in cards.cards["auc"].interval_label.toolTip()


def test_the_html_report_gives_intervals_and_how_they_were_computed(qtbot):
    from desktop.results.results_report import (
        _headline_table,
        _interval_method,
        _per_class_table,
    )

    preds = noisy(120, 2)
    ev = evaluate(preds, groups=[f"p{i // 3}" for i in range(120)])
    iv = ev.intervals
    head = _headline_table(ev, None)
    low, high = 100 * iv.accuracy.low, 100 * iv.accuracy.high
    assert f"{percent(ev.accuracy)} (95% CI {low:.1f}–{high:.1f}%)" in head
    auc = iv.roc_auc[ev.positive]
    assert f"(95% CI {auc.low:.3f}–{auc.high:.3f})" in head
    # a moved threshold: its sensitivity interval is counted from its own counts
    strict = operating_point(preds, ev.positive, 0.9)
    from engine import class_intervals

    sens = class_intervals("x", strict.tp, strict.fp, strict.tn, strict.fn).sensitivity
    moved = _headline_table(ev, strict)
    assert f"(95% CI {100 * sens.low:.1f}–{100 * sens.high:.1f}%)" in moved
    assert "40 patients (groups)" in _interval_method(ev)
    ci = iv.per_class[1]
    assert f"(95% CI {100 * ci.sensitivity.low:.1f}–" in _per_class_table(ev)
    three = evaluate(noisy(90, 3, seed=2))
    assert "ROC AUC (mean over classes)" in _headline_table(three, None)
