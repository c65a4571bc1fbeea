"""A horizontal bar chart of examples per class, stacked by split, drawn with the palette."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

ROW_HEIGHT = 22
LEGEND_HEIGHT = 22
SPLIT_NAMES = {"all": "images", "train": "train", "val": "validation", "test": "test"}
_SPLIT_ALPHA = {"all": 255, "train": 255, "val": 150, "test": 80}


class ClassChartWidget(QWidget):
    """Bars for ``set_counts(classes, counts)``, where counts is ``DatasetIndex.class_counts()``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("classChart")
        self.setAccessibleName("Examples per class chart")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.unit = "images"  # what is counted: "images" or "texts"
        self._classes: list[str] = []
        self._counts: dict[str, dict[str, int]] = {}
        self._update_height()

    def set_counts(self, classes: list[str], counts: dict[str, dict[str, int]]) -> None:
        self._classes = list(classes)
        self._counts = {split: dict(per_class) for split, per_class in counts.items()}
        self.setToolTip("\n".join(f"{c}: {self.total(c)} {self.unit}" for c in self._classes[:40]))
        self._update_height()
        self.update()

    def total(self, class_name: str) -> int:
        return sum(per_class.get(class_name, 0) for per_class in self._counts.values())

    def _stacked(self) -> bool:
        return len(self._counts) > 1

    def _update_height(self) -> None:
        legend = LEGEND_HEIGHT if self._stacked() else 0
        self.setFixedHeight(max(1, len(self._classes)) * ROW_HEIGHT + legend + 8)

    def sizeHint(self) -> QSize:
        return QSize(320, self.height())

    def _colour(self, split: str) -> QColor:
        colour = QColor(self.palette().color(QPalette.ColorRole.Highlight))
        colour.setAlpha(_SPLIT_ALPHA.get(split, 200))
        return colour

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        metrics = self.fontMetrics()
        if not self._classes:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No classes yet")
            return
        label_w = min(
            max(metrics.horizontalAdvance(c) for c in self._classes) + 12, self.width() // 3
        )
        biggest = max(self.total(c) for c in self._classes) or 1
        number_w = metrics.horizontalAdvance(str(biggest)) + 10
        bar_w = max(10, self.width() - label_w - number_w - 8)
        top = 4
        for row, name in enumerate(self._classes):
            y = top + row * ROW_HEIGHT
            painter.setPen(text)
            label = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, label_w - 8)
            painter.drawText(
                QRectF(0, y, label_w - 8, ROW_HEIGHT),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
            x = float(label_w)
            painter.setPen(Qt.PenStyle.NoPen)
            for split, per_class in self._counts.items():
                width = bar_w * per_class.get(name, 0) / biggest
                painter.setBrush(self._colour(split))
                painter.drawRect(QRectF(x, y + 4, width, ROW_HEIGHT - 8))
                x += width
            painter.setPen(text)
            painter.drawText(
                QRectF(x + 4, y, number_w, ROW_HEIGHT),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                str(self.total(name)),
            )
        if self._stacked():
            self._paint_legend(painter, top + len(self._classes) * ROW_HEIGHT + 4, label_w)
        painter.end()

    def _paint_legend(self, painter: QPainter, y: int, x: float) -> None:
        metrics = self.fontMetrics()
        for split in self._counts:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self._colour(split))
            painter.drawRect(QRectF(x, y + 5, 12, 12))
            name = self.unit if split == "all" else SPLIT_NAMES.get(split, split)
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            painter.drawText(
                QRectF(x + 16, y, metrics.horizontalAdvance(name) + 4, LEGEND_HEIGHT),
                Qt.AlignmentFlag.AlignVCenter,
                name,
            )
            x += 16 + metrics.horizontalAdvance(name) + 16
