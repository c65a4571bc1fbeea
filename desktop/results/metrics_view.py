"""Headline numbers as cards, and the per-class precision / recall / F1 table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from engine import ClassMetrics, Evaluation, Interval, OperatingPoint

TABLE_COLUMNS = ("Class", "Precision", "Recall", "F1", "Support")
NO_EXAMPLES = "no examples"


def percent(value: float | None) -> str:
    """0.9375 -> "93.8%"; None or NaN -> "—"."""
    if value is None or value != value:
        return "—"
    return f"{100 * value:.1f}%"


def decimal(value: float | None) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.3f}"


def interval_text(interval: Interval | None, as_percent: bool = True) -> str:
    """'95% CI 87.1–94.1%' (or '95% CI 0.871–0.941'); 'no 95% CI' when it cannot be measured
    (the tooltip, :func:`interval_tip`, says why); '' when there is none at all."""
    if interval is None:
        return ""
    if not interval.measured:
        return f"no {interval.level:.0%} CI"
    if as_percent:
        return f"{interval.level:.0%} CI {100 * interval.low:.1f}–{100 * interval.high:.1f}%"
    return f"{interval.level:.0%} CI {interval.low:.3f}–{interval.high:.3f}"


def interval_tip(interval: Interval | None) -> str:
    """How the interval was computed, and why it is missing or what it left out."""
    if interval is None:
        return ""
    how = {
        "wilson": "Wilson score interval",
        "bootstrap percentile": "bootstrap percentile interval (resampling patients, or images "
        "when no patient groups are known)",
    }.get(interval.method, interval.method)
    tip = f"{interval.level:.0%} confidence interval: {how}."
    return f"{tip} {interval.note[:1].upper()}{interval.note[1:]}." if interval.note else tip


class MetricCard(QFrame):
    """A big number with a small caption and a tooltip that says what it means."""

    def __init__(self, key: str, caption: str, tip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"card_{key}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip(tip)
        self.value_label = QLabel("—")
        self.value_label.setObjectName("value")
        font = self.value_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.value_label.setFont(font)
        self.caption = QLabel(caption)
        self.caption.setObjectName("caption")
        self.caption.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.interval_label = QLabel("")  # the 95% confidence interval, under the number
        self.interval_label.setObjectName("interval")
        self.interval_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.interval_label.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(0)
        layout.addWidget(self.value_label)
        layout.addWidget(self.interval_label)
        layout.addWidget(self.caption)
        self.setAccessibleName(caption)

    def set_value(self, text: str, caption: str | None = None) -> None:
        self.value_label.setText(text)
        if caption is not None:
            self.caption.setText(caption)
        self.setAccessibleDescription(f"{self.caption.text()}: {text}")

    def set_interval(self, interval: Interval | None, as_percent: bool = True) -> None:
        """Show ``interval`` under the number (hidden when None)."""
        text = interval_text(interval, as_percent)
        self.interval_label.setText(text)
        self.interval_label.setToolTip(interval_tip(interval))
        self.interval_label.setVisible(bool(text))
        what = f"{self.caption.text()}: {self.value_label.text()}"
        self.setAccessibleDescription(f"{what}, {text}" if text else what)

    @property
    def text(self) -> str:
        return self.value_label.text()

    @property
    def interval(self) -> str:
        return self.interval_label.text()


CARDS = (
    ("accuracy", "Accuracy", "Share of examples whose top class is right."),
    (
        "balanced_accuracy",
        "Balanced accuracy",
        "Mean recall over the classes: a rare class counts as much as a common one.",
    ),
    ("macro_f1", "Macro F1", "Mean F1 over the classes (F1 balances precision and recall)."),
    (
        "sensitivity",
        "Sensitivity",
        "Share of the positive class found at the chosen threshold (recall, true positive rate).",
    ),
    (
        "specificity",
        "Specificity",
        "Share of the negative class correctly left out at the chosen threshold.",
    ),
    ("auc", "ROC AUC", "Area under the ROC curve: 1.0 ranks every positive above every negative."),
    (
        "ece",
        "Calibration error",
        "Expected calibration error: how far confidence is from accuracy, on average (lower is "
        "better).",
    ),
)
TWO_CLASS_ONLY = ("sensitivity", "specificity")


class MetricCards(QWidget):
    """Accuracy, balanced accuracy, macro F1, (two-class) sensitivity and specificity at the
    threshold, ROC AUC and the calibration error, side by side."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("metricCards")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.cards: dict[str, MetricCard] = {}
        for key, caption, tip in CARDS:
            card = MetricCard(key, caption, tip)
            self.cards[key] = card
            layout.addWidget(card)
        layout.addStretch(1)

    def set_evaluation(self, evaluation: Evaluation) -> None:
        self.cards["accuracy"].set_value(percent(evaluation.accuracy))
        self.cards["balanced_accuracy"].set_value(percent(evaluation.balanced_accuracy))
        self.cards["macro_f1"].set_value(decimal(evaluation.macro_f1))
        self.cards["ece"].set_value(decimal(evaluation.calibration.ece))
        iv = evaluation.intervals
        self.cards["accuracy"].set_interval(iv.accuracy if iv else None)
        self.cards["balanced_accuracy"].set_interval(iv.balanced_accuracy if iv else None)
        self.cards["macro_f1"].set_interval(iv.macro_f1 if iv else None, as_percent=False)
        self.cards["ece"].set_interval(iv.calibration_error if iv else None, as_percent=False)
        two_class = evaluation.positive is not None
        for key in TWO_CLASS_ONLY:
            self.cards[key].setVisible(two_class)
        if two_class:
            curve = evaluation.roc.get(evaluation.positive or "")
            self.cards["auc"].set_value(
                decimal(curve.auc if curve else None), f"ROC AUC ({evaluation.positive})"
            )
            auc = iv.roc_auc.get(evaluation.positive or "") if iv else None
            self.cards["auc"].set_interval(auc, as_percent=False)
            if evaluation.operating is not None:
                self.set_operating_point(evaluation.operating)
        else:
            aucs = [c.auc for c in evaluation.roc.values() if c.auc == c.auc]
            mean = sum(aucs) / len(aucs) if aucs else None
            self.cards["auc"].set_value(decimal(mean), "ROC AUC (mean over classes)")
            self.cards["auc"].set_interval(iv.macro_roc_auc if iv else None, as_percent=False)

    def set_operating_point(self, point: OperatingPoint) -> None:
        """Sensitivity and specificity at the point's threshold, with their Wilson intervals
        (counted again at each threshold: a fraction of a millisecond)."""
        from engine import class_intervals

        at = f" at {point.threshold:.2f}"
        ci = class_intervals("positive", point.tp, point.fp, point.tn, point.fn)
        self.cards["sensitivity"].set_value(percent(point.sensitivity), "Sensitivity" + at)
        self.cards["sensitivity"].set_interval(ci.sensitivity)
        self.cards["specificity"].set_value(percent(point.specificity), "Specificity" + at)
        self.cards["specificity"].set_interval(ci.specificity)

    def text(self, key: str) -> str:
        return self.cards[key].text


class _NumberItem(QTableWidgetItem):
    """A right-aligned number that keeps its value (UserRole) next to its text."""

    def __init__(self, text: str, value: float) -> None:
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def _with_interval(value: float, interval: Interval | None) -> _NumberItem:
    """A percentage with its interval in brackets, e.g. '88.9% (76.5–95.2%)'."""
    text = percent(value)
    if interval is not None and interval.measured:
        text += f" ({100 * interval.low:.1f}–{100 * interval.high:.1f}%)"
    item = _NumberItem(text, value)
    item.setToolTip(interval_tip(interval))
    return item


class PerClassTable(QTableWidget):
    """Precision, recall, F1 and support of each class, plus the macro average."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(TABLE_COLUMNS), parent)
        self.setObjectName("perClassTable")
        self.setMinimumWidth(300)
        self.setAccessibleName("Per-class metrics")
        self.setHorizontalHeaderLabels(TABLE_COLUMNS)
        for column in (1, 2):  # precision (PPV) and recall (sensitivity)
            self.horizontalHeaderItem(column).setToolTip(
                "In brackets: the 95% confidence interval (Wilson score)."
            )
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(TABLE_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

    def set_metrics(
        self,
        rows: Sequence[ClassMetrics],
        macro_f1: float | None = None,
        intervals: Sequence[Any] = (),
    ) -> None:
        """One row per class and the macro average; ``intervals`` (the evaluation's per-class
        ClassIntervals) puts each precision and recall's 95% interval beside it."""
        by_name = {c.name: c for c in intervals}
        self.setRowCount(len(rows) + 1)
        for r, m in enumerate(rows):
            self.setItem(r, 0, QTableWidgetItem(m.name))
            ci = by_name.get(m.name)
            if m.measured:
                self.setItem(r, 1, _with_interval(m.precision, ci.ppv if ci else None))
                self.setItem(r, 2, _with_interval(m.recall, ci.sensitivity if ci else None))
                self.setItem(r, 3, _NumberItem(decimal(m.f1), m.f1))
            else:  # 0% would read as "always wrong"; the split just has none of the class
                for column in (1, 2, 3):
                    self.setItem(r, column, _NumberItem(NO_EXAMPLES, -1.0))
            self.setItem(r, 4, _NumberItem(str(m.support), m.support))
        n = len(rows)
        measured = [m for m in rows if m.measured] or list(rows)
        average = QTableWidgetItem("macro average")
        font = average.font()
        font.setItalic(True)
        average.setFont(font)
        self.setItem(n, 0, average)
        if rows:
            precision = sum(m.precision for m in measured) / len(measured)
            recall = sum(m.recall for m in measured) / len(measured)
            f1 = macro_f1 if macro_f1 is not None else sum(m.f1 for m in measured) / len(measured)
            support = sum(m.support for m in rows)
            for column, (text, value) in enumerate(
                [
                    (percent(precision), precision),
                    (percent(recall), recall),
                    (decimal(f1), f1),
                    (str(support), support),
                ],
                start=1,
            ):
                item = _NumberItem(text, value)
                item.setFont(font)
                self.setItem(n, column, item)
        self.resizeRowsToContents()

    def row_texts(self, row: int) -> list[str]:
        return [
            self.item(row, c).text() if self.item(row, c) else "" for c in range(self.columnCount())
        ]
