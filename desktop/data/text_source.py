"""A table file's column picker and a preview of its rows, the chosen columns highlighted."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from engine import Table

PREVIEW_ROWS = 20
CELL_CHARS = 160  # one line of a cell; the tooltip holds more
TIP_CHARS = 2000
_Index = QModelIndex | QPersistentModelIndex
Row = tuple[int, dict[str, object]]


def cell_line(value: object, limit: int = CELL_CHARS) -> str:
    """A cell as one line of at most ``limit`` characters (newlines shown as spaces)."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TablePreviewModel(QAbstractTableModel):
    """Some rows of a table; the text and label columns are tinted and named in the header."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns: list[str] = []
        self.rows: list[Row] = []
        self.unit = "row"
        self.text_column: str | None = None
        self.label_column: str | None = None

    def set_rows(self, columns: list[str], rows: list[Row], unit: str) -> None:
        self.beginResetModel()
        self.columns, self.rows, self.unit = list(columns), list(rows), unit
        self.endResetModel()

    def set_highlight(self, text_column: str | None, label_column: str | None) -> None:
        self.text_column, self.label_column = text_column, label_column
        if self.columns:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self.columns) - 1)
            last = self.index(max(0, len(self.rows) - 1), len(self.columns) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def role_of(self, column: str) -> str:
        """ "text", "label" or "" for a column name."""
        if column == self.text_column:
            return "text"
        return "label" if column == self.label_column else ""

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        column = self.columns[index.column()]
        value = self.rows[index.row()][1].get(column)
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_line(value)
        if role == Qt.ItemDataRole.ToolTipRole:
            return None if value is None else str(value)[:TIP_CHARS]
        if role == Qt.ItemDataRole.BackgroundRole and self.role_of(column):
            color = QColor(QApplication.palette().color(QPalette.ColorRole.Highlight))
            color.setAlpha(45 if column == self.text_column else 80)
            return color
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Vertical:
            if role == Qt.ItemDataRole.DisplayRole and section < len(self.rows):
                return str(self.rows[section][0])
            if role == Qt.ItemDataRole.ToolTipRole and section < len(self.rows):
                return f"{self.unit.capitalize()} {self.rows[section][0]} of the file"
            return None
        if section >= len(self.columns):
            return None
        column = self.columns[section]
        kind = self.role_of(column)
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{column}  ({kind})" if kind else column
        if role == Qt.ItemDataRole.FontRole and kind:
            font = QFont()
            font.setBold(True)
            return font
        return None


class TextSourceWidget(QWidget):
    """Two combo boxes (text column, label column) over a preview of the table's rows.

    ``columns_chosen(text, label)`` when the user picks a column ("" for one not chosen yet).
    """

    columns_chosen = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("textSource")
        self.table: Table | None = None
        self.file_name = ""
        self._numbers: list[int] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        grid = QGridLayout()  # two rows: one row would make the page too wide for a laptop
        self.text_combo = self._combo("textColumnCombo", "Which column holds the text to classify.")
        self.label_combo = self._combo("labelColumnCombo", "Which column holds each text's class.")
        captions = (("&Text column:", self.text_combo), ("&Label column:", self.label_combo))
        for r, (caption, combo) in enumerate(captions):
            label = QLabel(caption)
            label.setBuddy(combo)
            grid.addWidget(label, r, 0)
            grid.addWidget(combo, r, 1)
        grid.setColumnStretch(2, 1)
        layout.addLayout(grid)

        caption_row = QHBoxLayout()
        self.caption = QLabel()
        self.caption.setObjectName("previewCaption")
        self.caption.setWordWrap(True)
        caption_row.addWidget(self.caption, 1)
        self.first_rows_button = QPushButton("Show the first rows")
        self.first_rows_button.setObjectName("firstRowsButton")
        self.first_rows_button.clicked.connect(self.show_first_rows)
        self.first_rows_button.hide()
        caption_row.addWidget(self.first_rows_button)
        layout.addLayout(caption_row)

        self.model = TablePreviewModel(self)
        self.view = QTableView()
        self.view.setObjectName("tablePreview")
        self.view.setAccessibleName("Preview of the table's rows")
        self.view.setModel(self.model)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        layout.addWidget(self.view, 1)

    def _combo(self, name: str, tip: str) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(name)
        combo.setToolTip(tip)
        combo.setPlaceholderText("choose a column…")
        # Long column names must not widen the whole page: the popup shows them in full.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(10)
        combo.activated.connect(self._on_combo_activated)  # user choices only
        return combo

    # -- public -----------------------------------------------------------------------------------

    def set_table(self, table: Table, file_name: str) -> None:
        """Show a newly read table file (its first rows; nothing chosen yet)."""
        self.table, self.file_name = table, file_name
        self._numbers = [number for number, _values in table.rows]
        for combo in (self.text_combo, self.label_combo):
            blocked = combo.blockSignals(True)
            combo.clear()
            combo.addItems(table.columns)
            combo.setCurrentIndex(-1)
            combo.blockSignals(blocked)
        self.model.set_highlight(None, None)
        self.show_first_rows()

    def clear(self) -> None:
        """Forget the table (a folder or another file is shown now)."""
        self.table, self.file_name, self._numbers = None, "", []
        for combo in (self.text_combo, self.label_combo):
            blocked = combo.blockSignals(True)
            combo.clear()
            combo.blockSignals(blocked)
        self.model.set_rows([], [], "row")
        self.caption.clear()

    def set_columns(self, text_column: str | None, label_column: str | None) -> None:
        """Show the columns in use (None: not chosen) without emitting ``columns_chosen``."""
        for combo, name in ((self.text_combo, text_column), (self.label_combo, label_column)):
            blocked = combo.blockSignals(True)
            combo.setCurrentIndex(combo.findText(name) if name else -1)
            combo.blockSignals(blocked)
        self.model.set_highlight(text_column, label_column)
        self._fit_columns()

    def chosen(self) -> tuple[str, str]:
        return self.text_combo.currentText(), self.label_combo.currentText()

    def show_first_rows(self) -> None:
        if self.table is None:
            return
        rows = self.table.rows[:PREVIEW_ROWS]
        self.model.set_rows(self.table.columns, rows, self.table.unit)
        total = len(self.table.rows)
        unit = self.table.unit
        shown = (
            f"The first {len(rows)} of {total:,} {unit}s"
            if total > len(rows)
            else (f"All {total:,} {unit}s" if total != 1 else f"The only {unit}")
        )
        self.caption.setText(f"{shown} of <b>{self.file_name}</b>; the chosen columns are tinted.")
        self.first_rows_button.hide()
        self._fit_columns()

    def show_rows(self, numbers: list[int], why: str = "") -> bool:
        """Show the rows (or lines) with these numbers; False when the table has none of them."""
        if self.table is None:
            return False
        rows = []
        for number in sorted(set(numbers))[: PREVIEW_ROWS * 10]:
            at = bisect.bisect_left(self._numbers, number)  # rows are in file order
            if at < len(self._numbers) and self._numbers[at] == number:
                rows.append(self.table.rows[at])
        if not rows:
            return False
        self.model.set_rows(self.table.columns, rows, self.table.unit)
        unit = self.table.unit
        listing = ", ".join(str(r[0]) for r in rows[:8]) + (", …" if len(rows) > 8 else "")
        word = unit if len(rows) == 1 else f"{unit}s"
        self.caption.setText(f"{word.capitalize()} {listing} of <b>{self.file_name}</b>{why}")
        self.first_rows_button.show()
        self._fit_columns()
        return True

    # -- behaviour --------------------------------------------------------------------------------

    def _on_combo_activated(self, _row: int) -> None:
        # One column is enough to scan again: the engine guesses the other one from it.
        text, label = self.chosen()
        if text == label:
            self.caption.setText(
                "The text and the label must be two different columns; choose another one."
            )
            return
        self.model.set_highlight(text, label)
        self.columns_chosen.emit(text, label)

    def _fit_columns(self) -> None:
        self.view.resizeColumnsToContents()
        header = self.view.horizontalHeader()
        for section in range(self.model.columnCount()):
            header.resizeSection(section, min(header.sectionSize(section), 360))
