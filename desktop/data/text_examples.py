"""Example texts of each class: what the scan found, where thumbnails would be for images."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.data.text_source import TIP_CHARS, cell_line

PER_CLASS = 5  # with "All classes"
ONE_CLASS = 300  # with one class chosen
SampleRole = Qt.ItemDataRole.UserRole + 1


class TextExamplesWidget(QWidget):
    """A class filter over a table of texts (class, text, where it came from).

    ``example_activated(sample)`` on double-click or Enter; the sample is a ``TextSample``.
    """

    example_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("textExamples")
        self.classes: list[str] = []
        self.samples: list[Any] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.title = QLabel("<b>Example texts</b>")
        top.addWidget(self.title)
        top.addStretch(1)
        show = QLabel("&Show:")
        top.addWidget(show)
        self.filter_combo = QComboBox()
        self.filter_combo.setObjectName("textClassFilter")
        self.filter_combo.setAccessibleName("Show texts of class")
        self.filter_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.filter_combo.currentIndexChanged.connect(self._on_filter_combo_current_index_changed)
        show.setBuddy(self.filter_combo)
        top.addWidget(self.filter_combo)
        layout.addLayout(top)

        self.table = QTableWidget(0, 3)
        self.table.setObjectName("exampleTexts")
        self.table.setAccessibleName("Example texts per class")
        self.table.setHorizontalHeaderLabels(["Class", "Text", "From"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.activated.connect(self._on_table_activated)
        layout.addWidget(self.table, 1)

    def set_index(self, classes: list[str], samples: list[Any]) -> None:
        """The classes and usable TextSamples of a text scan."""
        self.classes, self.samples = list(classes), list(samples)
        counts = dict.fromkeys(self.classes, 0)
        for sample in self.samples:
            counts[self.classes[sample.label]] += 1
        blocked = self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem(f"All classes ({len(self.samples):,})", None)
        for name in self.classes:
            self.filter_combo.addItem(f"{name} ({counts[name]:,})", name)
        self.filter_combo.setCurrentIndex(0)
        self.filter_combo.blockSignals(blocked)
        self._fill(None)

    def clear(self) -> None:
        self.set_index([], [])

    def show_class(self, name: str | None) -> None:
        self.filter_combo.setCurrentIndex(max(0, self.filter_combo.findData(name)))

    def shown_texts(self) -> list[str]:
        """The full texts in the table, top to bottom."""
        return [self.table.item(r, 1).data(SampleRole).text for r in range(self.table.rowCount())]

    def _fill(self, only: str | None) -> None:
        limit = PER_CLASS if only is None else ONE_CLASS
        wanted = {i for i, name in enumerate(self.classes) if only is None or name == only}
        buckets: dict[int, list[Any]] = {i: [] for i in wanted}
        open_buckets = len(wanted)
        for sample in self.samples:  # one pass, stopping once every class has its examples
            bucket = buckets.get(sample.label)
            if bucket is None or len(bucket) >= limit:
                continue
            bucket.append(sample)
            if len(bucket) == limit:
                open_buckets -= 1
                if not open_buckets:
                    break
        rows = [s for label in sorted(buckets) for s in buckets[label]]  # class by class
        self.table.setRowCount(len(rows))
        for r, sample in enumerate(rows):
            name = self.classes[sample.label]
            origin = sample.origin.rsplit("/", 1)[-1]
            where = f"{origin} ({sample.split})" if sample.split else origin
            cells = (name, cell_line(sample.text, 240), where)
            for c, value in enumerate(cells):
                item = QTableWidgetItem(value)
                item.setData(SampleRole, sample)
                if c == 1:
                    item.setToolTip(sample.text[:TIP_CHARS])
                if c == 2:
                    item.setToolTip(sample.origin)
                self.table.setItem(r, c, item)
        shown = f"{len(rows)} of {len(self.samples):,}" if only is None else f"{len(rows):,}"
        self.title.setText(f"<b>Example texts</b> ({shown}; double-click one to read it all)")

    def _on_filter_combo_current_index_changed(self, _row: int) -> None:
        self._fill(self.filter_combo.currentData())

    def _on_table_activated(self, index: Any) -> None:
        item = self.table.item(index.row(), 1)
        if item is not None:
            self.example_activated.emit(item.data(SampleRole))
