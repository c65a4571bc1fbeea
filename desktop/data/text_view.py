"""The Data page's view of a text dataset: column picker and row preview (table files), example
texts per class, and a preview window for one text or file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from desktop.data.text_examples import TextExamplesWidget
from desktop.data.text_preview import TextPreviewDialog
from desktop.data.text_source import TextSourceWidget

if TYPE_CHECKING:
    from engine import Problem, Table

# "Row 12 of data.csv …", "… (rows 4, 9, 12, …)", "Line 3 of data.jsonl …"
_REFS = re.compile(r"\b(?:rows?|lines?) (\d+(?:, \d+)*)", re.IGNORECASE)


def problem_rows(message: str) -> list[int]:
    """The row (or line) numbers a problem sentence about a table file names."""
    return [int(n) for match in _REFS.finditer(message) for n in match.group(1).split(", ")]


class TextDataView(QWidget):
    """``columns_chosen(text, label)`` when the user picks a table file's columns."""

    columns_chosen = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("textDataView")
        self.table_path = ""
        self._preview: TextPreviewDialog | None = None
        self.source = TextSourceWidget()
        self.source.columns_chosen.connect(self.columns_chosen)
        self.examples = TextExamplesWidget()
        self.examples.example_activated.connect(self._on_examples_example_activated)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("textSplitter")
        splitter.addWidget(self.source)
        splitter.addWidget(self.examples)
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # -- public -----------------------------------------------------------------------------------

    def set_source(self, path: str, table: Table | None) -> None:
        """A new source: a table file (with its parsed rows) or a folder (``table`` None)."""
        self.table_path = path if table is not None else ""
        self.source.setVisible(table is not None)
        if table is not None:
            self.source.set_table(table, Path(path).name)
        else:
            self.source.clear()
        self.examples.clear()

    def set_index(self, index: Any | None) -> None:
        """Show a TextIndex (None: the columns could not be used, nothing to show)."""
        if index is None:
            self.examples.clear()
            return
        if self.table_path:
            self.source.set_columns(index.text_column, index.label_column)
        self.examples.set_index(list(index.classes), list(index.samples))

    def show_problem(self, problem: Problem) -> None:
        """Rows a table problem names go into the preview; a file opens in the preview window."""
        if not problem.path:
            return
        if self.table_path and problem.path == self.table_path:
            rows = problem_rows(problem.message)
            if rows and self.source.show_rows(rows, " (the problem you chose)."):
                self.source.view.setFocus()
            return
        self.preview().show_file(problem.path, problem=problem.message, severity=problem.severity)

    def preview(self) -> TextPreviewDialog:
        if self._preview is None:
            self._preview = TextPreviewDialog(self)
        return self._preview

    def wait_for_preview(self, msecs: int = -1) -> bool:
        return self._preview is None or self._preview.wait_for_text(msecs)

    # -- behaviour --------------------------------------------------------------------------------

    def _on_examples_example_activated(self, sample: Any) -> None:
        origin = sample.origin
        is_file = not self.table_path and Path(origin).is_absolute()
        name = Path(origin).name if is_file else origin
        where = f", {sample.split} set" if sample.split else ""
        details = f"Class: {self.examples.classes[sample.label]}{where}"
        path = origin if is_file else self.table_path
        self.preview().show_text(name, sample.text, path=path, details=details)
