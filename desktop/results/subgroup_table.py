"""The Subgroups tab of the Results page: metrics with 95 % intervals per value of one attribute
(a manifest column, a DICOM tag), with a red "lags" marker on a subgroup that does worse than
the rest.

Why: an overall accuracy hides the site, scanner or age band where a model fails. Which
attributes a run has (reading DICOM headers) and each table (a bootstrap per value) are computed
in the app's worker pool, never in the GUI thread; a table saved with the evaluation shows at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
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

from desktop.context import AppContext

if TYPE_CHECKING:
    from engine import Evaluation, SubgroupRow, SubgroupTable, Task

COLUMNS = (
    "Value",
    "Images",
    "Patients",
    "Accuracy [95% CI]",
    "ROC AUC [95% CI]",
    "Sensitivity [95% CI]",
    "Specificity [95% CI]",
    "",
)
NONE_TEXT = "No subgroup attributes in this dataset."
LAGS = "lags"
_JOBS = ("attributes", "table")


def _attributes_job(path: Path, split: str) -> Any:
    def job(_task: Task) -> dict[str, str]:
        from engine import RunDir, subgroup_attributes

        return subgroup_attributes(RunDir(path), split)

    return job


def _table_job(path: Path, split: str, attribute: str, positive: str | None) -> Any:
    def job(task: Task) -> SubgroupTable:
        from engine import RunDir, run_subgroups

        return run_subgroups(RunDir(path), split, [attribute], positive=positive, task=task)[0]

    return job


class SubgroupPanel(QWidget):
    """A combo of the run's attributes and the table of the chosen one."""

    filled = Signal()  # a table is shown (tests wait for it)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("subgroupPanel")
        self.ctx = ctx
        self.path: Path | None = None
        self.split = "val"
        self.positive: str | None = None
        self.saved: dict[str, SubgroupTable] = {}
        self.table_shown: SubgroupTable | None = None
        self._build()

    def _build(self) -> None:
        self.combo = QComboBox()
        self.combo.setObjectName("subgroupAttribute")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.setToolTip("A manifest column or DICOM tag to break the metrics down by")
        self.combo.currentIndexChanged.connect(self._on_attribute_chosen)
        self.status = QLabel()
        self.status.setObjectName("subgroupStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # names come from hostile headers
        top = QHBoxLayout()
        top.addWidget(QLabel("Subgroups by"))
        top.addWidget(self.combo)
        top.addWidget(self.status, 1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("subgroupTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.flags = QLabel()
        self.flags.setObjectName("subgroupFlags")
        self.flags.setWordWrap(True)
        self.flags.setTextFormat(Qt.TextFormat.PlainText)
        self.note = QLabel(
            "<small>Values with fewer than 5 images are pooled into “other (small groups)”. "
            "A subgroup lags when its accuracy interval lies below the rest's, or a "
            "two-proportion test (Holm-corrected) says it does worse.</small>"
        )
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.flags)
        layout.addWidget(self.note)
        self._show_none("Evaluate the run to see its subgroups.")

    # -- public ---------------------------------------------------------------------------------

    def set_evaluation(self, path: Path, evaluation: Evaluation) -> None:
        """A shown evaluation of the run at ``path``: list its attributes (in a worker) and
        show the tables saved with it."""
        from engine import saved_subgroups

        self.path, self.split, self.positive = path, evaluation.split, evaluation.positive
        self.saved = {t.attribute: t for t in saved_subgroups(evaluation)}
        self.table_shown = None
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.blockSignals(False)
        self.table.setRowCount(0)
        self.flags.clear()
        self.status.setText("Looking for subgroup attributes…")
        self._submit(
            "attributes",
            _attributes_job(path, evaluation.split),
            self._on_attributes,
        )

    def clear(self, text: str = "Evaluate the run to see its subgroups.") -> None:
        """No evaluation shown."""
        self.path = None
        for name in _JOBS:
            self.ctx.pool.drop(self._key(name))
        self._show_none(text)

    def choose(self, attribute: str) -> None:
        """Show the table of ``attribute`` (as the combo lists it)."""
        i = self.combo.findData(attribute)
        if i >= 0:
            if i == self.combo.currentIndex():
                self._on_attribute_chosen(i)
            else:
                self.combo.setCurrentIndex(i)

    @property
    def busy(self) -> bool:
        return any(self.ctx.pool.running(self._key(name)) for name in _JOBS)

    # -- jobs -----------------------------------------------------------------------------------

    def _key(self, name: str) -> tuple[str, int, str]:
        return ("subgroups", id(self), name)

    def _submit(self, name: str, job: Any, on_result: Any) -> None:
        self.ctx.pool.submit(job, on_result, key=self._key(name), on_error=self._on_error)

    def _on_error(self, sentence: str) -> None:
        self.status.setText(sentence)

    def _on_attributes(self, attributes: dict[str, str]) -> None:
        if not attributes:
            self._show_none(NONE_TEXT)
            return
        self.combo.setEnabled(True)
        self.table.show()
        self.note.show()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("Choose an attribute…", None)
        for name, source in attributes.items():
            shown = f"{name} (DICOM tag)" if source == "dicom" else f"{name} (manifest column)"
            self.combo.addItem(shown, name)
        self.combo.blockSignals(False)
        self.status.setText("")
        first_saved = next((a for a in attributes if a in self.saved), None)
        if first_saved is not None:
            self.choose(first_saved)

    def _on_attribute_chosen(self, index: int) -> None:
        attribute = self.combo.itemData(index)
        if not attribute or self.path is None:
            return
        if attribute in self.saved:
            self._show_table(self.saved[attribute])
            return
        self.status.setText(f"Computing the metrics per {attribute}…")
        self.table.setRowCount(0)
        self.flags.clear()
        self._submit(
            "table", _table_job(self.path, self.split, attribute, self.positive), self._on_table
        )

    def _on_table(self, table: SubgroupTable) -> None:
        self.saved[table.attribute] = table
        if self.combo.currentData() == table.attribute:
            self._show_table(table)

    # -- showing --------------------------------------------------------------------------------

    def _show_none(self, text: str) -> None:
        self.combo.clear()
        self.combo.setEnabled(False)
        self.table.setRowCount(0)
        self.table.hide()
        self.note.hide()
        self.flags.clear()
        self.status.setText(text)

    def _show_table(self, table: SubgroupTable) -> None:
        from desktop.widgets.palette_colors import level_color

        self.table_shown = table
        binary = table.positive is not None
        self.table.setColumnHidden(5, not binary)
        self.table.setColumnHidden(6, not binary)
        if binary:
            self.table.setHorizontalHeaderItem(
                5, QTableWidgetItem(f"Sensitivity ({table.positive}) [95% CI]")
            )
        red = QColor(level_color("error", self.palette()))
        self.table.setRowCount(len(table.rows))
        for r, row in enumerate(table.rows):
            for c, text in enumerate(_cells(row)):
                item = QTableWidgetItem(text)
                if c in (1, 2):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if row.note:
                    item.setToolTip(row.note)
                if c == len(COLUMNS) - 1 and row.lags:
                    item.setForeground(red)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)
        self.flags.setText(
            " ".join(table.flagged) or f"No {table.attribute} subgroup lags the rest."
        )
        palette = self.flags.palette()
        colour = level_color("error", palette) if table.flagged else None
        self.flags.setStyleSheet(f"color: {colour};" if colour else "")
        self.status.setText(f"{len(table.rows)} values of {table.attribute}")
        self.filled.emit()


def _cells(row: SubgroupRow) -> list[str]:
    marker = LAGS if row.lags else ("too few" if row.note.startswith("too few") else "")
    return [
        row.value,
        str(row.n),
        "–" if row.patients is None else str(row.patients),
        *row.shown(),
        marker,
    ]
