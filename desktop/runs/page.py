"""Runs page: every run in the workspace; one selected shows its curves and config, two compare."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from desktop.context import AppContext
from desktop.page import Page
from desktop.widgets.run_history import RunHistory, smooth
from engine import RunDetails, RunInfo, Workspace

if TYPE_CHECKING:
    from desktop.widgets.plots import EpochPlot, SeriesPlot

COLUMNS = ("Run", "Status", "Backbone", "Method", "Epochs", "Best val accuracy", "Created")
MAX_OVERLAY = 6
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole


def load_details(paths: list[Path]) -> list[RunDetails]:
    """Read metrics, config, state and summary of each run (metrics.jsonl can be long); a damaged
    file is shown as its problem, never an error."""
    from engine import RunDir, run_details

    return [run_details(RunDir(path)) for path in paths]


class _RunItem(QTreeWidgetItem):
    """A row that sorts numbers as numbers."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() else 0
        mine, theirs = self.data(column, SORT_ROLE), other.data(column, SORT_ROLE)
        if mine is not None and theirs is not None:
            return mine < theirs
        return self.text(column) < other.text(column)


class RunsPage(Page):
    """The run list with curves, config and Resume; select two runs to overlay their curves."""

    title = "Runs"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self._details: list[RunDetails] = []
        self._generation = 0
        self._loss_plot: SeriesPlot | None = None
        self._val_plot: EpochPlot | None = None
        self._active: set[str] = set()  # runs training right now: not resumable from here
        self._build_layout()
        ctx.signals.run_started.connect(self._on_signals_run_started)
        ctx.signals.run_finished.connect(self._on_signals_run_finished)
        self._populate()

    def _build_layout(self) -> None:
        heading = QLabel(
            "<h2>Runs</h2>Every run in the workspace. Select one to see its curves and "
            "settings; select two or more (Ctrl+click) to compare them."
        )
        heading.setWordWrap(True)
        self.notice = QLabel()
        self.notice.setObjectName("runsNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.hide()
        self.refresh_button = _button("refreshButton", "Refresh", "Read the run list again")
        self.refresh_button.clicked.connect(self._on_refresh_button_clicked)
        self.open_button = _button("openFolderButton", "Open folder", "Show the run's files")
        self.open_button.clicked.connect(self._on_open_button_clicked)
        self.resume_button = _button(
            "resumeButton", "Resume", "Continue this stopped run on the Train page"
        )
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        buttons = QHBoxLayout()
        for button in (self.refresh_button, self.open_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.run_list = QTreeWidget()
        self.run_list.setObjectName("runList")
        self.run_list.setHeaderLabels(COLUMNS)
        self.run_list.setRootIsDecorated(False)
        self.run_list.setUniformRowHeights(True)
        self.run_list.setAlternatingRowColors(True)
        self.run_list.setSortingEnabled(True)
        self.run_list.sortByColumn(COLUMNS.index("Created"), Qt.SortOrder.DescendingOrder)
        self.run_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.run_list.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.run_list.itemSelectionChanged.connect(self._on_run_list_item_selection_changed)

        self.config_view = QPlainTextEdit()
        self.config_view.setObjectName("configView")
        self.config_view.setReadOnly(True)
        self.config_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.config_view.setPlaceholderText("Select a run to see its settings.")
        self._plots = QSplitter(Qt.Orientation.Vertical)
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self._plots)
        lower.addWidget(self.config_view)
        lower.setSizes([700, 360])
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(self.run_list)
        main.addWidget(lower)
        main.setSizes([220, 520])
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.notice)
        layout.addLayout(buttons)
        layout.addWidget(main, 1)
        self._update_buttons()

    # -- public ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the run list again, keeping the selection (or selecting the newest run)."""
        self._populate()
        if not self.selected_paths() and self.run_list.topLevelItemCount():
            self.run_list.topLevelItem(0).setSelected(True)
        else:
            self._on_run_list_item_selection_changed()

    def _populate(self) -> None:
        selected = {str(p) for p in self.selected_paths()}
        workspace = Workspace(self.ctx.workspace)
        runs = workspace.list_runs()
        self._show_notice(workspace.problem(writing=True), runs)
        self.run_list.blockSignals(True)
        self.run_list.setSortingEnabled(False)
        self.run_list.clear()
        for info in runs:
            self.run_list.addTopLevelItem(_make_item(info))
        self.run_list.setSortingEnabled(True)
        for i in range(self.run_list.topLevelItemCount()):
            item = self.run_list.topLevelItem(i)
            item.setSelected(item.data(0, PATH_ROLE) in selected)
        self.run_list.blockSignals(False)

    def _show_notice(self, workspace_problem: str, runs: list[RunInfo]) -> None:
        damaged = [r for r in runs if r.problems]
        lines = [workspace_problem] if workspace_problem else []
        if damaged:
            some = "1 run has" if len(damaged) == 1 else f"{len(damaged)} runs have"
            lines.append(f"{some} damaged files (marked ⚠); select one to see which.")
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(bool(lines))

    def selected_paths(self) -> list[Path]:
        """Selected runs, in list order."""
        items = [self.run_list.topLevelItem(i) for i in range(self.run_list.topLevelItemCount())]
        return [Path(item.data(0, PATH_ROLE)) for item in items if item.isSelected()]

    def on_shown(self) -> None:
        self.refresh()

    # -- loading --------------------------------------------------------------------------------

    def _on_run_list_item_selection_changed(self) -> None:
        paths = self.selected_paths()[:MAX_OVERLAY]
        self._generation += 1
        self._details = []
        self._update_buttons()
        if not paths:
            self._show([])
            return
        generation = self._generation
        self.ctx.pool.submit(
            lambda _task: (generation, load_details(paths)),
            self._on_loader_succeeded,
            on_error=self._on_loader_failed,
        )

    def _on_loader_succeeded(self, result: tuple[int, list[RunDetails]]) -> None:
        generation, details = result
        if generation == self._generation:  # an older selection's answer is dropped
            self._details = details
            self._show(details)
            self._update_buttons()

    def _on_loader_failed(self, sentence: str) -> None:
        self.config_view.setPlainText(f"Could not read the run: {sentence}")

    # -- showing --------------------------------------------------------------------------------

    @property
    def loss_plot(self) -> SeriesPlot:
        """Training loss per step (built on first use: pyqtgraph is not needed at startup)."""
        return self._ensure_plots()[0]

    @property
    def val_plot(self) -> EpochPlot:
        """Validation loss and accuracy per epoch."""
        return self._ensure_plots()[1]

    def _ensure_plots(self) -> tuple[SeriesPlot, EpochPlot]:
        if self._loss_plot is None or self._val_plot is None:
            from desktop.widgets.plots import EpochPlot, SeriesPlot

            self._loss_plot = SeriesPlot(
                "runLossPlot", x_label="step", y_label="training loss", grid=False
            )
            self._val_plot = EpochPlot("runValPlot", y_label="loss", right_label="val accuracy (%)")
            self._plots.addWidget(self._loss_plot)
            self._plots.addWidget(self._val_plot)
        return self._loss_plot, self._val_plot

    def _show(self, details: list[RunDetails]) -> None:
        self.loss_plot.remove_all()
        self.val_plot.remove_all()
        if len(details) == 1:
            self._show_single(details[0])
        else:
            for index, run in enumerate(details):
                self._show_overlay(index, run)
        for plot in (self.loss_plot, self.val_plot):
            plot.redraw()
            plot.getPlotItem().enableAutoRange()
        self.config_view.setPlainText(_details_text(details))

    def _show_single(self, run: RunDetails) -> None:
        h = RunHistory.from_curves(run.curves)
        self.loss_plot.add_series("raw", "per step", 0, alpha=70, width=1.0)
        self.loss_plot.add_series("smooth", "smoothed", 0, width=2.0)
        self.loss_plot.set_data("raw", h.steps, h.losses)
        self.loss_plot.set_data("smooth", h.steps, smooth(h.losses))
        self.val_plot.add_series("val_loss", "val loss", 1, symbol="o")
        self.val_plot.add_series("train_loss", "train loss", 0, style=Qt.PenStyle.DashLine)
        self.val_plot.add_series(
            "val_accuracy", "val accuracy", 2, symbol="s", view=self.val_plot.right_view
        )
        self.val_plot.set_data("val_loss", h.epochs, h.val_loss)
        self.val_plot.set_data("train_loss", h.epochs, h.train_loss)
        self.val_plot.set_data("val_accuracy", h.epochs, h.val_accuracy)
        if h.best_epoch is not None:
            self.val_plot.add_marker(h.best_epoch, 2, "best epoch")

    def _show_overlay(self, index: int, run: RunDetails) -> None:
        h, key = RunHistory.from_curves(run.curves), run.run_id
        self.loss_plot.add_series(f"{key}:loss", run.label, index, width=2.0)
        self.loss_plot.set_data(f"{key}:loss", h.steps, smooth(h.losses))
        self.val_plot.add_series(
            f"{key}:val_loss", f"{run.label} val loss", index, style=Qt.PenStyle.DashLine
        )
        self.val_plot.set_data(f"{key}:val_loss", h.epochs, h.val_loss)
        self.val_plot.add_series(
            f"{key}:val_accuracy",
            f"{run.label} val accuracy",
            index,
            symbol="o",
            view=self.val_plot.right_view,
        )
        self.val_plot.set_data(f"{key}:val_accuracy", h.epochs, h.val_accuracy)

    # -- buttons --------------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        paths = self.selected_paths()
        self.open_button.setEnabled(len(paths) == 1)
        details = self._details[0] if len(self._details) == 1 else None
        self.resume_button.setEnabled(
            len(paths) == 1
            and details is not None
            and details.resumable
            and str(paths[0]) not in self._active
        )

    def _on_refresh_button_clicked(self) -> None:
        self.refresh()

    def _on_open_button_clicked(self) -> None:
        paths = self.selected_paths()
        if paths:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths[0])))

    def _on_resume_button_clicked(self) -> None:
        paths = self.selected_paths()
        if len(paths) == 1:
            self.ctx.signals.resume_requested.emit(str(paths[0]))

    def _on_signals_run_started(self, run_dir: str) -> None:
        self._active.add(str(Path(run_dir)))
        self._update_buttons()

    def _on_signals_run_finished(self, run_dir: str) -> None:
        self._active.discard(str(Path(run_dir)))
        self._update_buttons()


def _button(name: str, text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setToolTip(tip)
    return button


def _make_item(info: RunInfo) -> QTreeWidgetItem:
    acc = info.best.get("val_accuracy")
    values = (
        info.name or info.run_id,
        info.status,
        info.backbone,
        info.method,
        str(info.epochs_done),
        f"{100 * acc:.1f}%" if isinstance(acc, int | float) else "—",
        info.created[:19].replace("T", " "),
    )
    item = _RunItem(list(values))
    item.setData(0, PATH_ROLE, str(info.path))
    item.setToolTip(0, str(info.path))
    if info.problems:  # damaged files: a warning sign, and the sentences on hover
        warning = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        item.setIcon(1, warning)
        item.setToolTip(1, "\n".join(info.problems))
    item.setData(4, SORT_ROLE, info.epochs_done)
    item.setData(5, SORT_ROLE, float(acc) if isinstance(acc, int | float) else -1.0)
    item.setData(6, SORT_ROLE, info.created or info.run_id)
    for column in (4, 5):
        item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _details_text(details: list[RunDetails]) -> str:
    if not details:
        return ""
    parts = []
    if len(details) > 1:
        parts.append(_differences(details))
    for run in details:
        parts.append(_facts(run) + "\n\nconfig.json\n" + json.dumps(run.config, indent=2))
    return "\n\n".join(parts)


def _facts(run: RunDetails) -> str:
    state, best = run.state.raw, run.summary.raw.get("best", {})
    lines = [f"{run.label}  ·  {run.status or state.get('status', 'unknown')}"]
    lines += [f"Problem: {problem}" for problem in run.problems]
    if state.get("device"):
        lines.append(f"Device: {state['device']}, precision {state.get('precision', '?')}")
    accuracy = best.get("val_accuracy") if isinstance(best, dict) else None
    if isinstance(accuracy, int | float):
        epoch = best.get("epoch", 0)
        epoch = int(epoch) + 1 if isinstance(epoch, int | float) and epoch == epoch else "?"
        lines.append(f"Best val accuracy {100 * accuracy:.1f}% at epoch {epoch}")
    if state.get("error"):
        lines.append(f"Error: {state['error']}")
    if run.status == "interrupted":
        lines.append("The process training it is gone (killed, crashed or the computer restarted).")
    if run.resumable:
        lines.append("Stopped before the end: Resume continues it.")
    return "\n".join(lines)


def _differences(details: list[RunDetails]) -> str:
    flat = [_flatten(run.config) for run in details]
    keys = sorted({k for f in flat for k in f})
    lines = ["Settings that differ:"]
    for key in keys:
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values) and key != "name":
            lines.append(f"  {key}: " + "  vs  ".join(json.dumps(v) for v in values))
    return "\n".join(lines) if len(lines) > 1 else "Same settings."


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
