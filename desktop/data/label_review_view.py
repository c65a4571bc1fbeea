"""Likely label errors as a gallery: the Data page's "Review Labels" window.

The review itself is the engine's (:func:`engine.evaluation.label_review.review_labels`:
out-of-fold predictions on a frozen backbone's features, confident learning); it runs in the
app's job pool with progress and a Stop button, never on the GUI thread. Each flagged image is
shown with its thumbnail (DICOM files in the Data page's window), file name, the label it was
given, the label the data suggests and how confident that is; a double-click opens the file,
"Open Folder" its folder, "Copy Path" copies its path. Nothing is relabelled: fixing a label is
the user's move, in their own files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.widgets.image_loader import ImageLoader

THUMB = 112
#: How many of the flagged images the gallery shows, most suspicious first.
TOP = 48
PATH_ROLE = Qt.ItemDataRole.UserRole
#: True once an item shows its image's thumbnail (not the blank placeholder).
THUMB_ROLE = Qt.ItemDataRole.UserRole + 1
#: A job of the review: (index, window, workspace, task) -> a LabelReview. Tests pass their own.
ReviewFn = Callable[..., Any]


def issue_text(name: str, given: str, suggested: str, confidence: float) -> str:
    """The caption of one flagged image: its file name, given -> suggested label, confidence."""
    return f"{name}\n{given} → {suggested}\n{confidence:.0%} sure"


def _default_review(index: Any, *, window: str, workspace: Path, task: Any) -> Any:
    from engine import review_labels

    return review_labels(index, workspace=workspace, top=TOP, dicom_window=window, task=task)


class LabelReviewDialog(QDialog):
    """Runs the label review of one scanned image dataset and shows what it flags.

    :meth:`start` submits the review to ``ctx.pool``; :attr:`busy` is True while it runs;
    :meth:`stop` cancels it. The gallery's items carry each image's absolute path
    (``PATH_ROLE``)."""

    def __init__(
        self, ctx: AppContext, parent: QWidget | None = None, *, review: ReviewFn | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._review = review or _default_review
        self._key = object()  # the pool's key of this dialog's review
        self._window: str | None = None
        self._token = 0
        self.setObjectName("labelReviewDialog")
        self.setWindowTitle("Likely label errors")
        self.resize(760, 560)
        layout = QVBoxLayout(self)
        self.status_label = QLabel()
        self.status_label.setObjectName("labelReviewStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        row.addWidget(self.progress, 1)
        self.stop_button = QPushButton("&Stop")
        self.stop_button.setObjectName("labelReviewStop")
        self.stop_button.clicked.connect(self.stop)
        row.addWidget(self.stop_button)
        layout.addLayout(row)
        self.gallery = QListWidget()
        self.gallery.setObjectName("labelReviewGallery")
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setGridSize(QSize(THUMB + 56, THUMB + 64))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setWordWrap(True)
        self.gallery.itemActivated.connect(self._on_gallery_item_activated)
        self.gallery.currentItemChanged.connect(self._update_buttons)
        layout.addWidget(self.gallery, 1)
        self.hint = QLabel(
            "Double-click an image to open it. Nothing is relabelled: if a label is wrong, move "
            "the file to its class folder (or fix the manifest), then press Scan Again."
        )
        self.hint.setWordWrap(True)
        self.hint.setObjectName("labelReviewHint")
        layout.addWidget(self.hint)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("&Open")
        self.open_button.setObjectName("labelReviewOpen")
        self.open_button.setToolTip("Open the chosen image in your image viewer.")
        self.open_button.clicked.connect(lambda: self.open_current(folder=False))
        self.folder_button = QPushButton("Open &Folder")
        self.folder_button.setObjectName("labelReviewFolder")
        self.folder_button.setToolTip("Open the folder that holds the chosen image.")
        self.folder_button.clicked.connect(lambda: self.open_current(folder=True))
        self.copy_button = QPushButton("&Copy Path")
        self.copy_button.setObjectName("labelReviewCopy")
        self.copy_button.clicked.connect(self.copy_current_path)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        for button in (self.open_button, self.folder_button, self.copy_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        blank = QPixmap(THUMB, THUMB)
        blank.fill(Qt.GlobalColor.transparent)
        self._placeholder = QIcon(blank)
        self.loader = ImageLoader(self)
        self.loader.loaded.connect(self._on_loader_loaded)
        self._update_buttons()

    # -- public -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A review is running."""
        return self.ctx.pool.running(self._key)

    def start(self, index: Any, *, window: str) -> None:
        """Review the labels of ``index`` (a scanned image dataset) in the job pool; DICOM
        files are decoded (for the features and the thumbnails) with ``window``."""
        self._window = window
        self._token += 1
        self.loader.clear()
        self.gallery.clear()
        self._root = Path(index.root)
        self._root = self._root if self._root.is_dir() else self._root.parent
        self.status_label.setText(
            f"Reviewing the labels of {len(index.samples)} images: a model that has not seen "
            "each image predicts it from a pretrained network's features…"
        )
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.stop_button.setVisible(True)
        review, workspace = self._review, Path(self.ctx.workspace)

        def job(task: Any) -> Any:
            from engine import ReviewError

            try:
                return review(index, window=window, workspace=workspace, task=task)
            except ReviewError as exc:  # its own sentence says why and what to do
                return str(exc)

        self.ctx.pool.submit(
            job,
            self._on_review_succeeded,
            key=self._key,
            on_error=self._on_review_failed,
            on_progress=self._on_review_progress,
            on_cancelled=self._on_review_cancelled,
            on_done=self._on_review_done,
        )
        self._update_buttons()

    def stop(self) -> None:
        """Cancel a running review (what it still sends is ignored)."""
        if self.ctx.pool.drop(self._key):
            self._on_review_cancelled()
            self._on_review_done()

    def current_path(self) -> str:
        """The absolute path of the chosen image's file ("" when none is chosen); a frame of a
        multi-frame DICOM file (``file.dcm#frame=N``) gives its file."""
        from engine import split_frame

        item = self.gallery.currentItem()
        return split_frame(str(item.data(PATH_ROLE)))[0] if item is not None else ""

    def open_current(self, *, folder: bool = False) -> bool:
        """Open the chosen image (or its folder) with the system's viewer; never edits it."""
        path = self.current_path()
        if not path:
            return False
        target = str(Path(path).parent) if folder else path
        return QDesktopServices.openUrl(QUrl.fromLocalFile(target))

    def copy_current_path(self) -> None:
        path = self.current_path()
        if path:
            QGuiApplication.clipboard().setText(path)

    def wait_for_thumbnails(self, msecs: int = -1) -> bool:
        """Block until every thumbnail decode has finished (for closing and tests)."""
        return self.loader.wait_for_done(msecs)

    def closeEvent(self, event: Any) -> None:
        self.stop()
        self.loader.clear()
        super().closeEvent(event)

    # -- the review's results -----------------------------------------------------------------

    def _on_review_progress(self, progress: Any) -> None:
        self.progress.setValue(round(100 * (progress.fraction or 0.0)))

    def _on_review_succeeded(self, review: Any) -> None:
        self.gallery.clear()
        if isinstance(review, str):
            self.status_label.setText(review)
            return
        how = (
            f"{review.folds} {'patient-grouped ' if review.grouped else ''}folds on "
            f"{review.backbone} features"
        )
        # What the workspace kept: runs of the folder record it (engine review_record).
        kept = " Runs of this folder trained from now on record this review." if review.kept else ""
        if not review.issues:
            self.status_label.setText(
                f"No likely label errors found among {review.reviewed} images ({how}).{kept}"
            )
            return
        shown = len(review.issues)
        self.status_label.setText(
            f"<b>{review.flagged} of {review.reviewed} images</b> have a label the data "
            f"contradicts ({how})"
            + (f"; the {shown} most likely are shown." if shown < review.flagged else ".")
            + " Check each one; nothing was relabelled."
            + kept
        )
        for issue in review.issues:
            path = str(self._root / issue.path)
            item = QListWidgetItem(
                issue_text(Path(issue.path).name, issue.given, issue.suggested, issue.confidence)
            )
            item.setData(PATH_ROLE, path)
            item.setToolTip(
                f"{path}\nLabeled '{issue.given}'; the data says '{issue.suggested}' "
                f"({issue.confidence:.0%}; its own label {issue.self_confidence:.0%})."
            )
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            item.setIcon(self._placeholder)  # the item has its full size before its thumbnail
            self.gallery.addItem(item)
            self.loader.request(path, THUMB, self._token, square=True, window=self._window)
        self.gallery.setCurrentRow(0)

    def _on_review_failed(self, sentence: str) -> None:
        self.status_label.setText(sentence)

    def _on_review_cancelled(self) -> None:
        self.status_label.setText("The label review was stopped before it finished.")

    def _on_review_done(self) -> None:
        self.progress.setVisible(False)
        self.stop_button.setVisible(False)
        self._update_buttons()

    def _on_loader_loaded(
        self, path: str, size: int, token: int, image: QImage | None, sentence: str
    ) -> None:
        if token != self._token or image is None:
            return  # an older review's, or a file that no longer decodes (its caption stays)
        icon = QIcon(QPixmap.fromImage(image))
        for row in range(self.gallery.count()):
            item = self.gallery.item(row)
            if item.data(PATH_ROLE) == path:
                item.setIcon(icon)
                item.setData(THUMB_ROLE, True)

    def _on_gallery_item_activated(self, item: QListWidgetItem) -> None:
        self.gallery.setCurrentItem(item)
        self.open_current()

    def _update_buttons(self, *_: Any) -> None:
        chosen = self.gallery.currentItem() is not None
        for button in (self.open_button, self.folder_button, self.copy_button):
            button.setEnabled(chosen)
