"""The top of a file preview: the file's path and, when it has one, its problem with an icon."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget


class FileHeaderWidget(QWidget):
    """A selectable path line over an icon + problem sentence row."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.path_label = QLabel()
        self.path_label.setObjectName(f"{name}Path")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.path_label)
        row = QHBoxLayout()
        self.problem_icon = QLabel()
        self.problem_icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.problem_icon)
        self.problem_label = QLabel()
        self.problem_label.setObjectName(f"{name}Problem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.problem_label, 1)
        layout.addLayout(row)
