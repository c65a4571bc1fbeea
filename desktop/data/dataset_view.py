"""The Data page's content once a source is scanned: classes, chart and split settings on the
left (and, for images, the patients and DICOM settings); thumbnails (images) or the text view
(texts) and the problem list on the right."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.data.class_chart import ClassChartWidget
from desktop.data.class_table import ClassTableWidget
from desktop.data.clinical_settings import ClinicalSettingsWidget
from desktop.data.image_preview import ImagePreviewDialog
from desktop.data.problem_list import ProblemListWidget
from desktop.data.split_settings import SplitSettingsWidget
from desktop.data.text_view import TextDataView
from desktop.modalities import views_of
from desktop.state import ConfigState
from desktop.widgets.thumbnails import Thumb, ThumbnailGridWidget

if TYPE_CHECKING:
    from engine import Problem

IMAGES, TEXTS = range(2)


def plural(n: int, word: str) -> str:
    """``1 class``, ``12 classes``, ``1,200 images``."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word}es" if word.endswith("s") else f"{n:,} {word}s"


def is_grouped(index: Any) -> bool:
    """Some samples of the index have a group (patient) key."""
    return any(getattr(s, "group", None) is not None for s in index.samples)


def patient_count(index: Any) -> int:
    """Distinct patients of a grouped index (an image without a key counts as one)."""
    return len({s.group if s.group is not None else f"p:{s.path}" for s in index.samples})


class DatasetViewWidget(QSplitter):
    """Shows one scan (``show_index``); clicking a problem or an example shows it."""

    def __init__(self, state: ConfigState, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("dataSplitter")
        self.modality = "image"
        self._preview: ImagePreviewDialog | None = None
        self.addWidget(self._build_left(state))
        self.addWidget(self._build_right())
        self.grid.model.set_window(self.clinical.dicom_window)  # thumbnails in the chosen window
        self.setStretchFactor(0, 2)
        self.setStretchFactor(1, 3)
        self.setChildrenCollapsible(False)

    def _build_left(self, state: ConfigState) -> QScrollArea:
        left = QWidget()
        layout = QVBoxLayout(left)
        layout.setContentsMargins(0, 0, 0, 0)
        self.classes_title = QLabel()
        layout.addWidget(self.classes_title)
        self.class_table = ClassTableWidget()
        self.class_table.itemDoubleClicked.connect(self._on_class_table_item_double_clicked)
        layout.addWidget(self.class_table)
        self.chart = ClassChartWidget()
        self.chart_scroll = QScrollArea()
        self.chart_scroll.setWidgetResizable(True)
        self.chart_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.chart_scroll.setWidget(self.chart)
        layout.addWidget(self.chart_scroll, 1)
        self.split_settings = SplitSettingsWidget(state)
        layout.addWidget(self.split_settings)
        self.clinical = ClinicalSettingsWidget(state)
        self.clinical.window_changed.connect(self._on_clinical_window_changed)
        layout.addWidget(self.clinical)
        layout.addStretch(1)
        # On a short screen the settings scroll rather than squeeze the class table.
        self.left_scroll = QScrollArea()
        self.left_scroll.setObjectName("dataSettingsScroll")
        self.left_scroll.setWidgetResizable(True)
        self.left_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left_scroll.setWidget(left)
        return self.left_scroll

    def _build_right(self) -> QWidget:
        right = QSplitter(Qt.Orientation.Vertical)
        self.grid = ThumbnailGridWidget()
        self.grid.image_activated.connect(self._on_grid_image_activated)
        self.text_view = TextDataView()
        self.examples_stack = QStackedWidget()
        self.examples_stack.setObjectName("examplesStack")
        self.examples_stack.addWidget(self.grid)  # IMAGES
        self.examples_stack.addWidget(self.text_view)  # TEXTS
        right.addWidget(self.examples_stack)
        problems = QWidget()
        layout = QVBoxLayout(problems)
        layout.setContentsMargins(0, 0, 0, 0)
        self.problems_title = QLabel()
        self.problems_title.setObjectName("problemsTitle")
        layout.addWidget(self.problems_title)
        self.problem_list = ProblemListWidget()
        self.problem_list.problem_activated.connect(self._on_problem_list_problem_activated)
        layout.addWidget(self.problem_list, 1)
        right.addWidget(problems)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        # Before a scan: images. The words are written here, not asked of the engine's Modality,
        # so that opening the app does not import the engine's data layer (engine.modalities).
        self.examples_stack.setCurrentIndex(IMAGES)
        self._show_unit("images", is_file=False)
        return right

    # -- public -----------------------------------------------------------------------------------

    @property
    def _words(self) -> bool:
        """The data is texts (the text examples), not pictures (the thumbnail grid)."""
        return views_of(self.modality).text_views

    def set_modality(self, modality: str, *, is_file: bool) -> None:
        """Images or texts; ``is_file`` for one table file rather than a folder."""
        self.modality = modality
        views = views_of(modality)
        self.examples_stack.setCurrentIndex(TEXTS if views.text_views else IMAGES)
        self.clinical.setVisible(not views.text_views)  # patients and windows: images only
        self._show_unit(views.modality.noun, is_file=is_file)

    def _show_unit(self, unit: str, *, is_file: bool) -> None:
        self.classes_title.setText(f"<b>Classes</b> (double-click one to see its {unit})")
        self.class_table.unit = unit.capitalize()
        self.chart.unit = unit
        self.split_settings.set_unit(unit, is_file=is_file)

    def show_index(self, index: Any, *, dicom: bool = False) -> None:
        """Counts (and patients, when grouped), examples and problems of a DatasetIndex or
        TextIndex; ``dicom``: it holds DICOM files, so the window choice is shown."""
        counts = index.class_counts()
        classes = list(index.classes)
        groups = index.group_counts() if not self._words and is_grouped(index) else None
        self.show_counts(classes, counts, groups)
        self.split_settings.set_grouped(groups is not None)
        if self._words:
            self.grid.clear()
            self.text_view.set_index(index)
        else:
            self.grid.set_dataset(
                [Thumb(s.path, classes[s.label], s.split) for s in index.samples], classes
            )
        self.clinical.set_dicom(dicom and not self._words)
        if self.clinical.dicom:
            self.clinical.set_preview_path(index.samples[0].path if index.samples else "")
        self.show_problems(index.problems)

    def show_counts(
        self,
        classes: list[str],
        counts: dict[str, dict[str, int]],
        groups: dict[str, dict[str, dict[str, int]]] | None = None,
    ) -> None:
        self.class_table.set_counts(classes, counts, groups)
        self.chart.set_counts(classes, counts)
        self.chart_scroll.setMaximumHeight(self.chart.height() + 2)  # scrolls when space is short
        self.split_settings.set_folder_splits({s for s in counts if s != "all"})

    def show_no_index(self) -> None:
        """A table whose columns cannot be used: no classes, no problems yet."""
        self.show_counts([], {"all": {}})
        self.text_view.set_index(None)
        self.problem_list.set_problems([])
        self.problems_title.setText("<b>Problems</b>: shown once the columns are chosen.")

    def show_problems(self, problems: tuple[Problem, ...]) -> None:
        self.problem_list.set_problems(problems)
        if not problems:
            self.problems_title.setText("<b>Problems</b>: none found. Every file can be used.")
            return
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        parts = [plural(n, w) for n, w in ((errors, "error"), (warnings, "warning")) if n]
        click = "see the rows" if self.text_view.table_path else "see the file"
        self.problems_title.setText(f"<b>Problems</b>: {', '.join(parts)}. Click one to {click}.")

    def show_preview(self, path: str, **kwargs: Any) -> ImagePreviewDialog:
        """The preview window for one image file (decoded in the background)."""
        if self._preview is None:
            self._preview = ImagePreviewDialog(self)
        self._preview.set_window(self.clinical.dicom_window)
        self._preview.show_file(path, **kwargs)
        if self.clinical.dicom:
            self.clinical.set_preview_path(path)  # the window's preview follows the choice
        return self._preview

    # -- behaviour --------------------------------------------------------------------------------

    def _on_problem_list_problem_activated(self, problem: Problem) -> None:
        if not problem.path:
            return
        if self._words:
            self.text_view.show_problem(problem)
            return
        if self.grid.select_path(problem.path):
            self.grid.view.setFocus()
            return
        self.show_preview(problem.path, problem=problem.message, severity=problem.severity)

    def _on_clinical_window_changed(self, window: str) -> None:
        self.grid.model.set_window(window)
        if self._preview is not None:
            self._preview.set_window(window)

    def _on_grid_image_activated(self, path: str) -> None:
        row = self.grid.model.row_of(path)
        if row is None:
            return
        thumb = self.grid.model.thumb(row)
        where = f", {thumb.split} set" if thumb.split else ""
        self.show_preview(path, details=f"Class: {thumb.class_name}{where}")

    def _on_class_table_item_double_clicked(self, item: QTableWidgetItem) -> None:
        name = self.class_table.class_at(item.row())
        if self._words:
            self.text_view.examples.show_class(name)
            return
        combo = self.grid.filter_combo
        combo.setCurrentIndex(max(0, combo.findData(name)))
