"""The main window: workflow navigation, menus, drag-and-drop, status bar, clean shutdown."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from desktop.context import AppContext, AppSignals
from desktop.data.page import DataPage
from desktop.data.source import TABLE_FILTER, is_table_file
from desktop.layers.page import LayersPage
from desktop.model.page import ModelPage
from desktop.results.page import ResultsPage
from desktop.runs.page import RunsPage
from desktop.state import ConfigState
from desktop.train.page import TrainPage
from desktop.worker import WorkerPool

MAX_RECENT = 8


class MainWindow(QMainWindow):
    """Data → Model → Layers → Train, plus Runs and Results (evaluation, try it, export)."""

    def __init__(self, workspace: Path, settings: QSettings | None = None) -> None:
        super().__init__()
        self._ask_before_closing = True  # False once a terminating signal closes the window
        self.setObjectName("MainWindow")
        self.setWindowTitle("Refit Studio")
        self.setAcceptDrops(True)
        self.ctx = AppContext(
            state=ConfigState(parent=self),
            pool=WorkerPool(self),
            settings=settings or QSettings(),
            signals=AppSignals(self),
            workspace=workspace,
        )
        self.data_page = DataPage(self.ctx)
        self.model_page = ModelPage(self.ctx)
        self.layers_page = LayersPage(self.ctx)
        self.train_page = TrainPage(self.ctx)
        self.runs_page = RunsPage(self.ctx)
        self.results_page = ResultsPage(self.ctx)
        self.pages = [
            self.data_page,
            self.model_page,
            self.layers_page,
            self.train_page,
            self.runs_page,
            self.results_page,
        ]
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self.ctx.signals.status_message.connect(self._on_status_message)
        self.ctx.signals.run_finished.connect(lambda _path: self.runs_page.refresh())
        self.runs_page.run_list.itemSelectionChanged.connect(self._on_runs_selection_changed)
        self.ctx.signals.open_folder_requested.connect(self.open_folder)
        self.ctx.signals.choose_folder_requested.connect(self.choose_folder)
        self.ctx.signals.choose_file_requested.connect(self.choose_file)
        self.ctx.signals.sample_requested.connect(self.open_sample_dataset)
        self.ctx.signals.show_page_requested.connect(self.show_page)
        self._restore_geometry()

    # -- layout -------------------------------------------------------------------------------

    def _build_layout(self) -> None:
        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setFixedWidth(170)
        self.nav.setAccessibleName("Workflow steps")
        self.stack = QStackedWidget()
        self.stack.setObjectName("pages")
        for i, page in enumerate(self.pages):
            label = f"{i + 1}  {page.title}" if i < 4 else page.title
            self.nav.addItem(QListWidgetItem(label))
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self._on_nav_current_row_changed)
        self.nav.setCurrentRow(0)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open Folder…", self)
        open_action.setObjectName("actionOpenFolder")
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.choose_folder)
        file_menu.addAction(open_action)
        open_file_action = QAction("Open &Table File (CSV, TSV, JSONL)…", self)
        open_file_action.setObjectName("actionOpenTableFile")
        open_file_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        open_file_action.triggered.connect(self.choose_file)
        file_menu.addAction(open_file_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.setObjectName("menuRecent")
        sample_action = QAction("Open &Sample Dataset (handwritten digits)", self)
        sample_action.setObjectName("actionOpenSample")
        sample_action.triggered.connect(self.open_sample_dataset)
        file_menu.addAction(sample_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        self._refresh_recent_menu()

        run_menu = self.menuBar().addMenu("&Run")
        for action in self.train_page.actions():
            run_menu.addAction(action)
            self.addAction(action)  # shortcuts work from every page

        go_menu = self.menuBar().addMenu("&Go")
        for i, page in enumerate(self.pages):
            action = QAction(page.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, row=i: self.nav.setCurrentRow(row))
            go_menu.addAction(action)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Refit Studio", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel("Device: detecting…")
        self.device_label.setObjectName("deviceLabel")
        bar.addPermanentWidget(self.device_label)
        # Probing CUDA imports torch; do it after the window is on screen.
        QTimer.singleShot(300, self._detect_device)

    def _detect_device(self) -> None:
        from desktop.device_probe import describe_devices
        from engine import current_edition

        self.device_label.setText(f"Device: {describe_devices()} · {current_edition()}")

    # -- folders ------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        start = str(self.ctx.settings.value("last_folder", str(Path.home())))
        if is_table_file(start):
            start = str(Path(start).parent)
        folder = QFileDialog.getExistingDirectory(self, "Open a labeled folder", str(start))
        if folder:
            self.open_folder(folder)

    def choose_file(self) -> None:
        start = str(self.ctx.settings.value("last_folder", str(Path.home())))
        if is_table_file(start):
            start = str(Path(start).parent)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a table of labeled texts", str(start), TABLE_FILTER
        )
        if path:
            self.open_folder(path)

    def open_folder(self, folder: str | Path) -> None:
        """Load a dataset folder or table file: remember it and show the Data page while it is
        scanned."""
        folder = str(Path(folder).expanduser().resolve())
        self.ctx.settings.setValue("last_folder", folder)
        recent = [f for f in self._recent() if f != folder]
        self.ctx.settings.setValue("recent_folders", [folder, *recent][:MAX_RECENT])
        self._refresh_recent_menu()
        self.nav.setCurrentRow(0)
        self.data_page.open_folder(folder)

    def open_sample_dataset(self) -> None:
        from engine import write_digits_dataset

        try:
            folder = write_digits_dataset(self.ctx.workspace / "samples" / "digits")
        except OSError as exc:
            QMessageBox.warning(
                self, "Sample dataset", f"Could not write the sample dataset: {exc.strerror}."
            )
            return
        self.open_folder(folder)

    def _recent(self) -> list[str]:
        value = self.ctx.settings.value("recent_folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self._recent()
        for folder in recent:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(recent))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = _dropped_folder(event)
        if folder is not None:
            event.acceptProposedAction()
            self.open_folder(folder)

    # -- behaviour ----------------------------------------------------------------------------

    def _on_nav_current_row_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        page = self.pages[row]
        page.on_shown()

    def _on_runs_selection_changed(self) -> None:
        paths = self.runs_page.selected_paths()
        if len(paths) == 1:
            self.results_page.follow_run(paths[0])

    def show_page(self, title: str) -> None:
        for row, page in enumerate(self.pages):
            if page.title == title:
                self.nav.setCurrentRow(row)
                return

    def _on_status_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _show_about(self) -> None:
        from engine import version_line

        QMessageBox.about(
            self,
            "About Refit Studio",
            "Refit Studio: fine-tune pretrained models on your own labeled folders, offline.\n"
            f"{version_line()}.\n"
            f"Runs are stored in {self.ctx.workspace}.",
        )

    def _restore_geometry(self) -> None:
        geometry = self.ctx.settings.value("window_geometry")
        if isinstance(geometry, QByteArray | bytes) and self.restoreGeometry(geometry):
            return
        self.resize(1280, 820)

    def close_without_asking(self) -> None:
        """Close as the close button does when the user answers Yes: a run in progress stops
        (saved, resumable). For a terminating signal, where nobody can answer."""
        self._ask_before_closing = False
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._ask_before_closing and (self.train_page.is_running or self.results_page.busy):
            what = "A run is training" if self.train_page.is_running else "A run is evaluating"
            answer = QMessageBox.question(
                self,
                "Work in progress",
                f"{what}. Stop it and quit? Training is saved and can be resumed later.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.ctx.settings.setValue("window_geometry", self.saveGeometry())
        self.ctx.pool.stop_all()
        event.accept()


def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The first dropped folder or table file (.csv, .tsv, .jsonl)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = url.toLocalFile()
        if is_table_file(path) or Path(path).is_dir():
            return path
    return None
