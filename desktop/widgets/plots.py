"""Training curves: pyqtgraph plots that append to growing numpy buffers and redraw on a timer.

Curves are created once; new points land in a buffer and mark the series dirty; a ~10 Hz timer
pushes dirty buffers to pyqtgraph, which clips to the visible range and downsamples (peak mode)
so a 100k-point curve still draws in a few milliseconds. Non-finite values are stored as NaN and
drawn as gaps (``connect="finite"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

from desktop.widgets.palette_colors import series_color

REDRAW_MS = 100


def theme_plot(plot: pg.PlotWidget, legend: pg.LegendItem, *, legend_alpha: int = 200) -> None:
    """Background, axes (pens, tick text, labels) and legend of ``plot`` from its palette, light
    or dark; shared by every pyqtgraph plot of the app."""
    palette = plot.palette()
    text = palette.color(QPalette.ColorRole.Text)
    plot.setBackground(palette.color(QPalette.ColorRole.Base))
    axis_pen = QColor(text)
    axis_pen.setAlpha(140)
    for name in ("left", "bottom", "right"):
        axis = plot.getPlotItem().getAxis(name)
        axis.setPen(axis_pen)
        axis.setTextPen(text)
        if axis.labelText:
            axis.setLabel(axis.labelText, color=text.name())
    legend.setLabelTextColor(text)
    brush = QColor(palette.color(QPalette.ColorRole.Base))
    brush.setAlpha(legend_alpha)
    legend.setBrush(pg.mkBrush(brush))


class SeriesBuffer:
    """Growing float64 x/y arrays (capacity doubles); non-finite y values become NaN."""

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(capacity)
        self._y = np.empty(capacity)
        self.n = 0

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    def extend(self, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> None:
        xs = np.asarray(xs, dtype=float).ravel()
        ys = np.asarray(ys, dtype=float).ravel()
        need = self.n + len(xs)
        if need > len(self._x):
            capacity = max(need, 2 * len(self._x))
            self._x = np.resize(self._x, capacity)
            self._y = np.resize(self._y, capacity)
        self._x[self.n : need] = xs
        self._y[self.n : need] = np.where(np.isfinite(ys), ys, np.nan)
        self.n = need

    def clear(self) -> None:
        self.n = 0


@dataclass
class _Series:
    curve: pg.PlotDataItem
    buffer: SeriesBuffer
    color_index: int
    alpha: int
    width: float
    style: Qt.PenStyle
    dirty: bool = False


class IntegerAxis(pg.AxisItem):
    """An axis of steps or epochs: ticks only on whole numbers."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        levels = [
            (spacing, [v for v in values if float(v).is_integer()])
            for spacing, values in super().tickValues(minVal, maxVal, size)
            if spacing >= 1
        ]
        if not levels and maxVal - minVal < 50:
            levels = [(1.0, [float(v) for v in range(math.ceil(minVal), math.floor(maxVal) + 1)])]
        return levels


class SeriesPlot(pg.PlotWidget):
    """A plot of named series that grow over time; themed from the widget's palette."""

    def __init__(
        self,
        object_name: str,
        *,
        x_label: str,
        y_label: str,
        grid: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent=parent, axisItems={"bottom": IntegerAxis("bottom")})
        self.setObjectName(object_name)
        self.setMinimumHeight(140)
        item = self.getPlotItem()
        if grid:
            item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("bottom", x_label)
        item.setLabel("left", y_label)
        item.setMenuEnabled(False)
        item.hideButtons()
        for name in ("left", "bottom", "right"):
            item.getAxis(name).enableAutoSIPrefix(False)
        self.legend = item.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.series: dict[str, _Series] = {}
        self.markers: list[pg.InfiniteLine] = []
        self._marker_samples: dict[str, pg.PlotDataItem] = {}
        self._fast = True
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self.set_fast_drawing(True)
        self.apply_palette()

    # -- series ---------------------------------------------------------------------------------

    def add_series(
        self,
        key: str,
        name: str | None,
        color_index: int,
        *,
        alpha: int = 255,
        width: float = 1.6,
        style: Qt.PenStyle = Qt.PenStyle.SolidLine,
        symbol: str | None = None,
        view: pg.ViewBox | None = None,
    ) -> pg.PlotDataItem:
        """Create the curve of ``key`` once; later points are appended with ``append``."""
        curve = pg.PlotDataItem(connect="finite", symbol=symbol, symbolSize=6)
        curve.setObjectName(key)
        (view or self.getPlotItem()).addItem(curve)
        self._make_fast(curve, self._fast)  # after addItem, which imposes the PlotItem's modes
        if name:  # added by hand: curves on the right-hand view are not the PlotItem's
            self.legend.addItem(curve, name)
        self.series[key] = _Series(curve, SeriesBuffer(), color_index, alpha, width, style)
        self._style(self.series[key])
        return curve

    def append(self, key: str, xs: Any, ys: Any) -> None:
        series = self.series[key]
        series.buffer.extend(xs, ys)
        self._mark_dirty(series)

    def set_data(self, key: str, xs: Any, ys: Any) -> None:
        series = self.series[key]
        series.buffer.clear()
        series.buffer.extend(xs, ys)
        self._mark_dirty(series)

    def curve(self, key: str) -> pg.PlotDataItem:
        return self.series[key].curve

    def data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The buffered (full, not downsampled) points of ``key``."""
        buffer = self.series[key].buffer
        return buffer.x.copy(), buffer.y.copy()

    def clear_data(self) -> None:
        """Empty every series and marker, keeping the curves."""
        for series in self.series.values():
            series.buffer.clear()
            self._mark_dirty(series)
        self.clear_markers()

    def remove_all(self) -> None:
        """Remove every series (the Runs page rebuilds them for a new selection)."""
        for key, series in list(self.series.items()):
            self.legend.removeItem(series.curve)
            view = series.curve.getViewBox()
            if view is not None:
                view.removeItem(series.curve)
            del self.series[key]
        self.clear_markers()

    def add_marker(self, x: float, color_index: int, label: str = "") -> None:
        """A dashed vertical line, e.g. at the best epoch; ``label`` names it in the legend."""
        pen = pg.mkPen(series_color(color_index, self.palette(), 220), width=1.5)
        pen.setStyle(Qt.PenStyle.DashLine)
        line = pg.InfiniteLine(pos=x, angle=90, movable=False, pen=pen)
        self.getPlotItem().addItem(line, ignoreBounds=True)
        self.markers.append(line)
        if label and label not in self._marker_samples:
            sample = pg.PlotDataItem(pen=pen)  # never drawn: it only gives the legend its sample
            self._marker_samples[label] = sample
            self.legend.addItem(sample, label)

    def clear_markers(self) -> None:
        for line in self.markers:
            self.getPlotItem().removeItem(line)
        self.markers.clear()
        for sample in self._marker_samples.values():
            self.legend.removeItem(sample)
        self._marker_samples.clear()

    # -- drawing --------------------------------------------------------------------------------

    def set_fast_drawing(self, enabled: bool) -> None:
        """Clip to view and peak-downsample (on by default; off only to measure the gain)."""
        self._fast = enabled
        self.getPlotItem().setClipToView(enabled)
        self.getPlotItem().setDownsampling(ds=1, auto=enabled, mode="peak")
        for series in self.series.values():
            self._make_fast(series.curve, enabled)

    @staticmethod
    def _make_fast(curve: pg.PlotDataItem, enabled: bool) -> None:
        curve.setClipToView(enabled)
        curve.setDownsampling(ds=1, auto=enabled, method="peak")

    def redraw(self) -> None:
        """Push dirty buffers to their curves now."""
        self._timer.stop()
        for series in self.series.values():
            if series.dirty:
                series.curve.setData(series.buffer.x, series.buffer.y, connect="finite")
                series.dirty = False

    def _mark_dirty(self, series: _Series) -> None:
        series.dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def _on_timer_timeout(self) -> None:
        self.redraw()

    # -- theme ----------------------------------------------------------------------------------

    def apply_palette(self) -> None:
        """Background, axes and legend from the palette (light or dark)."""
        theme_plot(self, self.legend)
        for series in self.series.values():
            self._style(series)

    def _style(self, series: _Series) -> None:
        color = series_color(series.color_index, self.palette(), series.alpha)
        pen = pg.mkPen(color, width=series.width)
        pen.setStyle(series.style)
        series.curve.setPen(pen)
        if series.curve.opts.get("symbol"):
            series.curve.setSymbolBrush(color)
            series.curve.setSymbolPen(color)
        self.legend.setLabelTextColor(self.palette().color(QPalette.ColorRole.Text))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "series"):
            self.apply_palette()


class EpochPlot(SeriesPlot):
    """Per-epoch curves with a second y axis on the right (validation loss left, accuracy right)."""

    def __init__(
        self,
        object_name: str,
        *,
        y_label: str,
        right_label: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(object_name, x_label="epoch", y_label=y_label, parent=parent)
        item = self.getPlotItem()
        self.right_view = pg.ViewBox()
        item.showAxis("right")
        item.scene().addItem(self.right_view)
        item.getAxis("right").linkToView(self.right_view)
        item.getAxis("right").setLabel(right_label)
        self.right_view.setXLink(item)
        self.right_view.setYRange(0, 100, padding=0.02)
        self.right_view.enableAutoRange(axis=pg.ViewBox.YAxis, enable=False)
        item.getAxis("right").enableAutoSIPrefix(False)
        item.vb.sigResized.connect(self._on_view_resized)
        self.apply_palette()

    def _on_view_resized(self) -> None:
        self.right_view.setGeometry(self.getPlotItem().vb.sceneBoundingRect())
        self.right_view.linkedViewChanged(self.getPlotItem().vb, self.right_view.XAxis)


def step_loss_plot(object_name: str) -> SeriesPlot:
    """The training-loss-per-step plot: faint raw points and a smoothed line.

    No grid: it can hold 100,000+ steps, and the grid's repaint alone cost about 10 ms of a
    redraw (benchmarks/gui_responsiveness.py).
    """
    plot = SeriesPlot(object_name, x_label="step", y_label="training loss", grid=False)
    plot.add_series("raw", "per step", 0, alpha=70, width=1.0)
    plot.add_series("smooth", "smoothed", 0, width=2.0)
    return plot
