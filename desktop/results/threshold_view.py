"""Two-class problems: a positive class, a threshold slider and what it does to the errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from desktop.results.metrics_view import percent

if TYPE_CHECKING:
    from engine import OperatingPoint

STEPS = 100  # slider units per 1.0 of probability: thresholds 0.01 .. 0.99


class ThresholdWidget(QFrame):
    """Pick the positive class and the probability above which an example is called positive;
    shows sensitivity, specificity, precision and the 2×2 counts for that choice."""

    threshold_changed = Signal(float)
    positive_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thresholdView")
        self._classes: list[str] = []
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.positive_combo = QComboBox()
        self.positive_combo.setObjectName("positiveCombo")
        self.positive_combo.setAccessibleName("Positive class")
        self.positive_combo.setToolTip("The class you want to find (e.g. the disease).")
        self.positive_combo.currentIndexChanged.connect(self._on_positive_combo_changed)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("thresholdSlider")
        self.slider.setAccessibleName("Decision threshold")
        self.slider.setRange(1, STEPS - 1)
        self.slider.setValue(STEPS // 2)
        self.slider.setPageStep(5)
        self.slider.setMinimumWidth(160)
        self.slider.setToolTip(
            "Examples whose probability of the positive class is at least this are called "
            "positive. Lower it to miss fewer positives (more false alarms); raise it for fewer "
            "false alarms (more misses)."
        )
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self.value_label = QLabel("0.50")
        self.value_label.setObjectName("thresholdValue")
        self.value_label.setMinimumWidth(self.value_label.fontMetrics().horizontalAdvance("0.000"))
        self.rates_label = QLabel()
        self.rates_label.setObjectName("thresholdRates")
        self.counts = _CountsGrid()

        self.caption = QLabel("Threshold on P(positive)")
        top = QHBoxLayout()
        top.addWidget(QLabel("Positive class:"))
        top.addWidget(self.positive_combo)
        top.addSpacing(12)
        top.addWidget(self.caption)
        top.addWidget(self.slider, 1)
        top.addWidget(self.value_label)
        left = QVBoxLayout()
        left.addLayout(top)
        left.addWidget(self.rates_label)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addLayout(left, 1)
        layout.addSpacing(12)
        layout.addWidget(self.counts)

    # -- public ---------------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        return self.slider.value() / STEPS

    def set_threshold(self, value: float) -> None:
        self.slider.setValue(round(value * STEPS))

    @property
    def positive(self) -> str:
        return str(self.positive_combo.currentData() or "")

    def set_classes(self, classes: Sequence[str], positive: str) -> None:
        """The two classes, ``positive`` selected; no signal is sent."""
        self.positive_combo.blockSignals(True)
        self.positive_combo.clear()
        for name in classes:
            self.positive_combo.addItem(name, name)
        self.positive_combo.setCurrentIndex(max(0, list(classes).index(positive)))
        self.positive_combo.blockSignals(False)
        self._classes = list(classes)
        self.caption.setText(f"Threshold on P({positive}):")

    def set_point(self, point: OperatingPoint) -> None:
        """Show the numbers of an operating point (computed by the caller)."""
        self.value_label.setText(f"{point.threshold:.2f}")
        self.rates_label.setText(
            f"Sensitivity <b>{percent(point.sensitivity)}</b> &nbsp;·&nbsp; "
            f"Specificity <b>{percent(point.specificity)}</b> &nbsp;·&nbsp; "
            f"Precision <b>{percent(point.precision)}</b>"
        )
        negative = next((c for c in self._classes if c != self.positive), "other")
        self.counts.set_counts(self.positive, negative, point)

    # -- slots ----------------------------------------------------------------------------------

    def _on_slider_value_changed(self, value: int) -> None:
        self.value_label.setText(f"{value / STEPS:.2f}")
        self.threshold_changed.emit(value / STEPS)

    def _on_positive_combo_changed(self, _index: int) -> None:
        self.caption.setText(f"Threshold on P({self.positive}):")
        self.positive_changed.emit(self.positive)


class _CountsGrid(QWidget):
    """The 2×2 table at the threshold: true positives, misses, false alarms, true negatives."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("thresholdCounts")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(0)
        self.col_heads = [QLabel(), QLabel()]
        self.row_heads = [QLabel(), QLabel()]
        self.cells = {key: QLabel("—") for key in ("tp", "fn", "fp", "tn")}
        for c, label in enumerate(self.col_heads, start=1):
            grid.addWidget(label, 0, c, Qt.AlignmentFlag.AlignRight)
        for r, label in enumerate(self.row_heads, start=1):
            grid.addWidget(label, r, 0)
        for (r, c), key in zip(
            ((1, 1), (1, 2), (2, 1), (2, 2)), ("tp", "fn", "fp", "tn"), strict=True
        ):
            self.cells[key].setObjectName(f"count_{key}")
            self.cells[key].setAlignment(Qt.AlignmentFlag.AlignRight)
            grid.addWidget(self.cells[key], r, c)

    def set_counts(self, positive: str, negative: str, point: OperatingPoint) -> None:
        self.col_heads[0].setText(f"<small>called {positive}</small>")
        self.col_heads[1].setText(f"<small>called {negative}</small>")
        self.row_heads[0].setText(f"<small>true {positive}</small>")
        self.row_heads[1].setText(f"<small>true {negative}</small>")
        self.cells["tp"].setText(f"<b>{point.tp}</b>")
        self.cells["fn"].setText(f"{point.fn} <small>missed</small>")
        self.cells["fp"].setText(f"{point.fp} <small>false alarms</small>")
        self.cells["tn"].setText(f"<b>{point.tn}</b>")
        self.cells["tp"].setToolTip("True positives")
        self.cells["fn"].setToolTip("False negatives: positives called negative")
        self.cells["fp"].setToolTip("False positives: negatives called positive")
        self.cells["tn"].setToolTip("True negatives")

    def values(self) -> dict[str, int]:
        """The four counts as numbers (tests read them)."""
        import re

        return {k: int(re.sub(r"<[^>]+>", "", v.text()).split()[0]) for k, v in self.cells.items()}
