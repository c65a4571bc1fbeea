"""A table of classes with their number of usable images (or texts) in each split."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

MAX_ROWS_SHOWN = 10
SPLIT_HEADERS = {"all": "Images", "train": "Train", "val": "Validation", "test": "Test"}


class ClassTableWidget(QTableWidget):
    """One row per class; one column per split (plus Total when there are several)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 2, parent)
        self.setObjectName("classTable")
        self.setAccessibleName("Examples per class")
        self.unit = "Images"  # the header of the one count column: "Images" or "Texts"
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.setHorizontalHeaderLabels(["Class", "Images"])
        self._fit_height()

    def set_counts(self, classes: list[str], counts: dict[str, dict[str, int]]) -> None:
        """``counts`` as ``DatasetIndex.class_counts()`` gives it."""
        splits = list(counts)
        names = {**SPLIT_HEADERS, "all": self.unit}
        headers = ["Class"] + [names.get(s, s) for s in splits]
        if len(splits) > 1:
            headers.append("Total")
        self.clearContents()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(len(classes))
        for row, name in enumerate(classes):
            item = QTableWidgetItem(name)
            item.setToolTip(name)
            self.setItem(row, 0, item)
            values = [counts[s].get(name, 0) for s in splits]
            if len(splits) > 1:
                values.append(sum(values))
            for col, value in enumerate(values, start=1):
                cell = QTableWidgetItem(f"{value:,}")
                cell.setData(Qt.ItemDataRole.UserRole, value)
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, col, cell)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(headers)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as its rows (up to MAX_ROWS_SHOWN), so the chart below gets the rest."""
        rows = min(max(self.rowCount(), 1), MAX_ROWS_SHOWN)
        row_height = self.verticalHeader().defaultSectionSize()
        header = self.horizontalHeader().sizeHint().height()
        self.setMaximumHeight(header + rows * row_height + 2 * self.frameWidth() + 6)

    def class_at(self, row: int) -> str:
        return self.item(row, 0).text()
