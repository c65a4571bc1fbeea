"""The examples behind one confusion-matrix cell, most confident first, with explanations.

Image runs show thumbnails (decoded off the GUI thread) and, on request, Grad-CAM overlays;
text runs show rows of text and, on request, their influential words. Explanations are computed
in a worker a few examples at a time and cached, so flipping the toggle back is instant.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
)
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.modalities import views_of
from desktop.results.evaluation_jobs import HeatmapImage, heatmaps_job, influence_job
from desktop.results.text_mistakes import Example, TextMistakesView, influence_colors
from desktop.widgets.image_loader import ImageLoader
from desktop.widgets.thumbnails import PixmapCache, _frame_pixmap
from engine import Task

THUMB = 160
CHUNK = 4  # explanations per worker job: results show up steadily, a cell change waits little
MAX_EXPLAINED = 60  # per cell; the rest stay plain (they are the least confident anyway)
CACHE = 400

_Index = QModelIndex | QPersistentModelIndex


class ExampleModel(QAbstractListModel):
    """Examples as icons: a thumbnail, or its heatmap overlay when heatmaps are on."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.examples: list[Example] = []
        self.loader = ImageLoader(self)
        self.loader.loaded.connect(self._on_loader_loaded)
        self.thumbs = PixmapCache(CACHE)
        self.overlays: dict[str, QPixmap] = {}
        self.show_overlays = False
        self._pending: set[str] = set()
        self._generation = 0
        self._placeholder: QPixmap | None = None

    def set_examples(self, examples: Sequence[Example]) -> None:
        self.beginResetModel()
        self._generation += 1
        self.loader.clear()
        self._pending.clear()
        self.examples = list(examples)
        self.endResetModel()

    def set_overlays(self, overlays: dict[str, QPixmap], show: bool) -> None:
        self.overlays = overlays
        self.show_overlays = show
        if self.examples:
            self.dataChanged.emit(self.index(0), self.index(len(self.examples) - 1))

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.examples)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.examples):
            return None
        example = self.examples[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{example.predicted} {100 * example.confidence:.1f}%\ntrue: {example.truth}"
        if role == Qt.ItemDataRole.DecorationRole:
            if self.show_overlays and example.ref in self.overlays:
                return self.overlays[example.ref]
            return self._thumbnail(example.ref)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                f"{example.ref}\nPredicted {example.predicted} with {100 * example.confidence:.1f}%"
                f" confidence; the true class is {example.truth}."
            )
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{Path(example.ref).name}: predicted {example.predicted}, true {example.truth}"
        return None

    def _thumbnail(self, path: str) -> QPixmap:
        pixmap = self.thumbs.get(path)
        if pixmap is not None:
            return pixmap
        if path not in self._pending:
            self._pending.add(path)
            self.loader.request(path, THUMB, self._generation, square=True)
        if self._placeholder is None:
            self._placeholder = _frame_pixmap(THUMB, None)
        return self._placeholder

    def _on_loader_loaded(
        self, path: str, _size: int, token: int, image: QImage | None, _sentence: str
    ) -> None:
        if token != self._generation:
            return
        self._pending.discard(path)
        self.thumbs.put(
            path, QPixmap.fromImage(image) if image is not None else _frame_pixmap(THUMB, None)
        )
        for row, example in enumerate(self.examples):
            if example.ref == path:
                self.dataChanged.emit(
                    self.index(row), self.index(row), [Qt.ItemDataRole.DecorationRole]
                )


class MistakesGallery(QWidget):
    """A header naming the cell, an explanation toggle, and the cell's examples."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mistakesGallery")
        self.ctx = ctx
        self.run_path: Path | None = None
        self.modality = "image"
        self.examples: list[Example] = []
        self.cell: tuple[int, int] | None = None
        self._explained: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._queue: list[str] = []
        self._worker: Task | None = None  # the running job
        self._failed = ""
        self._method = ""
        self._build()

    def _build(self) -> None:
        self.header = QLabel("Click a cell of the confusion matrix to see its examples here.")
        self.header.setObjectName("galleryHeader")
        self.header.setWordWrap(True)
        self.toggle = QCheckBox("Show heatmaps")
        self.toggle.setObjectName("explainToggle")
        self.toggle.toggled.connect(self._on_toggle_toggled)
        self.explain_status = QLabel()
        self.explain_status.setObjectName("explainStatus")
        self.explain_status.setWordWrap(True)
        self.legend = QLabel()
        self.legend.setObjectName("explainLegend")
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.toggle)
        self.model = ExampleModel(self)
        self.image_view = QListView()
        self.image_view.setObjectName("mistakesGrid")
        self.image_view.setAccessibleName("Examples of the chosen cell")
        self.image_view.setViewMode(QListView.ViewMode.IconMode)
        self.image_view.setMovement(QListView.Movement.Static)
        self.image_view.setResizeMode(QListView.ResizeMode.Adjust)
        self.image_view.setUniformItemSizes(True)
        self.image_view.setIconSize(QSize(THUMB, THUMB))
        self.image_view.setGridSize(QSize(THUMB + 26, THUMB + 44))
        self.image_view.setWordWrap(True)
        self.image_view.setSpacing(8)
        self.image_view.setStyleSheet(
            "QListView#mistakesGrid { padding-top: 8px; background: palette(base); }"
        )
        self.image_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.image_view.setModel(self.model)
        self.text_view = TextMistakesView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.image_view)
        self.stack.addWidget(self.text_view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(top)
        status = QHBoxLayout()
        status.addWidget(self.legend)
        status.addStretch(1)
        status.addWidget(self.explain_status)
        layout.addLayout(status)
        layout.addWidget(self.stack, 1)

    # -- public ---------------------------------------------------------------------------------

    @property
    def _words(self) -> bool:
        """The run's examples are texts (the text list, influential words), not pictures."""
        return views_of(self.modality).text_views

    def set_run(self, run_path: Path, modality: str) -> None:
        """The run whose examples are shown next (explanations are cached per run)."""
        self.run_path = Path(run_path)
        self.modality = modality
        words = self._words
        self.stack.setCurrentWidget(self.text_view if words else self.image_view)
        self.toggle.setText("Highlight influential words" if words else "Show heatmaps")
        self.toggle.setToolTip(
            "Color the words that pushed the model towards its answer (computed a few at a time)."
            if words
            else "Overlay Grad-CAM: where in each image the model looked for the class it "
            "predicted (computed a few at a time)."
        )
        self._failed = ""
        self.show_examples([], None, "")

    def show_examples(
        self, examples: Sequence[Example], cell: tuple[int, int] | None, header: str
    ) -> None:
        """Show ``examples`` (already in the order wanted) under ``header`` (rich text)."""
        self.examples = list(examples)
        self.cell = cell
        if header:
            self.header.setText(header)
        self.model.set_examples(self.examples)
        self.text_view.set_examples(self.examples)
        self._queue = []
        self._refresh_explanations()
        if self.toggle.isChecked():
            self._queue_explanations()

    def shown_refs(self) -> list[str]:
        """The examples' refs in display order."""
        return [e.ref for e in self.examples]

    def explained(self, ref: str) -> Any:
        """The cached explanation of ``ref`` in this run (None when not computed yet)."""
        return self._explained.get((str(self.run_path), ref))

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # -- explanations ---------------------------------------------------------------------------

    def _on_toggle_toggled(self, checked: bool) -> None:
        if checked:
            self._queue_explanations()
        else:
            self._queue = []
        self._refresh_explanations()

    def _queue_explanations(self) -> None:
        if self.run_path is None or self._failed:
            return
        wanted = [e.ref for e in self.examples[:MAX_EXPLAINED]]
        self._queue = [ref for ref in wanted if self.explained(ref) is None]
        self._next_chunk()

    def _next_chunk(self) -> None:
        if self._worker is not None or not self._queue or self.run_path is None:
            self._update_status()
            return
        chunk, self._queue = self._queue[:CHUNK], self._queue[CHUNK:]
        if self._words:
            job = influence_job(self.run_path, chunk)
        else:
            job = heatmaps_job(self.run_path, chunk, THUMB)
        run_key = str(self.run_path)
        self._worker = self.ctx.pool.submit(
            job,
            lambda found: self._on_explain_succeeded(run_key, chunk, found),
            on_error=self._on_explain_failed,
            on_done=self._on_explain_done,
        )
        self._update_status()

    def _on_explain_succeeded(self, run_key: str, chunk: list[str], found: list[Any]) -> None:
        for ref, item in zip(chunk, found, strict=False):
            if isinstance(item, HeatmapImage) and item.method:
                self._method = item.method
            value = _explanation_value(item)
            if isinstance(value, str) and value and self._is_setup_failure(value, found):
                self._failed = value
            self._explained[(run_key, ref)] = value
            while len(self._explained) > CACHE:
                self._explained.popitem(last=False)
        if self._failed:
            self._queue = []
        self._refresh_explanations()

    def _on_explain_failed(self, sentence: str) -> None:
        self._failed = sentence
        self._queue = []

    def _on_explain_done(self) -> None:
        self._worker = None
        if self.toggle.isChecked():
            self._next_chunk()
        self._update_status()

    @staticmethod
    def _is_setup_failure(value: str, found: list[Any]) -> bool:
        """Every item failing with the same sentence means explanations cannot work here."""
        return all(_explanation_value(x) == value for x in found)

    def _refresh_explanations(self) -> None:
        show = self.toggle.isChecked()
        run_key = str(self.run_path)
        if self._words:
            found = {ref: v for (k, ref), v in self._explained.items() if k == run_key}
            self.text_view.set_influence(found, show)
        else:
            overlays = {
                ref: v
                for (k, ref), v in self._explained.items()
                if k == run_key and isinstance(v, QPixmap)
            }
            self.model.set_overlays(overlays, show)
        self._update_legend(show)
        self._update_status()

    def _update_legend(self, show: bool) -> None:
        if not show or not self.examples:
            self.legend.clear()
            return
        if self._words:
            towards, away = influence_colors(self.palette())
            swatch = "<span style='background-color: rgb({},{},{});'>&nbsp;&nbsp;&nbsp;</span>"
            self.legend.setText(
                f"{swatch.format(*towards)} towards the predicted class &nbsp; "
                f"{swatch.format(*away)} away from it"
            )
        else:
            method = html.escape(self._method or "Grad-CAM")
            self.legend.setText(
                "<small>Warm colours: where the model looked for the class it predicted. "
                f"Method: {method}.</small>"
            )

    def _update_status(self) -> None:
        if self._failed:
            self.explain_status.setText(html.escape(self._failed))
            return
        if not self.toggle.isChecked() or not self.examples:
            self.explain_status.clear()
            return
        wanted = [e.ref for e in self.examples[:MAX_EXPLAINED]]
        ready = sum(self.explained(ref) is not None for ref in wanted)
        if ready < len(wanted):
            self.explain_status.setText(f"Explaining… {ready} of {len(wanted)} ready")
        elif len(self.examples) > MAX_EXPLAINED:
            self.explain_status.setText(f"The {MAX_EXPLAINED} most confident are explained.")
        else:
            self.explain_status.clear()


def _explanation_value(item: Any) -> Any:
    """A heatmap result becomes a QPixmap (or its error sentence); token influence stays."""
    if isinstance(item, HeatmapImage):
        if item.image is None:
            return item.error or "No heatmap."
        return QPixmap.fromImage(item.image)
    return item
