"""Top classes as labelled probability bars; clicking a bar picks that class."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

ROW_HEIGHT = 28


class ProbabilityBarsWidget(QWidget):
    """One row per class: name, a bar as long as its probability, and the percentage.

    ``set_rows([(class, probability), ...])`` fills it, most probable first. The selected row
    (the top class unless the user clicks another, or moves with the arrow keys) is drawn in full
    colour; ``class_picked`` says which class the user chose.
    """

    class_picked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityBars")
        self.setAccessibleName("Predicted class probabilities")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self._rows: list[tuple[str, float]] = []
        self.selected = ""
        self.pickable = True
        self._update_height()

    @property
    def rows(self) -> list[tuple[str, float]]:
        return list(self._rows)

    def set_rows(self, rows: list[tuple[str, float]], selected: str = "") -> None:
        self._rows = [(str(name), float(p)) for name, p in rows]
        names = [name for name, _ in self._rows]
        self.selected = selected if selected in names else (names[0] if names else "")
        self.setToolTip(
            "\n".join(f"{name}: {p:.1%}" for name, p in self._rows)
            + ("\nClick a class to explain it." if self.pickable and self._rows else "")
        )
        self._update_height()
        self.update()

    def clear(self) -> None:
        self.set_rows([])

    def pick(self, name: str) -> None:
        """Select ``name`` as if the user clicked it."""
        if name in (n for n, _ in self._rows) and name != self.selected:
            self.selected = name
            self.update()
            self.class_picked.emit(name)

    def row_at(self, y: float) -> int:
        row = int(y - 4) // ROW_HEIGHT
        return row if 0 <= row < len(self._rows) else -1

    def row_rect(self, row: int) -> QRectF:
        return QRectF(0, 4 + row * ROW_HEIGHT, self.width(), ROW_HEIGHT)

    def _update_height(self) -> None:
        self.setFixedHeight(max(1, len(self._rows)) * ROW_HEIGHT + 8)

    def sizeHint(self) -> QSize:
        return QSize(280, self.height())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        row = self.row_at(event.position().y())
        if self.pickable and row >= 0:
            self.pick(self._rows[row][0])
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        over = self.pickable and self.row_at(event.position().y()) >= 0
        self.setCursor(Qt.CursorShape.PointingHandCursor if over else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        names = [n for n, _ in self._rows]
        step = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1}.get(Qt.Key(event.key()), 0)
        if not (self.pickable and step and self.selected in names):
            super().keyPressEvent(event)
            return
        index = min(max(names.index(self.selected) + step, 0), len(names) - 1)
        self.pick(names[index])

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        metrics = self.fontMetrics()
        if not self._rows:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No prediction yet")
            return
        names = [name for name, _ in self._rows]
        label_w = min(max(metrics.horizontalAdvance(n) for n in names) + 16, self.width() // 3)
        number_w = metrics.horizontalAdvance("100.0%") + 12
        bar_w = max(10.0, self.width() - label_w - number_w - 4)
        for row, (name, prob) in enumerate(self._rows):
            self._paint_row(painter, row, name, prob, label_w, bar_w, number_w)
        painter.end()

    def _paint_row(
        self,
        painter: QPainter,
        row: int,
        name: str,
        prob: float,
        label_w: int,
        bar_w: float,
        number_w: int,
    ) -> None:
        palette = self.palette()
        rect = self.row_rect(row)
        selected = name == self.selected
        if selected and self.pickable and len(self._rows) > 1:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
            painter.drawRoundedRect(rect.adjusted(0, 1, 0, -1), 4, 4)
        text = palette.color(QPalette.ColorRole.WindowText)
        font = painter.font()
        font.setBold(selected)
        painter.setFont(font)
        painter.setPen(text)
        label = self.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, label_w - 12)
        align_right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(QRectF(0, rect.y(), label_w - 8, ROW_HEIGHT), align_right, label)
        track = QRectF(label_w, rect.y() + 6, bar_w, ROW_HEIGHT - 12)
        colour = QColor(palette.color(QPalette.ColorRole.Highlight))
        painter.setPen(Qt.PenStyle.NoPen)
        track_colour = QColor(text)
        track_colour.setAlpha(40)  # a faint track on light and dark palettes alike
        painter.setBrush(track_colour)
        painter.drawRoundedRect(track, 3, 3)
        colour.setAlpha(255 if selected else 150)
        painter.setBrush(colour)
        painter.drawRoundedRect(QRectF(track.x(), track.y(), bar_w * prob, track.height()), 3, 3)
        painter.setPen(text)
        painter.drawText(
            QRectF(label_w + bar_w + 8, rect.y(), number_w, ROW_HEIGHT),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            f"{prob:.1%}",
        )
        font.setBold(False)
        painter.setFont(font)
