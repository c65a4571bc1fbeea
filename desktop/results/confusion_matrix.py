"""A confusion matrix drawn with QPainter: counts, row-normalized shading, clickable cells."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from desktop.widgets.palette_colors import is_dark

MARGIN = 8
TITLE_GAP = 6


class ConfusionMatrixWidget(QWidget):
    """Rows are true classes, columns predicted classes. Each cell shows its count and is shaded
    by its share of the row (correct cells blue, mistakes orange), so a rare class's errors show
    as clearly as a common class's. ``cell_activated(true, predicted)`` on click or Enter."""

    cell_activated = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confusionMatrix")
        self.setAccessibleName("Confusion matrix")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.classes: list[str] = []
        self.counts: list[list[int]] = []
        self.current: tuple[int, int] | None = None
        self.title = ""

    def set_matrix(
        self, classes: Sequence[str], counts: Sequence[Sequence[int]], title: str = ""
    ) -> None:
        """Show ``counts[true][predicted]`` for ``classes``."""
        self.classes = list(classes)
        self.counts = [list(map(int, row)) for row in counts]
        self.title = title
        self.current = None
        self.setAccessibleDescription(self._describe())
        self.update()

    def count(self, true: int, predicted: int) -> int:
        return self.counts[true][predicted]

    def row_share(self, true: int, predicted: int) -> float:
        total = sum(self.counts[true])
        return self.counts[true][predicted] / total if total else 0.0

    # -- geometry -----------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(460, 420)

    def minimumSizeHint(self) -> QSize:
        return QSize(220, 200)

    def _label_font(self) -> QFont:
        font = QFont(self.font())
        n = max(1, len(self.classes))
        if n > 10:
            font.setPointSizeF(max(7.0, font.pointSizeF() - 1.5))
        return font

    def _layout(self) -> tuple[QRectF, float, float, float]:
        """The grid rectangle, the cell size, and the widths of the row and column labels."""
        n = max(1, len(self.classes))
        metrics = QFontMetrics(self._label_font())
        line = metrics.height()
        widest = max((metrics.horizontalAdvance(c) for c in self.classes), default=0)
        row_label = min(widest + 10, self.width() * 0.3) + line + TITLE_GAP  # + rotated "True"
        top = (line + TITLE_GAP if self.title else 0) + line + TITLE_GAP  # title + "Predicted"
        free_w = self.width() - row_label - 2 * MARGIN
        free_h = self.height() - top - 2 * MARGIN
        # Column labels go under the grid; rotated when the cells are narrower than the names.
        cell = max(4.0, min(free_w / n, (free_h - line - 4) / n))
        rotated = widest + 8 > cell
        column_label = min(widest + 10, free_h * 0.3) if rotated else line + 4
        cell = max(4.0, min(free_w / n, (free_h - column_label) / n))
        grid = QRectF(MARGIN + row_label, MARGIN + top, cell * n, cell * n)
        return grid, cell, row_label, column_label

    def cell_rect(self, true: int, predicted: int) -> QRectF:
        grid, cell, _, _ = self._layout()
        return QRectF(grid.left() + predicted * cell, grid.top() + true * cell, cell, cell)

    def cell_at(self, pos: QPointF) -> tuple[int, int] | None:
        if not self.classes:
            return None
        grid, cell, _, _ = self._layout()
        if not grid.contains(pos):
            return None
        n = len(self.classes)
        col = min(n - 1, int((pos.x() - grid.left()) // cell))
        row = min(n - 1, int((pos.y() - grid.top()) // cell))
        return row, col

    # -- painting -----------------------------------------------------------------------------

    def cell_color(self, true: int, predicted: int) -> QColor:
        dark = is_dark(self.palette())
        base = QColor("#2f7fd1" if true == predicted else "#e0661a")
        if dark:
            base = base.lighter(115)
        share = self.row_share(true, predicted)
        color = QColor(base)
        color.setAlphaF(0.06 + 0.9 * share if self.counts[true][predicted] else 0.0)
        return color

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.Text)
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))  # like the plots
        if not self.classes:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No confusion matrix yet.")
            return
        grid, cell, row_label, column_label = self._layout()
        self._paint_titles(painter, grid, row_label, text)
        self._paint_cells(painter, grid, cell, text)
        self._paint_labels(painter, grid, cell, column_label, text)
        painter.end()

    def _paint_titles(
        self, painter: QPainter, grid: QRectF, row_label: float, text: QColor
    ) -> None:
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(text)
        line = QFontMetrics(font).height()
        if self.title:
            painter.drawText(
                QRectF(MARGIN, MARGIN, self.width() - 2 * MARGIN, line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                self.title,
            )
        head = QRectF(grid.left(), grid.top() - line - TITLE_GAP, grid.width(), line)
        painter.drawText(head, Qt.AlignmentFlag.AlignCenter, "Predicted class")
        painter.save()
        painter.translate(MARGIN + line / 2, grid.center().y())
        painter.rotate(-90)
        painter.drawText(
            QRectF(-grid.height() / 2, -line / 2, grid.height(), line),
            Qt.AlignmentFlag.AlignCenter,
            "True class",
        )
        painter.restore()

    def _paint_cells(self, painter: QPainter, grid: QRectF, cell: float, text: QColor) -> None:
        n = len(self.classes)
        count_font = QFont(self.font())
        count_font.setPixelSize(int(max(7, min(18, cell * 0.28))))
        share_font = QFont(count_font)
        share_font.setPixelSize(int(max(6, count_font.pixelSize() * 0.72)))
        show_share = cell >= 46
        grid_pen = QColor(palette_mid(self.palette()))
        for r in range(n):
            for c in range(n):
                rect = QRectF(grid.left() + c * cell, grid.top() + r * cell, cell, cell)
                fill = self.cell_color(r, c)
                painter.fillRect(rect, fill)
                painter.setPen(grid_pen)
                painter.drawRect(rect)
                if cell < 14:
                    continue
                ink = _ink_for(fill, self.palette())
                painter.setPen(ink)
                painter.setFont(count_font)
                count = str(self.counts[r][c])
                if show_share:
                    upper = QRectF(rect.left(), rect.top(), cell, cell * 0.62)
                    painter.drawText(
                        upper, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, count
                    )
                    painter.setFont(share_font)
                    lower = QRectF(rect.left(), rect.top() + cell * 0.62, cell, cell * 0.38)
                    share = f"{100 * self.row_share(r, c):.0f}%"
                    painter.drawText(
                        lower, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, share
                    )
                else:
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, count)
        if self.current is not None and self.hasFocus():
            pen_color = self.palette().color(QPalette.ColorRole.Highlight)
            painter.setPen(pen_color)
            painter.drawRect(self.cell_rect(*self.current).adjusted(1.5, 1.5, -1.5, -1.5))

    def _paint_labels(
        self, painter: QPainter, grid: QRectF, cell: float, column_label: float, text: QColor
    ) -> None:
        font = self._label_font()
        painter.setFont(font)
        painter.setPen(text)
        metrics = QFontMetrics(font)
        n = len(self.classes)
        for i, name in enumerate(self.classes):
            y = grid.top() + i * cell
            width = grid.left() - MARGIN - metrics.height() - TITLE_GAP - 6
            label = metrics.elidedText(name, Qt.TextElideMode.ElideRight, int(width))
            painter.drawText(
                QRectF(grid.left() - width - 6, y, width, cell),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        widest = max(metrics.horizontalAdvance(c) for c in self.classes)
        if widest + 8 <= cell:
            for i, name in enumerate(self.classes):
                rect = QRectF(grid.left() + i * cell, grid.bottom() + 2, cell, metrics.height() + 2)
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, name)
            return
        for i, name in enumerate(self.classes):
            label = metrics.elidedText(name, Qt.TextElideMode.ElideRight, int(column_label - 6))
            painter.save()
            painter.translate(grid.left() + (i + 0.5) * cell, grid.bottom() + 4)
            painter.rotate(-45 if n <= 12 else -90)
            painter.drawText(
                QRectF(-column_label, -metrics.height() / 2, column_label, metrics.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
            painter.restore()

    # -- interaction --------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        hit = self.cell_at(event.position())
        if hit is not None and event.button() == Qt.MouseButton.LeftButton:
            self.current = hit
            self.update()
            self.cell_activated.emit(*hit)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        hit = self.cell_at(event.position())
        if hit is None:
            QToolTip.hideText()
            self.unsetCursor()
        else:
            self.setCursor(Qt.CursorShape.PointingHandCursor)
            QToolTip.showText(event.globalPosition().toPoint(), self.cell_text(*hit), self)
        super().mouseMoveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        n = len(self.classes)
        if not n:
            return super().keyPressEvent(event)
        r, c = self.current or (0, 0)
        moves = {Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0), Qt.Key.Key_Left: (0, -1)}
        moves[Qt.Key.Key_Right] = (0, 1)
        if event.key() in moves:
            dr, dc = moves[Qt.Key(event.key())]
            self.current = (min(n - 1, max(0, r + dr)), min(n - 1, max(0, c + dc)))
            self.setAccessibleDescription(self.cell_text(*self.current))
            self.update()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.current = (r, c)
            self.cell_activated.emit(r, c)
        else:
            super().keyPressEvent(event)

    def cell_text(self, true: int, predicted: int) -> str:
        """The tooltip of a cell, in words."""
        count = self.counts[true][predicted]
        share = 100 * self.row_share(true, predicted)
        truth, guess = self.classes[true], self.classes[predicted]
        kind = "correct" if true == predicted else "mistakes"
        return (
            f"True {truth}, predicted {guess}: {count} examples ({share:.1f}% of {truth}), "
            f"{kind}. Click to see them."
        )

    def _describe(self) -> str:
        if not self.classes:
            return ""
        total = sum(map(sum, self.counts))
        right = sum(self.counts[i][i] for i in range(len(self.classes)))
        return f"{len(self.classes)} classes, {right} of {total} examples on the diagonal."


def palette_mid(palette: QPalette) -> QColor:
    color = QColor(palette.color(QPalette.ColorRole.Text))
    color.setAlpha(60)
    return color


def _ink_for(fill: QColor, palette: QPalette) -> QColor:
    """Text colour readable on ``fill`` blended over the palette's base."""
    base = palette.color(QPalette.ColorRole.Base)
    a = fill.alphaF()
    r = fill.redF() * a + base.redF() * (1 - a)
    g = fill.greenF() * a + base.greenF() * (1 - a)
    b = fill.blueF() * a + base.blueF() * (1 - a)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return QColor("#111111") if luminance > 0.55 else QColor("#ffffff")
