"""The list of problems a scan found: a severity icon and one sentence per problem."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QKeyEvent, QPainter, QPixmap, QPolygonF
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

ProblemRole = Qt.ItemDataRole.UserRole + 1

# Colour is used for the severity icons only; everything else follows the palette.
_ERROR_RED = QColor(204, 51, 51)
_WARNING_AMBER = QColor(230, 160, 20)


def severity_icon(severity: str, size: int = 16) -> QIcon:
    """A red disc with "!" for errors, an amber triangle with "!" for warnings."""
    pixmap = QPixmap(size * 2, size * 2)  # drawn at 2x, sharp on high-DPI screens
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    s = size * 2
    if severity == "error":
        painter.setBrush(_ERROR_RED)
        painter.drawEllipse(QRectF(1, 1, s - 2, s - 2))
        mark = QColor(255, 255, 255)
    else:
        painter.setBrush(_WARNING_AMBER)
        painter.drawPolygon(
            QPolygonF([QPointF(s / 2, 1), QPointF(s - 1, s - 2), QPointF(1, s - 2)])
        )
        mark = QColor(40, 30, 0)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(int(s * 0.62))
    painter.setFont(font)
    painter.setPen(mark)
    rect = QRectF(0, s * 0.1 if severity != "error" else 0, s, s)
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "!")
    painter.end()
    pixmap.setDevicePixelRatio(2.0)
    return QIcon(pixmap)


class ProblemListWidget(QListWidget):
    """``problem_activated(problem)`` when a problem is clicked or chosen with Enter."""

    problem_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("problemList")
        self.setAccessibleName("Problems found in the folder")
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.itemClicked.connect(self._on_item_chosen)
        self._icons = {"error": severity_icon("error"), "warning": severity_icon("warning")}

    def set_problems(self, problems: Any) -> None:
        self.clear()
        # Errors first: they are what stops training.
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        for problem in ordered:
            item = QListWidgetItem(
                self._icons.get(problem.severity, self._icons["warning"]), problem.message
            )
            item.setData(ProblemRole, problem)
            tip = problem.message
            if problem.path:
                tip += f"\n\n{problem.path}\nClick to see the file."
            item.setToolTip(tip)
            self.addItem(item)

    def problem(self, row: int) -> Any:
        return self.item(row).data(ProblemRole)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Enter opens the problem like a click does (itemActivated would also fire on a
        # double-click, after itemClicked, and open it twice).
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem():
            self._on_item_chosen(self.currentItem())
            return
        super().keyPressEvent(event)

    def _on_item_chosen(self, item: QListWidgetItem) -> None:
        self.problem_activated.emit(item.data(ProblemRole))
