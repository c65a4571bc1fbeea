"""A live view of one training run: phase, progress with ETA, curves and the log, fed by events."""

from __future__ import annotations

import html
import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.modalities import views_of
from desktop.widgets.palette_colors import level_color
from desktop.widgets.plots import EpochPlot, SeriesPlot, step_loss_plot
from desktop.widgets.run_history import Ema, HistoryLoaded, RunHistory
from engine import (
    EpochEnded,
    LogMessage,
    RunEnded,
    RunStarted,
    RunStatus,
    StageProgressed,
    StepEnded,
)

STAGE_WORDS = {"scan": "checking the data", "features": "computing features"}
LOG_LINES = 5000
# The linear probe fits its head with L-BFGS: its steps have no learning rate to draw. Short:
# the plot is narrow; its tooltip says the rest.
PROBE_LR_NOTE = "No learning rate (L-BFGS)"
PROBE_LR_TIP = (
    "The linear probe fits its head to convergence with L-BFGS and picks its L2 strength by "
    "cross-validation: there is no learning rate to plot."
)


class ProgressClock:
    """Steps per second over a sliding window of wall time, for the ETA."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        self._points.clear()

    def add(self, step: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._points.append((now, step))
        while len(self._points) > 2 and now - self._points[0][0] > self.window_s:
            self._points.popleft()

    def steps_per_second(self) -> float | None:
        if len(self._points) < 2:
            return None
        (t0, s0), (t1, s1) = self._points[0], self._points[-1]
        if t1 - t0 < 0.2 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)

    def eta_seconds(self, step: int, total: int) -> float | None:
        rate = self.steps_per_second()
        return None if rate is None else max(0.0, (total - step) / rate)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3:07`` or ``1:02:03``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunMonitorWidget(QWidget):
    """Phase line, progress bar, loss/validation/learning-rate curves and a log panel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runMonitor")
        self._epochs = 0
        self._total_steps = 0
        self._step = 0
        self._paused = False
        self._clock = ProgressClock()
        self._ema = Ema(0.9)
        self._speed = Ema(0.8)
        self._speed_unit = "images/s"
        self._lr_note = ""  # why the learning-rate plot stays empty ("" when it does not)
        self._build()
        self.reset()

    # -- layout ---------------------------------------------------------------------------------

    def _build(self) -> None:
        self.phase_label = _label("phaseLabel", bold=True)
        self.epoch_label = _label("epochLabel")
        self.speed_label = _label("speedLabel")
        self.eta_label = _label("etaLabel")
        self.device_label = _label("runDeviceLabel")
        row = QHBoxLayout()
        row.addWidget(self.phase_label, 1)
        for label in (self.epoch_label, self.speed_label, self.eta_label, self.device_label):
            row.addSpacing(16)
            row.addWidget(label)
        self.progress = QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setTextVisible(True)

        self.loss_plot = step_loss_plot("lossPlot")
        self.val_plot = EpochPlot("valPlot", y_label="loss", right_label="val accuracy (%)")
        self.val_plot.add_series("val_loss", "val loss", 1, symbol="o")
        self.val_plot.add_series(
            "train_loss", "train loss", 0, style=Qt.PenStyle.DashLine, symbol="t"
        )
        self.val_plot.add_series(
            "val_accuracy", "val accuracy", 2, symbol="s", view=self.val_plot.right_view
        )
        self.lr_plot = SeriesPlot("lrPlot", x_label="step", y_label="learning rate", grid=False)
        self.lr_plot.add_series("lr", None, 4)
        self.lr_plot.legend.hide()

        self.log_panel = QPlainTextEdit()
        self.log_panel.setObjectName("logPanel")
        self.log_panel.setReadOnly(True)
        self.log_panel.setMaximumBlockCount(LOG_LINES)
        self.log_panel.setPlaceholderText("Messages from the run appear here.")
        self.log_panel.setAccessibleName("Run log")

        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self.val_plot)
        lower.addWidget(self.lr_plot)
        lower.setSizes([600, 400])
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("monitorSplitter")
        splitter.addWidget(self.loss_plot)
        splitter.addWidget(lower)
        splitter.addWidget(self.log_panel)
        splitter.setSizes([340, 260, 140])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(splitter, 1)

    # -- state ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty curves and counters for a new run (the log is kept)."""
        for plot in (self.loss_plot, self.val_plot, self.lr_plot):
            plot.clear_data()
        self._set_lr_note("")
        self._ema.reset()
        self._speed.reset()
        self._clock.reset()
        self._epochs = self._total_steps = self._step = 0
        self._paused = False
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        for label in (self.epoch_label, self.speed_label, self.eta_label):
            label.clear()
        self.set_phase("Ready")

    def _set_lr_note(self, note: str) -> None:
        """Say in the learning-rate plot why it stays empty ("" : draw the learning rate)."""
        self._lr_note = note
        self.lr_plot.setTitle(note or None)
        self.lr_plot.setToolTip(PROBE_LR_TIP if note else "")
        if note:
            self.lr_plot.clear_data()

    def set_phase(self, text: str) -> None:
        self.phase_label.setText(text)

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._clock.reset()  # the pause must not count as slow steps
        if paused:
            self.set_phase("Paused — training waits after the current step")
            self.eta_label.setText("ETA —")
        else:
            self.set_phase("Training")

    def log(self, text: str, level: str = "info") -> None:
        """Append a line; warnings and errors are coloured."""
        stamp = time.strftime("%H:%M:%S")
        body = html.escape(text)
        color = level_color(level, self.palette())
        weight = "font-weight:600;" if level == "error" else ""
        if level in ("warning", "error"):
            body = f"{level.upper()}: {body}"
        self.log_panel.appendHtml(
            f'<span style="color:gray">{stamp}</span>&nbsp; '
            f'<span style="color:{color};{weight}">{body}</span>'
        )

    # -- events ---------------------------------------------------------------------------------

    def feed(self, events: Iterable[Any]) -> None:
        """Show a batch of engine events, in order; runs of step events are drawn together."""
        steps: list[StepEnded] = []
        for event in events:
            if isinstance(event, StepEnded):
                steps.append(event)
                continue
            if steps:
                self._on_steps(steps)
                steps = []
            self._on_event(event)
        if steps:
            self._on_steps(steps)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            self._on_run_started(event)
        elif isinstance(event, EpochEnded):
            self._on_epoch_ended(event)
        elif isinstance(event, StageProgressed):
            self._on_stage_progressed(event)
        elif isinstance(event, LogMessage):
            self.log(event.text, event.level)
        elif isinstance(event, RunEnded):
            self._on_run_ended(event)
        elif isinstance(event, HistoryLoaded):
            self.show_history(event.history)

    def _on_run_started(self, event: RunStarted) -> None:
        self._epochs = event.epochs
        self._total_steps = max(1, event.epochs * event.steps_per_epoch)
        self._step = event.start_epoch * event.steps_per_epoch
        self._set_lr_note(PROBE_LR_NOTE if event.feature_cache else "")
        self.progress.setRange(0, self._total_steps)
        self.progress.setValue(min(self._step, self._total_steps))
        self.progress.setFormat("step %v/%m · %p%")
        self.device_label.setText(f"Device: {event.device}")
        self.epoch_label.setText(f"Epoch {event.start_epoch + 1}/{event.epochs}")
        self.set_phase("Paused" if self._paused else "Training")
        cache = " Frozen backbone: features are cached." if event.feature_cache else ""
        samples = views_of(event.modality).modality.noun
        # On cached features a step is a tiny matrix product; "images/s" would mislead.
        self._speed_unit = "cached features/s" if event.feature_cache else f"{samples}/s"
        self.log(
            f"Training {event.trainable_params:,} of {event.total_params:,} parameters on "
            f"{event.train_size} {samples} ({len(event.classes)} classes), validating on "
            f"{event.val_size}, on {event.device}.{cache}"
        )

    def _on_steps(self, events: list[StepEnded]) -> None:
        steps = np.fromiter((e.step for e in events), float, len(events))
        losses = np.fromiter((e.loss for e in events), float, len(events))
        self.loss_plot.append("raw", steps, losses)
        self.loss_plot.append("smooth", steps, self._ema.push(losses))
        if not self._lr_note:
            self.lr_plot.append("lr", steps, [e.lr for e in events])
        last = events[-1]
        self._step = last.step
        self._total_steps = max(self._total_steps, last.total_steps)
        self.progress.setMaximum(self._total_steps)
        self.progress.setValue(min(last.step, self._total_steps))
        self.epoch_label.setText(f"Epoch {last.epoch + 1}/{self._epochs or '?'}")
        speeds = [e.samples_per_sec for e in events if math.isfinite(e.samples_per_sec)]
        if speeds:
            speed = float(self._speed.push([float(np.median(speeds))])[-1])
            self.speed_label.setText(f"{speed:,.0f} {self._speed_unit}")
        if not self._paused:
            self._clock.add(last.step)
            eta = self._clock.eta_seconds(last.step, self._total_steps)
            self.eta_label.setText(f"ETA {format_duration(eta)}" if eta is not None else "ETA …")

    def _on_epoch_ended(self, event: EpochEnded) -> None:
        m, x = event.metrics, [event.epoch + 1]
        # an epoch without steps (the linear probe's final fit) still advances the count
        self.epoch_label.setText(f"Epoch {event.epoch + 1}/{event.epochs}")
        self.val_plot.append("val_loss", x, [m.get("val_loss", math.nan)])
        self.val_plot.append("train_loss", x, [m.get("train_loss", math.nan)])
        self.val_plot.append("val_accuracy", x, [100 * m.get("val_accuracy", math.nan)])
        if event.is_best:
            self.val_plot.clear_markers()
            self.val_plot.add_marker(event.epoch + 1, 2, "best epoch")
        self.log(
            f"Epoch {event.epoch + 1}/{event.epochs}: train loss {_fmt(m.get('train_loss'))}, "
            f"val loss {_fmt(m.get('val_loss'))}, val accuracy "
            f"{_pct(m.get('val_accuracy'))}, macro F1 {_fmt(m.get('val_macro_f1'))} "
            f"({event.seconds:.1f} s){' — best so far' if event.is_best else ''}"
        )

    def _on_stage_progressed(self, event: StageProgressed) -> None:
        word = STAGE_WORDS.get(event.stage, event.stage)
        self.set_phase(f"Preparing: {word} {event.done}/{event.total}")
        self.progress.setRange(0, max(1, event.total))
        self.progress.setValue(min(event.done, max(1, event.total)))
        self.progress.setFormat(f"{word} %v/%m")

    def _on_run_ended(self, event: RunEnded) -> None:
        self.eta_label.clear()
        self.loss_plot.redraw()
        self.lr_plot.redraw()
        self.val_plot.redraw()
        if event.status is RunStatus.COMPLETED:
            self.set_phase("Finished")
            self.progress.setValue(self.progress.maximum())
        elif event.status is RunStatus.CANCELLED:
            self.set_phase("Stopped")
        elif event.status is RunStatus.DIVERGED:
            self.set_phase("Diverged")
            self.log(event.error, "error")
        else:
            self.set_phase("Failed")
            if event.error:
                self.log(event.error, "error")

    def show_history(self, history: RunHistory) -> None:
        """Curves a resumed run had before its checkpoint."""
        self.loss_plot.set_data("raw", history.steps, history.losses)
        self._ema.reset()
        self.loss_plot.set_data("smooth", history.steps, self._ema.push(history.losses))
        probe = len(history.lrs) > 0 and not any(history.lrs)
        self._set_lr_note(PROBE_LR_NOTE if probe else "")
        if not probe:
            self.lr_plot.set_data("lr", history.steps, history.lrs)
        self.val_plot.set_data("val_loss", history.epochs, history.val_loss)
        self.val_plot.set_data("train_loss", history.epochs, history.train_loss)
        self.val_plot.set_data("val_accuracy", history.epochs, history.val_accuracy)
        self.val_plot.clear_markers()
        if history.best_epoch is not None:
            self.val_plot.add_marker(history.best_epoch, 2, "best epoch")


def _label(name: str, *, bold: bool = False) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if bold:
        font = QFont(label.font())
        font.setBold(True)
        label.setFont(font)
    return label


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"
