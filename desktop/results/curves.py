"""ROC, precision-recall and reliability plots of an evaluation (pyqtgraph, palette-themed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

from desktop.widgets.palette_colors import series_color
from desktop.widgets.plots import theme_plot

if TYPE_CHECKING:
    from engine import Calibration, Curve

MANY_CLASSES = 8  # above this, the legend gets two columns and smaller text


class CurvePlot(pg.PlotWidget):
    """A square-ish 0..1 plot with a legend, themed from the widget's palette."""

    def __init__(
        self,
        object_name: str,
        *,
        title: str,
        x_label: str,
        y_label: str,
        legend_offset: tuple[int, int] = (-8, -8),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent=parent)
        self.setObjectName(object_name)
        self.setMinimumSize(220, 180)
        self._title = title
        item = self.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("bottom", x_label)
        item.setLabel("left", y_label)
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.setXRange(0, 1, padding=0.02)
        item.setYRange(0, 1, padding=0.02)
        for name in ("left", "bottom"):
            item.getAxis(name).enableAutoSIPrefix(False)
        self.legend = item.addLegend(offset=legend_offset, labelTextSize="8pt")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._guides: list[tuple[pg.PlotDataItem, int]] = []
        self.set_title(title)
        self.apply_palette()

    def set_title(self, title: str) -> None:
        self._title = title
        color = self.palette().color(QPalette.ColorRole.Text).name()
        self.getPlotItem().setTitle(title, color=color, size="10pt")

    def add_guide(self, xs: Sequence[float], ys: Sequence[float], name: str = "") -> None:
        """A dashed grey reference line (chance, perfect calibration)."""
        line = pg.PlotDataItem(list(xs), list(ys))
        self.getPlotItem().addItem(line)
        self._guides.append((line, 0))
        if name:
            self.legend.addItem(line, name)
        self._style_guides()

    def clear_curves(self) -> None:
        for curve in self.curves.values():
            self.legend.removeItem(curve)
            self.getPlotItem().removeItem(curve)
        self.curves.clear()

    def set_curves(self, curves: Mapping[str, Curve], classes: Sequence[str], measure: str) -> None:
        """One line per class (in class order) named with its area, e.g. "lesion (AUC 0.97)"."""
        self.clear_curves()
        many = len(curves) > MANY_CLASSES
        self.legend.setColumnCount(2 if many else 1)
        order = [c for c in classes if c in curves] + [c for c in curves if c not in classes]
        for index, name in enumerate(order):
            curve = curves[name]
            color = series_color(classes.index(name) if name in classes else index, self.palette())
            line = pg.PlotDataItem(
                np.asarray(curve.x, dtype=float),
                np.asarray(curve.y, dtype=float),
                pen=pg.mkPen(color, width=1.4 if many else 2.0),
            )
            self.getPlotItem().addItem(line)
            self.legend.addItem(line, f"{name} ({measure} {curve.auc:.3f})")
            self.curves[name] = line

    def legend_texts(self) -> list[str]:
        return [label.text for _sample, label in self.legend.items]

    # -- theme --------------------------------------------------------------------------------

    def apply_palette(self) -> None:
        theme_plot(self, self.legend, legend_alpha=210)
        self.set_title(self._title)
        self._style_guides()

    def _style_guides(self) -> None:
        color = QColor(self.palette().color(QPalette.ColorRole.Text))
        color.setAlpha(110)
        pen = pg.mkPen(color, width=1.0)
        pen.setStyle(Qt.PenStyle.DashLine)
        for line, _ in self._guides:
            line.setPen(pen)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "curves"):
            self.apply_palette()


class RocPlot(CurvePlot):
    """ROC curves (true vs false positive rate) with the chance diagonal and, for two-class
    problems, a marker at the chosen threshold's operating point."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "rocPlot",
            title="ROC curve",
            x_label="false positive rate (1 − specificity)",
            y_label="true positive rate (sensitivity)",
            parent=parent,
        )
        self.add_guide([0, 1], [0, 1])
        self.marker = pg.ScatterPlotItem(size=11, symbol="o")
        self.marker.setZValue(10)
        self.getPlotItem().addItem(self.marker)

    def set_marker(self, fpr: float | None, tpr: float | None, color_index: int = 0) -> None:
        """Mark the operating point, or hide the marker with None."""
        if fpr is None or tpr is None:
            self.marker.setData([], [])
            return
        color = series_color(color_index, self.palette())
        self.marker.setData(
            [fpr],
            [tpr],
            brush=pg.mkBrush(color),
            pen=pg.mkPen(self.palette().base().color(), width=2),
        )

    def marker_position(self) -> tuple[float, float] | None:
        xs, ys = self.marker.getData()
        return (float(xs[0]), float(ys[0])) if len(xs) else None


class PrPlot(CurvePlot):
    """Precision against recall, one line per class, average precision in the legend."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "prPlot",
            title="Precision–recall",
            x_label="recall",
            y_label="precision",
            legend_offset=(8, -8),
            parent=parent,
        )


class ReliabilityPlot(CurvePlot):
    """A reliability diagram: accuracy of the predictions in each confidence bin, against the
    diagonal a perfectly calibrated model would follow; the ECE is in the title.

    No legend box (the bars fill the right half, where one would sit): the diagonal is labeled
    along itself, low on the left, where confidences rarely are.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "reliabilityPlot",
            title="Reliability",
            x_label="confidence (top probability)",
            y_label="accuracy in each bin",
            parent=parent,
        )
        self.setToolTip(
            "Bars: how often the predictions in each confidence bin are right. A perfectly "
            "calibrated model's bars reach the dashed diagonal: 80% confident, 80% right."
        )
        self.legend.hide()  # an empty legend still draws its frame
        self.add_guide([0, 1], [0, 1])
        self.guide_label = pg.TextItem("perfectly calibrated", anchor=(0, 1), rotateAxis=(1, 1))
        self.guide_label.setPos(0.06, 0.08)
        self.getPlotItem().addItem(self.guide_label)
        self.bars: pg.BarGraphItem | None = None
        self.ece: float | None = None
        self._style_guide_label()

    def set_calibration(self, calibration: Calibration) -> None:
        if self.bars is not None:
            self.getPlotItem().removeItem(self.bars)
        centers, heights = reliability_bars(calibration)
        n_bins = max(1, len(calibration.count))
        color = series_color(0, self.palette(), 170)
        self.bars = pg.BarGraphItem(
            x=centers,
            height=heights,
            width=0.9 / n_bins,
            brush=pg.mkBrush(color),
            pen=pg.mkPen(series_color(0, self.palette())),
        )
        self.getPlotItem().addItem(self.bars)
        self.ece = calibration.ece
        self.set_title(f"Reliability · ECE {calibration.ece:.3f}")

    def apply_palette(self) -> None:
        super().apply_palette()
        if hasattr(self, "guide_label"):
            self._style_guide_label()

    def _style_guide_label(self) -> None:
        color = QColor(self.palette().color(QPalette.ColorRole.Text))
        color.setAlpha(150)
        self.guide_label.setColor(color)


def reliability_bars(calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """Bar centres and heights of the non-empty bins (equal-width bins over [0, 1])."""
    counts = np.asarray(calibration.count, dtype=float)
    n = len(counts)
    centers = (np.arange(n) + 0.5) / max(n, 1)
    keep = counts > 0
    return centers[keep], np.asarray(calibration.accuracy, dtype=float)[keep]


def operating_xy(point: Any) -> tuple[float, float]:
    """(false positive rate, true positive rate) of an OperatingPoint."""
    return 1.0 - float(point.specificity), float(point.sensitivity)
