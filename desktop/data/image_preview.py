"""A small window about one file: where it is, what is wrong with it, and the picture."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.data.problem_list import severity_icon
from desktop.widgets.file_header import FileHeaderWidget
from desktop.widgets.image_loader import ImageLoader

PREVIEW_SIZE = 420


class ImagePreviewDialog(QDialog):
    """Shows ``path``, an optional problem sentence, and the image once decoded in the background.

    One dialog is reused: ``show_file()`` replaces what it shows.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ImagePreviewDialog")
        self.setWindowTitle("Image preview")
        self.path = ""
        self.dicom_window: str | None = None  # the DICOM window DICOM files are shown with
        self._token = 0
        self._loader = ImageLoader(self, max_threads=1)
        self._loader.loaded.connect(self._on_loader_loaded)

        layout = QVBoxLayout(self)
        header = FileHeaderWidget("preview")
        layout.addWidget(header)
        self.path_label = header.path_label
        self.problem_icon = header.problem_icon
        self.problem_label = header.problem_label

        self.image_label = QLabel()
        self.image_label.setObjectName("previewImage")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(PREVIEW_SIZE // 2, PREVIEW_SIZE // 2)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image_label.setFrameShape(QLabel.Shape.StyledPanel)
        self.image_label.setWordWrap(True)
        self.image_label.setMargin(12)
        layout.addWidget(self.image_label, 1)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.folder_button = QPushButton("Show in folder")
        self.folder_button.setObjectName("showInFolderButton")
        self.folder_button.setToolTip("Open the folder that holds this file in your file manager.")
        self.folder_button.clicked.connect(self._on_folder_button_clicked)
        buttons.addButton(self.folder_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(PREVIEW_SIZE + 60, PREVIEW_SIZE + 160)

    def show_file(
        self, path: str, *, problem: str = "", severity: str = "warning", details: str = ""
    ) -> None:
        """Fill the dialog for ``path`` and show it (non-modal; the app keeps working)."""
        self.path = path
        self._token += 1
        self.setWindowTitle(Path(path).name or path)
        lines = [f"<b>{html.escape(Path(path).name)}</b>", html.escape(path)]
        if details:
            lines.append(html.escape(details))
        self.path_label.setText("<br>".join(lines))
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        self.problem_icon.setVisible(bool(problem))
        if problem:
            self.problem_icon.setPixmap(severity_icon(severity).pixmap(16, 16))
        self.image_label.setPixmap(QPixmap())
        if Path(path).is_file():
            self.image_label.setText("Loading the image…")
            self._loader.request(path, PREVIEW_SIZE, self._token, window=self.dicom_window)
        else:
            self.image_label.setText("This is a folder or a missing file; there is no picture.")
        self.show()
        self.raise_()
        self.activateWindow()

    def set_window(self, window: str) -> None:
        """Show DICOM files with ``window`` from now on; the image shown is decoded again."""
        if window == self.dicom_window:
            return
        self.dicom_window = window
        if self.isVisible() and self.path and Path(self.path).is_file():
            self._token += 1
            self._loader.request(self.path, PREVIEW_SIZE, self._token, window=window)

    def wait_for_image(self, msecs: int = -1) -> bool:
        return self._loader.wait_for_done(msecs)

    def _on_loader_loaded(
        self, _path: str, _size: int, token: int, image: QImage | None, sentence: str
    ) -> None:
        if token != self._token:
            return
        if image is None:
            # The problem sentence above already says why, when there is one.
            why = "" if self.problem_label.text() else f"\n{sentence}"
            self.image_label.setText(f"The picture cannot be shown.{why}")
            return
        self.image_label.setText("")
        self.image_label.setPixmap(QPixmap.fromImage(image))

    def _on_folder_button_clicked(self) -> None:
        if self.path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.path).parent)))

    def done(self, result: int) -> None:
        self._loader.clear()
        super().done(result)
