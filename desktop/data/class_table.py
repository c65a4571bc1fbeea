"""A table of classes with their number of usable images (or texts) in each split, and of
patients beside the images when the images are grouped by patient."""

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
        self.patient_columns: list[int] = []  # the columns of patients per split, if any
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.setHorizontalHeaderLabels(["Class", "Images"])
        self._fit_height()

    def set_counts(
        self,
        classes: list[str],
        counts: dict[str, dict[str, int]],
        groups: dict[str, dict[str, dict[str, int]]] | None = None,
    ) -> None:
        """``counts`` as ``DatasetIndex.class_counts()`` gives it; ``groups`` as
        ``DatasetIndex.group_counts()`` does, when the images have patients: then each split's
        image column is followed by its patients column."""
        splits = list(counts)
        names = {**SPLIT_HEADERS, "all": self.unit}
        columns: list[tuple[str, str]] = []  # (split, "images" or "groups")
        headers = ["Class"]
        for split in splits:
            columns.append((split, "images"))
            headers.append(names.get(split, split))
            if groups is not None:
                columns.append((split, "groups"))
                headers.append("Patients" if split == "all" else f"{headers[-1]}\npatients")
        if len(splits) > 1:
            headers.append("Total")
        self.patient_columns = [1 + i for i, (_, what) in enumerate(columns) if what == "groups"]
        self.clearContents()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(len(classes))
        for row, name in enumerate(classes):
            item = QTableWidgetItem(name)
            item.setToolTip(name)
            self.setItem(row, 0, item)
            values = [
                counts[s].get(name, 0)
                if what == "images"
                else (groups or {}).get(s, {}).get(name, {}).get("groups", 0)
                for s, what in columns
            ]
            if len(splits) > 1:
                values.append(sum(counts[s].get(name, 0) for s in splits))
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
