"""The Data page before a dataset is open, while one is being checked, and its message line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from desktop.data.problem_list import severity_icon

LAYOUT_HINT = (
    "Put each class's images in its own subfolder (for example <i>scans/benign/</i> and "
    "<i>scans/malignant/</i>), or use <i>train/</i> and <i>val/</i> folders that each hold one "
    "subfolder per class.<br>For texts, do the same with <i>.txt</i> files (one example a file), "
    "or open one <i>.csv</i>, <i>.tsv</i> or <i>.jsonl</i> file with a text column and a label "
    "column.<br>Your data is only read: nothing in it is changed."
)


class EmptyStateWidget(QWidget):
    """What to do first: drop or open a folder, or try the sample dataset."""

    open_requested = Signal()
    open_file_requested = Signal()
    sample_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        title = QLabel(
            "<h2>Drop a folder of labeled images or texts, or a table file, anywhere on this "
            "window</h2>"
        )
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setWordWrap(True)
        outer.addWidget(title)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.open_button = QPushButton("Open Folder…")
        self.open_button.setObjectName("emptyOpenFolderButton")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self.open_requested)
        buttons.addWidget(self.open_button)
        self.open_file_button = QPushButton("Open Table File…")
        self.open_file_button.setObjectName("emptyOpenFileButton")
        self.open_file_button.setToolTip(
            "A .csv, .tsv or .jsonl file with one text and its label on each row."
        )
        self.open_file_button.clicked.connect(self.open_file_requested)
        buttons.addWidget(self.open_file_button)
        self.sample_button = QPushButton("Try the sample dataset")
        self.sample_button.setObjectName("sampleButton")
        self.sample_button.setToolTip("600 small pictures of handwritten digits, 0 to 9.")
        self.sample_button.clicked.connect(self.sample_requested)
        buttons.addWidget(self.sample_button)
        buttons.addStretch(1)
        outer.addLayout(buttons)
        hint = QLabel(LAYOUT_HINT)
        hint.setObjectName("layoutHint")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        outer.addSpacing(8)
        outer.addWidget(hint)
        outer.addStretch(2)


class ScanProgressWidget(QWidget):
    """A progress bar with a sentence and a Stop button, centred on the page."""

    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scanningState")
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        self.label = QLabel()
        self.label.setObjectName("scanProgressLabel")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        outer.addWidget(self.label)
        row = QHBoxLayout()
        row.addStretch(1)
        self.bar = QProgressBar()
        self.bar.setObjectName("scanProgress")
        self.bar.setAccessibleName("Scan progress")
        self.bar.setMinimumWidth(360)
        row.addWidget(self.bar, 2)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopScanButton")
        self.stop_button.setToolTip("Stop checking this folder.")
        self.stop_button.clicked.connect(self.stop_requested)
        row.addWidget(self.stop_button)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

    def start(self, source: str, *, table: bool = False) -> None:
        what = "Reading the table" if table else "Looking for labeled images or texts in"
        self.label.setText(f"{what} {source}…")
        self.bar.setRange(0, 0)  # busy until the number of files is known

    def set_progress(self, done: int, total: int) -> None:
        if total <= 0:
            return
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.label.setText(
            f"Checking that every image opens: {done:,} of {total:,} "
            f"(nothing in the folder is changed)"
        )


class MessageBannerWidget(QWidget):
    """A severity icon and one sentence above the page's content; hidden when empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBox")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.icon = QLabel()
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.icon)
        self.label = QLabel()
        self.label.setObjectName("messageBanner")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.label, 1)
        self.hide()

    def show_message(self, text: str, severity: str = "warning") -> None:
        self.label.setText(text)
        self.icon.setPixmap(severity_icon(severity).pixmap(20, 20))
        self.setVisible(bool(text))
