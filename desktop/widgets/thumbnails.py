"""A grid of image thumbnails that are decoded lazily, off the GUI thread, and kept in an LRU."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.image_loader import ImageLoader

THUMB_SIZE = 96
CACHE_SIZE = 600
PathRole = Qt.ItemDataRole.UserRole + 1

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Thumb:
    """One image in the grid."""

    path: str
    class_name: str
    split: str | None = None


class PixmapCache:
    """Least-recently-used pixmaps by path."""

    def __init__(self, capacity: int = CACHE_SIZE) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, QPixmap] = OrderedDict()

    def get(self, path: str) -> QPixmap | None:
        pixmap = self._items.get(path)
        if pixmap is not None:
            self._items.move_to_end(path)
        return pixmap

    def put(self, path: str, pixmap: QPixmap) -> None:
        self._items[path] = pixmap
        self._items.move_to_end(path)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class ThumbnailModel(QAbstractListModel):
    """Images of a dataset, optionally of one class. DecorationRole starts a background decode
    the first time a row is painted and returns a placeholder until the thumbnail is ready."""

    def __init__(self, parent: QObject | None = None, *, size: int = THUMB_SIZE) -> None:
        super().__init__(parent)
        self.size = size
        self.loader = ImageLoader(self)
        self.loader.loaded.connect(self._on_loader_loaded)
        self.cache = PixmapCache()
        self._all: list[Thumb] = []
        self._rows: list[Thumb] = []
        self._row_of: dict[str, int] = {}
        self._pending: set[str] = set()
        self._generation = 0
        self._class_filter: str | None = None
        self.dicom_window: str | None = None  # the DICOM window DICOM files are shown with
        self._placeholder: tuple[int, QPixmap] | None = None
        self._broken: tuple[int, QPixmap] | None = None

    # -- content ------------------------------------------------------------------------------

    def set_thumbs(self, thumbs: list[Thumb]) -> None:
        """Show a new dataset; pending decodes of the old one are dropped or ignored."""
        self._generation += 1
        self.loader.clear()
        self._pending.clear()
        self.cache.clear()
        self._all = list(thumbs)
        self._class_filter = None
        self._refilter()

    def set_window(self, window: str | None) -> None:
        """Show DICOM files in ``window`` (a DICOM window name); the thumbnails are decoded
        again as they are painted."""
        if window == self.dicom_window:
            return
        self.dicom_window = window
        self._generation += 1
        self.loader.clear()
        self._pending.clear()
        self.cache.clear()
        if self._rows:
            self.dataChanged.emit(
                self.index(0), self.index(len(self._rows) - 1), [Qt.ItemDataRole.DecorationRole]
            )

    def set_class_filter(self, class_name: str | None) -> None:
        if class_name != self._class_filter:
            self._class_filter = class_name
            self._refilter()

    @property
    def class_filter(self) -> str | None:
        return self._class_filter

    def _refilter(self) -> None:
        self.beginResetModel()
        wanted = self._class_filter
        self._rows = [t for t in self._all if wanted is None or t.class_name == wanted]
        self._row_of = {t.path: i for i, t in enumerate(self._rows)}
        self.endResetModel()

    def row_of(self, path: str) -> int | None:
        return self._row_of.get(path)

    def contains(self, path: str) -> bool:
        """True when ``path`` is in the dataset, whatever the class filter shows."""
        return any(t.path == path for t in self._all)

    def thumb(self, row: int) -> Thumb:
        return self._rows[row]

    def is_ready(self, path: str) -> bool:
        return self.cache.get(path) is not None

    # -- Qt model -----------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        thumb = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            # Split folders often reuse file names (train/a/0.png, val/a/0.png).
            name = Path(thumb.path).name
            return f"{thumb.split} · {name}" if thumb.split else name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(thumb.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = f" ({thumb.split})" if thumb.split else ""
            return f"{thumb.path}\nClass: {thumb.class_name}{where}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{Path(thumb.path).name}, class {thumb.class_name}"
        if role == PathRole:
            return thumb.path
        return None

    def _decoration(self, path: str) -> QPixmap:
        pixmap = self.cache.get(path)
        if pixmap is not None:
            return pixmap
        if path not in self._pending:
            self._pending.add(path)
            self.loader.request(
                path, self.size, self._generation, square=True, window=self.dicom_window
            )
        return self.placeholder()

    def _on_loader_loaded(
        self, path: str, _size: int, token: int, image: QImage | None, _sentence: str
    ) -> None:
        if token != self._generation:
            return  # a result for a dataset that is no longer shown
        self._pending.discard(path)
        pixmap = QPixmap.fromImage(image) if image is not None else self.broken()
        self.cache.put(path, pixmap)
        row = self._row_of.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    # -- placeholder pictures that follow the palette ------------------------------------------

    def placeholder(self) -> QPixmap:
        key = QApplication.palette().cacheKey()
        if self._placeholder is None or self._placeholder[0] != key:
            self._placeholder = (key, _frame_pixmap(self.size, None))
        return self._placeholder[1]

    def broken(self) -> QPixmap:
        key = QApplication.palette().cacheKey()
        if self._broken is None or self._broken[0] != key:
            icon = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            self._broken = (key, _frame_pixmap(self.size, icon.pixmap(self.size // 3)))
        return self._broken[1]


def _frame_pixmap(size: int, inner: QPixmap | None) -> QPixmap:
    """A transparent square with a soft frame (and ``inner`` centred in it)."""
    palette = QApplication.palette()
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
    painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
    painter.drawRoundedRect(QRectF(4.5, 4.5, size - 9, size - 9), 6, 6)
    if inner is not None:
        painter.drawPixmap((size - inner.width()) // 2, (size - inner.height()) // 2, inner)
    painter.end()
    return pixmap


class ThumbnailGridWidget(QWidget):
    """A class filter above an icon grid. ``image_activated(path)`` on double-click or Enter
    (``activated`` covers both, so one gesture opens one preview)."""

    image_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ThumbnailModel(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.title = QLabel("<b>Images</b>")
        top.addWidget(self.title)
        top.addStretch(1)
        show = QLabel("&Show:")
        top.addWidget(show)
        self.filter_combo = QComboBox()
        self.filter_combo.setObjectName("classFilter")
        self.filter_combo.setAccessibleName("Show images of class")
        self.filter_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.filter_combo.currentIndexChanged.connect(self._on_filter_combo_current_index_changed)
        show.setBuddy(self.filter_combo)
        top.addWidget(self.filter_combo)
        layout.addLayout(top)

        self.view = QListView()
        self.view.setObjectName("thumbnailGrid")
        self.view.setAccessibleName("Image thumbnails")
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(200)
        self.view.setUniformItemSizes(True)
        self.view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.view.setGridSize(QSize(THUMB_SIZE + 28, THUMB_SIZE + 30))
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setSpacing(4)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setModel(self.model)
        self.view.activated.connect(self._on_view_activated)
        layout.addWidget(self.view, 1)

    def set_dataset(self, thumbs: list[Thumb], classes: list[str]) -> None:
        counts = {c: 0 for c in classes}
        for t in thumbs:
            counts[t.class_name] = counts.get(t.class_name, 0) + 1
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem(f"All classes ({len(thumbs)})", None)
        for name in classes:
            self.filter_combo.addItem(f"{name} ({counts[name]})", name)
        self.filter_combo.setCurrentIndex(0)
        self.filter_combo.blockSignals(False)
        self.model.set_thumbs(thumbs)

    def clear(self) -> None:
        self.set_dataset([], [])

    def select_path(self, path: str) -> bool:
        """Select and scroll to ``path``; False when it is not one of the grid's images."""
        if not self.model.contains(path):
            return False
        if self.model.row_of(path) is None:
            self.filter_combo.setCurrentIndex(0)  # the image is hidden by the class filter
        row = self.model.row_of(path)
        if row is None:
            return False
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        return True

    def _on_filter_combo_current_index_changed(self, _row: int) -> None:
        self.model.set_class_filter(self.filter_combo.currentData())

    def _on_view_activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self.image_activated.emit(index.data(PathRole))
