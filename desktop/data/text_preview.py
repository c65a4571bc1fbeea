"""A small window about one text: where it is, what is wrong with it, and the text itself."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.data.problem_list import severity_icon
from desktop.widgets.file_header import FileHeaderWidget

READ_BYTES = 64 * 1024  # enough to recognise a file; a preview need not hold a whole book


class _ReadSignals(QObject):
    read = Signal(int, str)  # token, text (or the sentence why there is none)


class _ReadRunnable(QRunnable):
    def __init__(self, path: str, token: int, signals: _ReadSignals) -> None:
        super().__init__()
        self.path, self.token, self.signals = path, token, signals

    def run(self) -> None:
        self.signals.read.emit(self.token, read_start(self.path))


def read_start(path: str) -> str:
    """The first READ_BYTES of a file as text, or a sentence saying why it cannot be shown."""
    from engine import BinaryFileError, FileReadError, decode_text, read_head

    try:
        data = read_head(path, READ_BYTES)  # never blocks on a named pipe or a device
    except FileReadError as exc:
        return f"[The file {exc.reason}.]"
    if not data:
        return "[The file is empty.]"
    try:
        text, _encoding = decode_text(data)
    except (BinaryFileError, UnicodeDecodeError):
        return "[This is not a text file; it holds binary data.]"
    return text + ("\n[…]" if len(data) == READ_BYTES else "")


class TextPreviewDialog(QDialog):
    """Shows a text: one the scan already holds (``show_text``) or a file's start, read in the
    background (``show_file``). One dialog is reused."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TextPreviewDialog")
        self.setWindowTitle("Text")
        self.path = ""
        self._token = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _ReadSignals()  # no parent: a running read keeps it alive
        self._signals.read.connect(self._on_signals_read)

        layout = QVBoxLayout(self)
        header = FileHeaderWidget("textPreview")
        layout.addWidget(header)
        self.path_label = header.path_label
        self.problem_icon = header.problem_icon
        self.problem_label = header.problem_label
        self.text_edit = QPlainTextEdit()
        self.text_edit.setObjectName("textPreviewText")
        self.text_edit.setReadOnly(True)
        layout.addWidget(self.text_edit, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.folder_button = QPushButton("Show in folder")
        self.folder_button.setToolTip("Open the folder that holds this file in your file manager.")
        self.folder_button.clicked.connect(self._on_folder_button_clicked)
        buttons.addButton(self.folder_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(620, 480)

    def show_text(self, title: str, text: str, *, path: str = "", details: str = "") -> None:
        """Show a text that is already in memory (an example of the scan)."""
        self._token += 1
        self._fill(title, path, details, "", "warning")
        self.text_edit.setPlainText(text)
        self._present()

    def show_file(self, path: str, *, problem: str = "", severity: str = "warning") -> None:
        """Show the start of the file at ``path`` (read in the background)."""
        self._token += 1
        self._fill(Path(path).name or path, path, "", problem, severity)
        if Path(path).is_file():
            self.text_edit.setPlainText("Reading the file…")
            self._pool.start(_ReadRunnable(path, self._token, self._signals))
        else:
            self.text_edit.setPlainText("[This is a folder or a missing file.]")
        self._present()

    def wait_for_text(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)

    def _fill(self, title: str, path: str, details: str, problem: str, severity: str) -> None:
        self.path = path
        self.setWindowTitle(title)
        lines = [f"<b>{html.escape(title)}</b>"]
        if path and path != title:
            lines.append(html.escape(path))
        if details:
            lines.append(html.escape(details))
        self.path_label.setText("<br>".join(lines))
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        self.problem_icon.setVisible(bool(problem))
        if problem:
            self.problem_icon.setPixmap(severity_icon(severity).pixmap(16, 16))
        self.folder_button.setEnabled(bool(path))

    def _present(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def _on_signals_read(self, token: int, text: str) -> None:
        if token == self._token:
            self.text_edit.setPlainText(text)

    def _on_folder_button_clicked(self) -> None:
        if self.path:
            target = Path(self.path)
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target.parent)))
