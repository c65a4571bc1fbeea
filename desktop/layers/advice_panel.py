"""The Recommended method's evidence: accuracy per depth with the freeze point, the LR range test.

Fed with the dict of ``engine.events.AdviceGiven`` / ``advice.json`` (``set_advice``) or, for the
learning-rate finder on its own, point by point (``begin_lr_curve``, ``add_lr_point``,
``set_lr_curve``). Plot items are created once and only get new data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from desktop.widgets.palette_colors import series_color
from desktop.widgets.plots import theme_plot

EMPTY_TEXT = (
    "The charts appear when you press <b>Analyse my data</b>, or when a run with "
    "<b>Recommended</b> starts."
)
DEPTH_TITLE = "How well each depth separates your classes"
LR_TITLE = "Learning-rate range test"


def format_lr(lr: float) -> str:
    """A learning rate the way the buttons show it: 3.0e-03."""
    return f"{lr:.1e}"


class AdvicePanelWidget(QWidget):
    """Two charts and a sentence: depth vs cross-validated accuracy with the recommended freeze
    point, the LR range test with its suggestion, and the advisor's reason."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.suggestion: float | None = None
        self._lrs: list[float] = []
        self._losses: list[float] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("adviceEmpty")
        self.empty_label.setWordWrap(True)
        layout.addWidget(self.empty_label)
        self.reason_label = QLabel()
        self.reason_label.setObjectName("adviceReason")
        self.reason_label.setWordWrap(True)
        self.reason_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reason_label.hide()
        layout.addWidget(self.reason_label)
        self._build_depth_plot()
        self._build_lr_plot()
        layout.addWidget(self.depth_plot, 3)
        layout.addWidget(self.lr_plot, 2)
        layout.addStretch(0)  # holds the sentence at the top while the charts are hidden
        self.apply_palette()
        self.clear()

    # -- building -------------------------------------------------------------------------------

    def _build_depth_plot(self) -> None:
        plot = pg.PlotWidget()
        plot.setObjectName("depthPlot")
        plot.setMinimumHeight(180)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        item = plot.getPlotItem()
        item.setTitle(DEPTH_TITLE)
        item.setLabel("left", "CV accuracy (%)")
        item.setLabel("bottom", "layer group (input → output)")
        item.showGrid(y=True, alpha=0.2)
        self.depth_legend = item.addLegend(offset=(10, 5))
        self.depth_curve = plot.plot([], [], name="linear probe at this depth (CV)", symbol="o")
        # Trials and the head-only probe are scored on held-out training images, at their cut.
        self.trial_points = pg.ScatterPlotItem(name="fine-tune from here (held-out)", symbol="d")
        self.probe_point = pg.ScatterPlotItem(name="head only (held-out)", symbol="s")
        for points in (self.trial_points, self.probe_point):
            points.setSize(11)
            item.addItem(points)
        self.chance_line = pg.InfiniteLine(
            angle=0, movable=False, label="chance", labelOpts={"position": 0.06}
        )
        self.cut_line = pg.InfiniteLine(
            angle=90, movable=False, label="train from here", labelOpts={"position": 0.12}
        )
        plot.addItem(self.chance_line)
        plot.addItem(self.cut_line)
        self.depth_plot = plot

    def _build_lr_plot(self) -> None:
        plot = pg.PlotWidget()
        plot.setObjectName("lrPlot")
        plot.setMinimumHeight(140)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        item = plot.getPlotItem()
        item.setTitle(LR_TITLE)
        item.setLabel("left", "loss")
        item.setLabel("bottom", "learning rate (head)")
        item.setLogMode(x=True, y=False)
        item.showGrid(x=True, y=True, alpha=0.2)
        self.lr_legend = item.addLegend(offset=(-10, 10))
        self.lr_curve = plot.plot([], [], name="smoothed loss", connect="finite")
        # In log-x mode an InfiniteLine's position is log10 of the rate.
        self.suggestion_line = pg.InfiniteLine(
            angle=90, movable=False, label="", labelOpts={"position": 0.88}
        )
        plot.addItem(self.suggestion_line)
        self.lr_plot = plot

    # -- public ---------------------------------------------------------------------------------

    def clear(self) -> None:
        """Back to the empty state: no data, the sentence saying where the charts come from."""
        self.depth_curve.setData([], [])
        self.trial_points.setData([], [])
        self.probe_point.setData([], [])
        self.depth_plot.setXRange(0, 1)
        self.depth_plot.setYRange(0, 100)
        self.lr_plot.setXRange(-6, 0)  # log10 of the rate
        self.lr_plot.setYRange(0, 1)
        self.chance_line.hide()
        self.cut_line.hide()
        self.begin_lr_curve()
        self.reason_label.clear()
        self.reason_label.hide()
        self.empty_label.show()
        self.depth_plot.hide()  # empty axes would only puzzle; the sentence says what comes
        self.lr_plot.hide()

    @property
    def is_empty(self) -> bool:
        """True while nothing has been shown since the last ``clear``."""
        return not self.empty_label.isHidden()

    def set_advice(self, advice: Mapping[str, Any], classes: int = 2) -> None:
        """Show one analysis: ``advice`` is AdviceGiven.advice (advice.json's dict)."""
        self.empty_label.hide()
        self.depth_plot.show()
        self.lr_plot.show()
        reason = str(advice.get("reason") or "")
        self.reason_label.setText(_recipe_line(advice, reason))
        self.reason_label.setVisible(bool(reason))
        self._show_depths(advice, classes)
        curve = advice.get("lr_curve") or {}
        self.set_lr_curve(curve)
        if not curve.get("lrs"):
            why = "a linear probe has none" if advice.get("method") == "linear-probe" else "none"
            self._set_title(self.lr_plot, f"{LR_TITLE}: not run ({why})")

    def begin_lr_curve(self) -> None:
        """Forget the range test shown; points of a new one follow."""
        self._set_title(self.lr_plot, LR_TITLE)
        self._lrs, self._losses = [], []
        self.suggestion = None
        self.lr_curve.setData([], [])
        self.suggestion_line.hide()

    def add_lr_point(self, lr: float, loss: float) -> None:
        """One point of a running range test (the finder streams them)."""
        self.empty_label.hide()
        self.lr_plot.show()
        self._lrs.append(float(lr))
        self._losses.append(float(loss) if math.isfinite(loss) else math.nan)
        self._draw_lr()

    def set_lr_curve(self, curve: Mapping[str, Any]) -> None:
        """A finished range test (LrCurve.to_dict()): its smoothed losses and its suggestion."""
        lrs = [float(v) for v in curve.get("lrs") or []]
        losses = [float(v) for v in curve.get("losses") or []]
        self._lrs, self._losses = lrs, [v if math.isfinite(v) else math.nan for v in losses]
        if lrs:
            self.empty_label.hide()
            self.lr_plot.show()
        self._draw_lr()
        suggestion = curve.get("suggestion")
        self.suggestion = float(suggestion) if suggestion else None
        if self.suggestion is None:
            self.suggestion_line.hide()
            return
        self.suggestion_line.setPos(math.log10(self.suggestion))
        self.suggestion_line.show()
        _set_label(self.suggestion_line, f"suggested {format_lr(self.suggestion)}")

    def lr_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The learning rates and losses drawn (linear values, not log10)."""
        return np.asarray(self._lrs, dtype=float), np.asarray(self._losses, dtype=float)

    # -- drawing --------------------------------------------------------------------------------

    def _show_depths(self, advice: Mapping[str, Any], classes: int) -> None:
        depths = list(advice.get("depths") or [])
        xs = [float(d["index"]) for d in depths]
        # a score that could not be measured (a class of one image) is null: a gap in the line
        ys = [_percent(d.get("cv_accuracy")) for d in depths]
        self.depth_curve.setData(xs, ys, connect="finite")
        position = {d["group"]: float(d["index"]) for d in depths}
        axis = self.depth_plot.getPlotItem().getAxis("bottom")
        axis.setTicks([[(position[g], g) for g in position]])
        trials = [t for t in advice.get("trials") or [] if t.get("group") in position]
        self.trial_points.setData(
            [position[t["group"]] + 0.5 for t in trials],
            [_percent(t.get("accuracy")) for t in trials],
        )
        holdout = advice.get("probe_holdout_accuracy")
        head_x = max(position.values(), default=0.0) + 0.5
        probe_y = [100.0 * float(holdout)] if holdout is not None and depths else []
        self.probe_point.setData([head_x] * len(probe_y), probe_y)
        chance = 100.0 / max(2, classes)
        self.chance_line.setPos(chance)
        self.chance_line.setVisible(bool(depths))
        _set_label(self.chance_line, f"chance {chance:.0f}%")
        self._place_cut(advice, depths, position)
        shown = [y for y in ys if math.isfinite(y)] + [chance] + probe_y
        shown += [y for t in trials if math.isfinite(y := _percent(t.get("accuracy")))]
        # Headroom above the highest point keeps the legend (top left) off the data.
        top = min(100.0, max(shown) + 5) + 0.35 * (max(shown) - min(shown) + 10)
        self.depth_plot.setYRange(max(0.0, min(shown) - 5), top, padding=0)
        if xs:
            self.depth_plot.setXRange(min(xs) - 0.6, max(xs) + 0.9, padding=0)

    def _place_cut(
        self, advice: Mapping[str, Any], depths: Sequence[Mapping[str, Any]], position: dict
    ) -> None:
        """The line after the last frozen group: for a linear probe after the deepest group
        (only the head trains), for a full fine-tune before the first."""
        method = str(advice.get("method") or "")
        cut = advice.get("cut")
        if not depths:
            self.cut_line.hide()
            return
        if cut in position:
            x, label = position[cut] + 0.5, "train from here"
        elif method == "linear-probe":
            x, label = max(position.values()) + 0.5, "train the head only"
        elif method == "full":
            x, label = min(position.values()) - 0.5, "train everything"
        else:
            self.cut_line.hide()
            return
        self.cut_line.setPos(x)
        self.cut_line.show()
        _set_label(self.cut_line, label)

    def _draw_lr(self) -> None:
        lrs, losses = self.lr_data()
        self.lr_curve.setData(lrs, losses)
        finite = losses[np.isfinite(losses)]
        if finite.size:
            # The diverging tail would flatten the useful part: cap the view at twice the start.
            top = float(finite.max())
            if finite[0] > 0:
                top = min(top, 2.0 * float(finite[0]))
            low = float(finite.min())
            pad = max(1e-3, 0.05 * (top - low))
            self.lr_plot.setYRange(low - pad, top + pad, padding=0)

    def apply_palette(self) -> None:
        palette = self.palette()
        theme_plot(self.depth_plot, self.depth_legend)
        theme_plot(self.lr_plot, self.lr_legend)
        text = palette.color(QPalette.ColorRole.Text)
        first, second = series_color(0, palette), series_color(1, palette)
        self.depth_curve.setPen(pg.mkPen(first, width=2))
        self.depth_curve.setSymbolBrush(first)
        self.depth_curve.setSymbolPen(first)
        self.trial_points.setBrush(pg.mkBrush(second))
        self.trial_points.setPen(pg.mkPen(second))
        third = series_color(2, palette)
        self.probe_point.setBrush(pg.mkBrush(third))
        self.probe_point.setPen(pg.mkPen(third))
        self.lr_curve.setPen(pg.mkPen(first, width=2))
        faint = pg.mkPen(text, width=1, style=Qt.PenStyle.DashLine)
        self.chance_line.setPen(faint)
        mark = pg.mkPen(series_color(3, palette), width=2)
        self.cut_line.setPen(mark)
        self.suggestion_line.setPen(mark)
        for line in (self.chance_line, self.cut_line, self.suggestion_line):
            line.label.setColor(text)
        for plot in (self.depth_plot, self.lr_plot):
            self._set_title(plot, plot.getPlotItem().titleLabel.text)

    def _set_title(self, plot: pg.PlotWidget, title: str) -> None:
        color = self.palette().color(QPalette.ColorRole.Text).name()
        plot.getPlotItem().setTitle(title, color=color)

    def lr_title(self) -> str:
        """The LR chart's title (says when no range test was run)."""
        return str(self.lr_plot.getPlotItem().titleLabel.text)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()
        super().changeEvent(event)


def _set_label(line: pg.InfiniteLine, text: str) -> None:
    """Set an InfiniteLine's label; pyqtgraph only re-renders the label of a visible line."""
    line.label.format = text
    line.label.setText(text)


def _recipe_line(advice: Mapping[str, Any], reason: str) -> str:
    """The reason, then what was chosen in a few words (method, groups, rate, epochs)."""
    method = str(advice.get("method") or "")
    parts = {"linear-probe": "linear probe", "full": "full fine-tune", "lora": "LoRA"}
    chosen = parts.get(method, method)
    if method == "last-n":
        chosen = f"fine-tune the last {advice.get('last_n')} groups"
    if method != "linear-probe" and advice.get("lr"):
        chosen += f", learning rate {format_lr(float(advice['lr']))}"
    if method != "linear-probe" and advice.get("epochs"):
        chosen += f", {advice['epochs']} epochs"
    return f"<b>Recommended:</b> {reason}" + (f"<br><i>Chosen: {chosen}.</i>" if chosen else "")


def _percent(value: Any) -> float:
    """A 0..1 score as a percentage; NaN (a gap in the chart) when it was not measured."""
    return float("nan") if value is None else 100.0 * float(value)
