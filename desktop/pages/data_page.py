"""Data page: open a labeled folder, see what is in it and what is wrong, choose the split."""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.pages.base import Page
from desktop.widgets.class_chart import ClassChartWidget
from desktop.widgets.class_table import ClassTableWidget
from desktop.widgets.dataset_states import EmptyStateWidget, ScanProgressWidget
from desktop.widgets.image_preview import ImagePreviewDialog
from desktop.widgets.problem_list import ProblemListWidget, severity_icon
from desktop.widgets.split_settings import SplitSettingsWidget
from desktop.widgets.thumbnails import Thumb, ThumbnailGridWidget
from desktop.worker import EngineWorker
from engine.events import Event, StageProgressed

if TYPE_CHECKING:
    from engine.data import DatasetIndex, Problem
    from engine.training.control import RunControl

RESCAN_DELAY_MS = 700
EMPTY, SCANNING, CONTENT = range(3)


def scan_job(folder: str, min_per_class: int) -> Callable[[Callable[[Event], None], Any], Any]:
    """The background job of one scan (engine.data imports torch: keep it off the GUI path)."""

    def job(on_event: Callable[[Event], None], control: RunControl) -> DatasetIndex:
        from engine.data import scan_folder

        def progress(done: int, total: int) -> None:
            on_event(StageProgressed(stage="scan", done=done, total=total))

        return scan_folder(
            folder, min_per_class=min_per_class, progress=progress, cancel=control.cancel_event
        )

    return job


class _ScanRelay(QObject):
    """Lives in the GUI thread, so the worker's signals are queued to it (a lambda would run in
    the worker thread), and tags each with its scan's token so a replaced scan is ignored."""

    def __init__(self, page: DataPage, token: int) -> None:
        super().__init__(page)
        self.page, self.token = page, token

    def _on_worker_events(self, events: list[Event]) -> None:
        self.page._on_scan_events(self.token, events)

    def _on_worker_succeeded(self, index: DatasetIndex) -> None:
        self.page._on_scan_succeeded(self.token, index)

    def _on_worker_failed(self, sentence: str) -> None:
        self.page._on_scan_failed(self.token, sentence)

    def _on_worker_done(self) -> None:
        self.page._on_scan_done(self.token)
        self.deleteLater()


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word}es" if word.endswith("s") else f"{n:,} {word}s"


class DataPage(Page):
    """The first step: a labeled folder is scanned in the background and shown with its
    classes, counts, thumbnails and problems; the split settings are edited here."""

    title = "Data"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.index: DatasetIndex | None = None
        self.folder = ""
        self._token = 0
        self._control: RunControl | None = None
        self._scanned_min = ctx.state.config.data.min_per_class
        self._preview: ImagePreviewDialog | None = None
        self._rescan_timer = QTimer(self)
        self._rescan_timer.setSingleShot(True)
        self._rescan_timer.setInterval(RESCAN_DELAY_MS)
        self._rescan_timer.timeout.connect(self.rescan)

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_header())
        layout.addWidget(self._build_banner())
        self.empty_state = EmptyStateWidget()
        self.empty_state.open_requested.connect(ctx.signals.choose_folder_requested)
        self.empty_state.sample_requested.connect(ctx.signals.sample_requested)
        self.scan_progress = ScanProgressWidget()
        self.scan_progress.stop_requested.connect(self.stop_scan)
        self.stack = QStackedWidget()
        self.stack.setObjectName("dataStack")
        for panel in (self.empty_state, self.scan_progress, self._build_content()):
            self.stack.addWidget(panel)
        layout.addWidget(self.stack, 1)
        layout.addLayout(self._build_footer())
        self._set_tab_order()
        ctx.state.changed.connect(self._on_state_changed)
        self._show_state(EMPTY)

    # -- public -------------------------------------------------------------------------------

    @property
    def scanning(self) -> bool:
        return self._control is not None

    @property
    def usable(self) -> bool:
        """A scan finished and nothing in it stops training."""
        return self.index is not None and self.index.fatal_problem() is None

    def open_folder(self, folder: str) -> None:
        """Show ``folder``: remember it in the config and check it in the background."""
        folder = str(folder)
        self.ctx.state.update("data", path=folder)
        self._start_scan(folder)

    def rescan(self) -> None:
        """Check the current folder again (after files changed or the class minimum did)."""
        self._rescan_timer.stop()
        if self.folder:
            self._start_scan(self.folder)

    def stop_scan(self) -> None:
        if self._control is None:
            return
        self._control.cancel()
        self._control = None
        self._token += 1  # whatever it still sends is ignored
        self._show_message(
            "The check was stopped before it finished. Press Scan again to check the folder.",
            "warning",
        )
        self.summary_label.setText("Not checked")
        self._show_state(EMPTY)

    # -- scanning -----------------------------------------------------------------------------

    def _start_scan(self, folder: str) -> None:
        self._rescan_timer.stop()
        if self._control is not None:
            self._control.cancel()  # the old scan stops soon; its late results are ignored
        self._token += 1
        relay = _ScanRelay(self, self._token)
        self.folder = folder
        self.index = None
        self._scanned_min = self.ctx.state.config.data.min_per_class
        worker = EngineWorker(scan_job(folder, self._scanned_min))
        worker.events.connect(relay._on_worker_events)
        worker.succeeded.connect(relay._on_worker_succeeded)
        worker.failed.connect(relay._on_worker_failed)
        worker.done.connect(relay._on_worker_done)
        self._control = worker.control
        self.folder_label.setText(f"<b>{html.escape(folder)}</b>")
        self.summary_label.setText("Checking…")
        self._show_message("")
        self.scan_progress.start(folder)
        self._show_state(SCANNING)
        self.ctx.pool.start(worker)

    def _on_scan_events(self, token: int, events: list[Event]) -> None:
        if token != self._token:
            return
        scan = [e for e in events if isinstance(e, StageProgressed) and e.stage == "scan"]
        if scan:
            self.scan_progress.set_progress(scan[-1].done, scan[-1].total)

    def _on_scan_succeeded(self, token: int, index: DatasetIndex) -> None:
        if token != self._token:
            return
        self.index = index
        self._show_index(index)
        self.ctx.signals.dataset_scanned.emit(index)

    def _on_scan_failed(self, token: int, sentence: str) -> None:
        if token != self._token:
            return
        self._show_message(sentence, "error")
        self.summary_label.setText("Could not be opened")
        self._show_state(EMPTY)
        self.ctx.signals.status_message.emit(sentence)

    def _on_scan_done(self, token: int) -> None:
        if token == self._token:
            self._control = None
            self._update_continue()

    # -- showing a scan -----------------------------------------------------------------------

    def _show_index(self, index: DatasetIndex) -> None:
        counts = index.class_counts()
        classes = list(index.classes)
        splits = {s for s in counts if s != "all"}
        summary = f"{_plural(len(index.samples), 'image')} in {_plural(len(classes), 'class')}"
        if index.has_splits:
            names = "/".join(s for s in ("train", "val", "test") if s in splits)
            summary += f" · uses the folder's {names} split"
        self.summary_label.setText(summary)
        self.class_table.set_counts(classes, counts)
        self.chart.set_counts(classes, counts)
        self.chart_scroll.setMaximumHeight(self.chart.height() + 2)  # scrolls when space is short
        self.split_settings.set_folder_splits(splits)
        self.grid.set_dataset(
            [Thumb(s.path, classes[s.label], s.split) for s in index.samples], classes
        )
        self._show_problems(index.problems)
        fatal = index.fatal_problem()
        if fatal is not None:
            self._show_message(f"{fatal.message} Then press Scan again.", "error")
        self._show_state(CONTENT)
        self._update_continue()

    def _show_problems(self, problems: tuple[Problem, ...]) -> None:
        self.problem_list.set_problems(problems)
        if not problems:
            self.problems_title.setText("<b>Problems</b>: none found. Every file can be used.")
            return
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        parts = [_plural(n, w) for n, w in ((errors, "error"), (warnings, "warning")) if n]
        self.problems_title.setText(
            f"<b>Problems</b>: {', '.join(parts)}. Click one to see the file."
        )

    def _update_continue(self) -> None:
        usable = self.usable
        self.continue_button.setEnabled(usable)
        if usable:
            self.next_hint.setText("The folder is ready. Next, choose a pretrained model.")
        elif self.index is not None:
            self.next_hint.setText("Fix the problem marked in red, then press Scan again.")
        else:
            self.next_hint.setText("")
        self.rescan_button.setEnabled(bool(self.folder) and not self.scanning)

    def _show_state(self, which: int) -> None:
        self.stack.setCurrentIndex(which)
        has_folder = which != EMPTY or bool(self.folder)
        self.folder_label.setVisible(has_folder)
        self.summary_label.setVisible(has_folder)
        self.rescan_button.setVisible(has_folder)
        self.open_button.setVisible(has_folder)
        self._update_continue()

    def _show_message(self, text: str, severity: str = "warning") -> None:
        self.banner.setText(text)
        self.banner_icon.setPixmap(severity_icon(severity).pixmap(20, 20))
        self.banner_box.setVisible(bool(text))

    # -- interaction --------------------------------------------------------------------------

    def _on_problem_list_problem_activated(self, problem: Problem) -> None:
        if not problem.path:
            return
        if self.grid.select_path(problem.path):
            self.grid.view.setFocus()
            return
        self.show_preview(problem.path, problem=problem.message, severity=problem.severity)

    def _on_grid_image_activated(self, path: str) -> None:
        row = self.grid.model.row_of(path)
        if row is None:
            return
        thumb = self.grid.model.thumb(row)
        where = f", {thumb.split} set" if thumb.split else ""
        self.show_preview(path, details=f"Class: {thumb.class_name}{where}")

    def _on_class_table_item_double_clicked(self, item: QTableWidgetItem) -> None:
        name = self.class_table.class_at(item.row())
        combo = self.grid.filter_combo
        combo.setCurrentIndex(max(0, combo.findData(name)))

    def show_preview(self, path: str, **kwargs: Any) -> ImagePreviewDialog:
        """The preview window for one file (decoded in the background)."""
        if self._preview is None:
            self._preview = ImagePreviewDialog(self)
        self._preview.show_file(path, **kwargs)
        return self._preview

    def _on_continue_button_clicked(self) -> None:
        self.ctx.signals.show_page_requested.emit("Model")

    def _on_state_changed(self, config: Any) -> None:
        data = config.data
        if self.folder and data.min_per_class != self._scanned_min:
            self._rescan_timer.start()  # debounced: typing 25 must not scan for 2 first

    # -- building -----------------------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        row = QHBoxLayout()
        text = QVBoxLayout()
        self.folder_label = QLabel()
        self.folder_label.setObjectName("folderLabel")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_label.setWordWrap(True)
        text.addWidget(self.folder_label)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("summaryLabel")
        text.addWidget(self.summary_label)
        row.addLayout(text, 1)
        self.rescan_button = QPushButton("Scan &Again")
        self.rescan_button.setObjectName("rescanButton")
        self.rescan_button.setToolTip("Check the folder again, e.g. after you fixed files in it.")
        self.rescan_button.clicked.connect(self.rescan)
        row.addWidget(self.rescan_button, 0, Qt.AlignmentFlag.AlignTop)
        self.open_button = QPushButton("&Open Another Folder…")
        self.open_button.setObjectName("openFolderButton")
        self.open_button.clicked.connect(self.ctx.signals.choose_folder_requested)
        row.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignTop)
        return row

    def _build_banner(self) -> QWidget:
        self.banner_box = QWidget()
        self.banner_box.setObjectName("messageBox")
        row = QHBoxLayout(self.banner_box)
        row.setContentsMargins(0, 0, 0, 0)
        self.banner_icon = QLabel()
        self.banner_icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.banner_icon)
        self.banner = QLabel()
        self.banner.setObjectName("messageBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.banner, 1)
        self.banner_box.hide()
        return self.banner_box

    def _build_content(self) -> QWidget:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("<b>Classes</b> (double-click one to see its images)"))
        self.class_table = ClassTableWidget()
        self.class_table.itemDoubleClicked.connect(self._on_class_table_item_double_clicked)
        left_layout.addWidget(self.class_table)
        self.chart = ClassChartWidget()
        self.chart_scroll = QScrollArea()
        self.chart_scroll.setWidgetResizable(True)
        self.chart_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.chart_scroll.setWidget(self.chart)
        left_layout.addWidget(self.chart_scroll, 1)
        self.split_settings = SplitSettingsWidget(self.ctx.state)
        left_layout.addWidget(self.split_settings)
        left_layout.addStretch(1)

        right = QSplitter(Qt.Orientation.Vertical)
        self.grid = ThumbnailGridWidget()
        self.grid.image_activated.connect(self._on_grid_image_activated)
        right.addWidget(self.grid)
        problems = QWidget()
        problems_layout = QVBoxLayout(problems)
        problems_layout.setContentsMargins(0, 0, 0, 0)
        self.problems_title = QLabel()
        self.problems_title.setObjectName("problemsTitle")
        problems_layout.addWidget(self.problems_title)
        self.problem_list = ProblemListWidget()
        self.problem_list.problem_activated.connect(self._on_problem_list_problem_activated)
        problems_layout.addWidget(self.problem_list, 1)
        right.addWidget(problems)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("dataSplitter")
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        return splitter

    def _build_footer(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.next_hint = QLabel()
        self.next_hint.setObjectName("continueHint")
        self.next_hint.setWordWrap(True)
        row.addWidget(self.next_hint, 1)
        self.continue_button = QPushButton("Continue to Model →")
        self.continue_button.setObjectName("continueButton")
        self.continue_button.clicked.connect(self._on_continue_button_clicked)
        row.addWidget(self.continue_button)
        return row

    def _set_tab_order(self) -> None:
        s = self.split_settings
        chain = [
            self.empty_state.open_button, self.empty_state.sample_button, self.rescan_button,
            self.open_button, self.scan_progress.stop_button, self.class_table, s.val_spin,
            s.test_spin, s.seed_spin, s.min_spin, self.grid.filter_combo, self.grid.view,
            self.problem_list, self.continue_button,
        ]  # fmt: skip
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)
