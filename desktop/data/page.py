"""Data page: open labeled images or texts, see what is in them and what is wrong, choose the
split (and, for a table file, its text and label columns; for images, what groups them by
patient and, for DICOM files, their window)."""

from __future__ import annotations

import html
import itertools
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.data.dataset_states import (
    EmptyStateWidget,
    MessageBannerWidget,
    ScanProgressWidget,
)
from desktop.data.dataset_view import DatasetViewWidget, is_grouped, patient_count, plural
from desktop.data.image_preview import ImagePreviewDialog
from desktop.data.label_review_view import LabelReviewDialog
from desktop.data.source import SourceScan, is_table_file, scan_source_job
from desktop.modalities import views_of
from desktop.page import Page

if TYPE_CHECKING:
    from engine import Progress

RESCAN_DELAY_MS = 700
EMPTY, SCANNING, CONTENT = range(3)
# The engine's sentences name the command line's flags; on this page the boxes do that job.
_FLAG_WORDS = (
    ("choose with --text-column and --label-column", "choose them in the column boxes"),
    ("choose with --text-column", "choose it in the Text column box"),
    ("choose with --label-column", "choose it in the Label column box"),
    (" with --text-column", " in the Text column box"),
    (" with --label-column", " in the Label column box"),
)


def gui_sentence(sentence: str) -> str:
    for flag, words in _FLAG_WORDS:
        sentence = sentence.replace(flag, words)
    return sentence


class DataPage(Page):
    """The first step: a labeled folder or table file is scanned in the background and shown
    with its classes, counts, thumbnails or example texts, and problems."""

    title = "Data"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.index: Any = None  # DatasetIndex or TextIndex of the last good scan
        self.folder = ""  # the folder or table file shown
        self.modality = "image"
        self._scan_key = object()  # the pool's key of this page's scan
        self._scanned_min = ctx.state.config.data.min_per_class
        self._scanned_columns = ("", "")
        self._scanned_group_by = ctx.state.config.data.group_by
        self._scanned_frames = str(ctx.state.config.data.dicom_frames)
        self.dicom = False  # the last scan found DICOM files
        self.label_review: LabelReviewDialog | None = None  # made on the first review
        self._rescan_timer = QTimer(self)
        self._rescan_timer.setSingleShot(True)
        self._rescan_timer.setInterval(RESCAN_DELAY_MS)
        self._rescan_timer.timeout.connect(self.rescan)

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_header())
        self.banner_box = MessageBannerWidget()
        self.banner = self.banner_box.label
        layout.addWidget(self.banner_box)
        self.empty_state = EmptyStateWidget()
        self.empty_state.open_requested.connect(ctx.signals.choose_folder_requested)
        self.empty_state.open_file_requested.connect(ctx.signals.choose_file_requested)
        self.empty_state.sample_requested.connect(ctx.signals.sample_requested)
        self.scan_progress = ScanProgressWidget()
        self.scan_progress.stop_requested.connect(self.stop_scan)
        self.view = DatasetViewWidget(ctx.state)
        self.view.text_view.columns_chosen.connect(self._on_text_view_columns_chosen)
        # The view's parts, by the names the page has always had.
        v = self.view
        self.class_table, self.chart, self.split_settings = v.class_table, v.chart, v.split_settings
        self.grid, self.text_view, self.problem_list = v.grid, v.text_view, v.problem_list
        self.problems_title = v.problems_title
        self.stack = QStackedWidget()
        self.stack.setObjectName("dataStack")
        for panel in (self.empty_state, self.scan_progress, self.view):
            self.stack.addWidget(panel)
        layout.addWidget(self.stack, 1)
        layout.addLayout(self._build_footer())
        self._set_tab_order()
        ctx.state.changed.connect(self._on_state_changed)
        self._show_state(EMPTY)

    # -- public -------------------------------------------------------------------------------

    @property
    def scanning(self) -> bool:
        return self.ctx.pool.running(self._scan_key)

    @property
    def usable(self) -> bool:
        """A scan finished and nothing in it stops training."""
        return self.index is not None and self.index.fatal_problem() is None

    def open_folder(self, folder: str) -> None:
        """Show a folder or table file: remember it in the config and check it in the
        background. A new source's columns are guessed afresh."""
        folder = str(folder)
        self.folder = ""  # the config change below is not a column change of the old source
        self.ctx.state.update("data", path=folder, text_column="", label_column="")
        self._start_scan(folder, new_source=True)

    def rescan(self) -> None:
        """Check the current source again (after files changed, or the class minimum or the
        columns did)."""
        self._rescan_timer.stop()
        if self.folder:
            self._start_scan(self.folder, new_source=True)  # files may have changed: read again

    def stop_scan(self) -> None:
        if not self.ctx.pool.drop(self._scan_key):  # whatever it still sends is ignored
            return
        self._show_message(
            "The check was stopped before it finished. Press Scan again to check the folder.",
            "warning",
        )
        self.summary_label.setText("Not checked")
        self._show_state(EMPTY)

    # -- scanning -----------------------------------------------------------------------------

    def _start_scan(self, path: str, *, new_source: bool) -> None:
        self._rescan_timer.stop()
        data = self.ctx.state.config.data
        new_source = new_source or path != self.folder
        if new_source:
            self.text_view.set_source(path, None)
        self.folder = path
        self.index = None
        self._scanned_min = data.min_per_class
        self._scanned_columns = (data.text_column, data.label_column)
        self._scanned_group_by = data.group_by
        self._scanned_frames = str(data.dicom_frames)
        job = scan_source_job(
            path,
            min_per_class=data.min_per_class,
            text_column=data.text_column,
            label_column=data.label_column,
            read_table=self.text_view.source.table is None,
            group_by=data.group_by,
            frames=str(data.dicom_frames),
        )
        # A scan started before this one is cancelled and its late results are ignored.
        self.ctx.pool.submit(
            job,
            self._on_scan_succeeded,
            key=self._scan_key,
            on_error=self._on_scan_failed,
            on_progress=self._on_scan_progress,
            on_done=self._update_continue,
        )
        self.folder_label.setText(f"<b>{html.escape(path)}</b>")
        self.summary_label.setText("Checking…")
        self._show_message("")
        if new_source or self.stack.currentIndex() != CONTENT:
            self.scan_progress.start(path, table=is_table_file(path))
            self._show_state(SCANNING)
        else:  # other columns of the same table: keep the picker in view while it is checked
            self.summary_label.setText("Checking the chosen columns…")
            self._update_continue()

    def _on_scan_progress(self, progress: Progress) -> None:
        if progress.total:
            self.scan_progress.set_progress(progress.done, progress.total)

    def _on_scan_succeeded(self, scan: SourceScan) -> None:
        self.modality = scan.modality
        self.dicom = scan.dicom
        self.view.set_modality(scan.modality, is_file=is_table_file(scan.path))
        if scan.table is not None:
            self.text_view.set_source(scan.path, scan.table)
        self.index = scan.index
        if scan.index is None:  # a table whose columns cannot be used: let the user choose
            data = self.ctx.state.config.data
            self.text_view.source.set_columns(data.text_column or None, data.label_column or None)
            self._show_unusable_columns(gui_sentence(scan.error))
            return
        index = scan.index
        columns = (
            getattr(index, "text_column", "") or "",
            getattr(index, "label_column", "") or "",
        )
        if columns[0] and columns[1]:
            # The guessed columns go into the config, so that the run replays exactly.
            self._scanned_columns = columns
            self.ctx.state.update("data", text_column=columns[0], label_column=columns[1])
        self._show_index(scan.index)
        self.ctx.signals.dataset_scanned.emit(scan.index)

    def _on_scan_failed(self, sentence: str) -> None:
        self._show_message(sentence, "error")
        self.summary_label.setText("Could not be opened")
        self._show_state(EMPTY)
        self.ctx.signals.status_message.emit(sentence)

    # -- showing a scan -----------------------------------------------------------------------

    def _show_index(self, index: Any) -> None:
        counts = index.class_counts()
        splits = {s for s in counts if s != "all"}
        views = views_of(self.modality)
        unit = views.modality.singular
        summary = f"{plural(len(index.samples), unit)} in {plural(len(index.classes), 'class')}"
        if not views.text_views and is_grouped(index):
            summary += f" from {plural(patient_count(index), 'patient')}"
        if self.dicom and not views.text_views:
            summary += " · DICOM"
        if index.has_splits:
            names = "/".join(s for s in ("train", "val", "test") if s in splits)
            summary += f" · uses the folder's {names} split"
        if views.text_views and getattr(index, "text_column", None):
            summary += f" · text from '{index.text_column}', labels from '{index.label_column}'"
        self.summary_label.setText(summary)
        self.view.show_index(index, dicom=self.dicom)
        fatal = index.fatal_problem()
        if fatal is not None:
            self._show_message(f"{fatal.message} Then press Scan again.", "error")
        self._show_state(CONTENT)

    def _show_unusable_columns(self, sentence: str) -> None:
        self.summary_label.setText("Choose the text and label columns")
        self.view.show_no_index()
        self._show_message(sentence, "error")
        self._show_state(CONTENT)
        self.ctx.signals.status_message.emit(sentence)

    def _update_continue(self) -> None:
        usable = self.usable
        self.continue_button.setEnabled(usable)
        if usable:
            what = "file" if is_table_file(self.folder) else "folder"
            self.next_hint.setText(f"The {what} is ready. Next, choose a pretrained model.")
        elif self.index is not None:
            self.next_hint.setText("Fix the problem marked in red, then press Scan again.")
        else:
            self.next_hint.setText("")
        self.rescan_button.setEnabled(bool(self.folder) and not self.scanning)
        images = not views_of(self.modality).text_views
        self.review_button.setVisible(images and bool(self.folder))
        self.review_button.setEnabled(usable and images and not self.scanning)

    def _show_state(self, which: int) -> None:
        self.stack.setCurrentIndex(which)
        has_folder = which != EMPTY or bool(self.folder)
        for widget in (self.folder_label, self.summary_label, self.rescan_button):
            widget.setVisible(has_folder)
        self.open_button.setVisible(has_folder)
        self.open_file_button.setVisible(has_folder)
        self._update_continue()

    def _show_message(self, text: str, severity: str = "warning") -> None:
        self.banner_box.show_message(text, severity)

    # -- interaction --------------------------------------------------------------------------

    def _on_text_view_columns_chosen(self, text_column: str, label_column: str) -> None:
        self.ctx.state.update("data", text_column=text_column, label_column=label_column)

    def show_preview(self, path: str, **kwargs: Any) -> ImagePreviewDialog:
        """The preview window for one image file (decoded in the background)."""
        return self.view.show_preview(path, **kwargs)

    @property
    def _preview(self) -> ImagePreviewDialog | None:
        return self.view._preview

    def review_labels(self) -> LabelReviewDialog | None:
        """Open the likely-label-errors gallery and review the shown image dataset in the job
        pool (DICOM files in the chosen window). None when no usable image scan is shown."""
        if not self.usable or views_of(self.modality).text_views:
            return None
        if self.label_review is None:
            self.label_review = LabelReviewDialog(self.ctx, self)
        self.label_review.start(self.index, window=str(self.ctx.state.config.data.dicom_window))
        self.label_review.show()
        self.label_review.raise_()
        return self.label_review

    def _on_continue_button_clicked(self) -> None:
        self.ctx.signals.show_page_requested.emit("Model")

    def _on_state_changed(self, config: Any) -> None:
        data = config.data
        if not self.folder or data.path != self.folder:
            return
        if (data.text_column, data.label_column) != self._scanned_columns:
            self._start_scan(self.folder, new_source=False)  # a column was chosen: at once
        elif (
            data.min_per_class != self._scanned_min
            or data.group_by != self._scanned_group_by
            or str(data.dicom_frames) != self._scanned_frames
        ):
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
        self.rescan_button.setToolTip("Check the data again, e.g. after you fixed files in it.")
        self.rescan_button.clicked.connect(self.rescan)
        self.open_button = QPushButton("&Open Another Folder…")
        self.open_button.setObjectName("openFolderButton")
        self.open_button.clicked.connect(self.ctx.signals.choose_folder_requested)
        self.open_file_button = QPushButton("Open &Table File…")
        self.open_file_button.setObjectName("openFileButton")
        self.open_file_button.setToolTip(
            "A .csv, .tsv or .jsonl file of texts and their labels, or a manifest .csv of "
            "images (columns file,label and optionally group and split)."
        )
        self.open_file_button.clicked.connect(self.ctx.signals.choose_file_requested)
        self.review_button = QPushButton("Review &Labels…")
        self.review_button.setObjectName("reviewLabelsButton")
        self.review_button.setToolTip(
            "Find images whose label the data contradicts (a model that has not seen each image "
            "predicts it from a pretrained network's features). Nothing is relabelled."
        )
        self.review_button.clicked.connect(self.review_labels)
        buttons = (self.review_button, self.rescan_button, self.open_button, self.open_file_button)
        for button in buttons:
            row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        return row

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
        s, t, c = self.split_settings, self.text_view, self.view.clinical
        chain = [
            self.empty_state.open_button, self.empty_state.open_file_button,
            self.empty_state.sample_button, self.review_button, self.rescan_button,
            self.open_button,
            self.open_file_button, self.scan_progress.stop_button, self.class_table, s.val_spin,
            s.test_spin, s.seed_spin, s.min_spin, c.group_combo, c.pattern_edit, c.window_combo,
            c.frames_combo,
            self.grid.filter_combo, self.grid.view,
            t.source.text_combo, t.source.label_combo, t.source.view, t.examples.filter_combo,
            t.examples.table, self.problem_list, self.continue_button,
        ]  # fmt: skip
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)
