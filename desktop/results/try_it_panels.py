"""The two faces of the Try-it widget: an image drop zone and a text box, each with its bars."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.results.probability_bars import ProbabilityBarsWidget
from desktop.results.try_it_jobs import Analysis
from desktop.widgets.palette_colors import is_dark

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.avif);;All files (*)"
# Toward the class: blue; against it: orange (tell apart with colour-blindness too).
_TOWARD = {False: QColor("#2f7fd0"), True: QColor("#3d8fe6")}
_AGAINST = {False: QColor("#e6730f"), True: QColor("#e07a1f")}
_MAX_TINT = 0.75
DROP_HINT = "Drop an image here\n\nor use Choose image… or Paste image below"


class DropZone(QFrame):
    """Where an image is dropped and then shown; a dashed frame with a hint while empty."""

    file_dropped = Signal(str)
    image_dropped = Signal(QImage)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tryItDropZone")
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # click it, then Ctrl+V pastes
        self.setAccessibleName("Image drop zone")
        self.setMinimumSize(240, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.hint = DROP_HINT
        self.caption = ""
        self._image: QImage | None = None
        self._hover = False

    @property
    def image(self) -> QImage | None:
        return self._image

    def set_image(self, image: QImage | None, caption: str = "") -> None:
        self._image = image
        self.caption = caption
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(360, 320)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if any(u.isLocalFile() for u in mime.urls()) or mime.hasImage():
            self._hover = True
            self.update()
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._hover = False
        self.update()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self._hover = False
        self.update()
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.file_dropped.emit(files[0])
        elif mime.hasImage():
            event.acceptProposedAction()
            self.image_dropped.emit(QImage(mime.imageData()))

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        palette = self.palette()
        area = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        caption_h = self.fontMetrics().height() + 8 if self.caption and self._image else 0
        if self._image is not None and not self._image.isNull():
            room = area.adjusted(0, 0, 0, -caption_h)
            pixmap = QPixmap.fromImage(self._image).scaled(
                room.size().toSize(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            x = room.x() + (room.width() - pixmap.width()) / 2
            y = room.y() + (room.height() - pixmap.height()) / 2
            painter.drawPixmap(int(x), int(y), pixmap)
            if caption_h:
                painter.setPen(palette.color(QPalette.ColorRole.WindowText))
                painter.drawText(
                    QRectF(area.x(), area.bottom() - caption_h, area.width(), caption_h),
                    Qt.AlignmentFlag.AlignCenter,
                    self.fontMetrics().elidedText(
                        self.caption, Qt.TextElideMode.ElideMiddle, int(area.width())
                    ),
                )
        if self._image is None or self._hover:
            colour = palette.color(
                QPalette.ColorRole.Highlight if self._hover else QPalette.ColorRole.Mid
            )
            painter.setPen(QPen(colour, 2, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(area, 8, 8)
        if self._image is None:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, self.hint)
        painter.end()


class ImagePanel(QWidget):
    """Drop zone and buttons on the left; probability bars and the heatmap toggle on the right."""

    #: what the status line asks the user to do, after "Try <run>: "
    prompt = "drop an image below, choose one, or paste one (Ctrl+V)."
    #: the explain toggle's tooltip when the run can be explained
    explain_tip = "Overlay a Grad-CAM heatmap: where in the image the model found the chosen class."

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(16)
        left = QVBoxLayout()
        self.drop_zone = DropZone()
        left.addWidget(self.drop_zone, 1)
        buttons = QHBoxLayout()
        self.choose_button = QPushButton("Choose image…")
        self.choose_button.setObjectName("tryItChooseButton")
        self.choose_button.setToolTip("Pick an image file to classify.")
        self.paste_button = QPushButton("Paste image")
        self.paste_button.setObjectName("tryItPasteButton")
        self.paste_button.setToolTip(
            "Classify the image on the clipboard (Ctrl+V). It is saved to a temporary file, "
            "never into your dataset."
        )
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.paste_button)
        buttons.addStretch(1)
        left.addLayout(buttons)
        layout.addLayout(left, 3)
        self.paste_shortcut = QShortcut(QKeySequence.StandardKey.Paste, self)
        self.paste_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        right = QVBoxLayout()
        title = QLabel("<b>Top predictions</b>")
        right.addWidget(title)
        self.bars = ProbabilityBarsWidget()
        right.addWidget(self.bars)
        self.heatmap_box = QCheckBox("Show heatmap")
        self.heatmap_box.setObjectName("tryItHeatmapBox")
        right.addWidget(self.heatmap_box)
        self.caption = QLabel()
        self.caption.setObjectName("tryItImageCaption")
        self.caption.setWordWrap(True)
        right.addWidget(self.caption)
        right.addWidget(self._build_scale())
        right.addStretch(1)
        layout.addLayout(right, 2)

    def _build_scale(self) -> QWidget:
        """The heatmap's colours from "less" to "more" (shown with the overlay)."""
        self.scale = QWidget()
        row = QHBoxLayout(self.scale)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("less"))
        self.scale_strip = QLabel()
        self.scale_strip.setObjectName("tryItHeatmapScale")
        self.scale_strip.setScaledContents(True)
        self.scale_strip.setFixedHeight(12)
        self.scale_strip.setMinimumWidth(120)
        row.addWidget(self.scale_strip, 1)
        row.addWidget(QLabel("more"))
        self.scale.setToolTip("How strongly each area pushed the model toward the class.")
        self.scale.setVisible(False)
        return self.scale

    @property
    def explain_box(self) -> QCheckBox:
        """The toggle that shows the explanation (the heatmap)."""
        return self.heatmap_box

    def ready(self) -> None:
        """A run's model is loaded: the drop zone says what to do again."""
        self.drop_zone.hint = DROP_HINT

    def show_result(self, result: Analysis) -> bool:
        """Show the picture, or its Grad-CAM overlay when the toggle is on; True for the latter."""
        show_overlay = self.heatmap_box.isChecked() and result.overlay is not None
        if show_overlay:
            self.drop_zone.set_image(result.overlay, f"Grad-CAM for {result.explained}")
            self.caption.setText(
                f"The brighter an area, the more it pushed the model toward "
                f"<b>{html.escape(result.explained)}</b> ({result.probability:.1%}). The picture "
                f"is what the model saw: resized and cropped.{_pick_hint(self.bars)}"
            )
            self.caption.setToolTip(result.method)
            if result.scale is not None:
                self.scale_strip.setPixmap(QPixmap.fromImage(result.scale))
            self.scale.setVisible(result.scale is not None)
        else:
            self.drop_zone.set_image(result.picture, Path(result.request.source).name)
            self.caption.setText(html.escape(result.explain_error))
            self.caption.setToolTip("")
            self.scale.setVisible(False)
        return show_overlay


class TextPanel(QWidget):
    """A text box with Classify (Ctrl+Enter), the bars, and the text with its influential words."""

    classify_requested = Signal()  # Ctrl+Enter in the text box

    #: what the status line asks the user to do, after "Try <run>: "
    prompt = "paste or type a text and press Classify (Ctrl+Enter)."
    #: the explain toggle's tooltip when the run can be explained
    explain_tip = "Tint the words by how much each pushed the model toward the chosen class."

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("tryItTextEdit")
        self.editor.setPlaceholderText("Paste a text…")
        self.editor.setTabChangesFocus(True)
        self.editor.setMinimumHeight(90)
        layout.addWidget(self.editor, 2)
        row = QHBoxLayout()
        self.classify_button = QPushButton("Classify")
        self.classify_button.setObjectName("tryItClassifyButton")
        self.classify_button.setToolTip("Classify the text (Ctrl+Enter).")
        row.addWidget(self.classify_button)
        self.influence_box = QCheckBox("Show influential words")
        self.influence_box.setObjectName("tryItInfluenceBox")
        row.addWidget(self.influence_box)
        row.addStretch(1)
        layout.addLayout(row)
        self.editor.installEventFilter(self)
        results = QHBoxLayout()
        results.setSpacing(16)
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Top predictions</b>"))
        self.bars = ProbabilityBarsWidget()
        left.addWidget(self.bars)
        self.caption = QLabel()
        self.caption.setObjectName("tryItTextCaption")
        self.caption.setWordWrap(True)
        left.addWidget(self.caption)
        left.addStretch(1)
        results.addLayout(left, 2)
        self.influence_view = QTextBrowser()
        self.influence_view.setObjectName("tryItInfluenceView")
        self.influence_view.setOpenLinks(False)
        self.influence_view.setMinimumHeight(100)
        self.influence_view.setPlaceholderText(
            "The classified text appears here. Switch on \u201cShow influential words\u201d to "
            "tint the words that drove the prediction."
        )
        results.addWidget(self.influence_view, 3)
        layout.addLayout(results, 3)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.editor and isinstance(event, QKeyEvent):
            ctrl = event.modifiers() & Qt.KeyboardModifier.ControlModifier
            enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            if ctrl and enter and event.type() == QEvent.Type.KeyPress:
                self.classify_requested.emit()
                return True
        return super().eventFilter(watched, event)

    @property
    def explain_box(self) -> QCheckBox:
        """The toggle that shows the explanation (the influential words)."""
        return self.influence_box

    def ready(self) -> None:
        """A run's model is loaded (the text box needs nothing)."""

    def show_result(self, result: Analysis) -> bool:
        """Show the classified text, tinted when the toggle is on; True for the latter."""
        show_words = self.influence_box.isChecked() and bool(result.words)
        palette = self.influence_view.palette()
        if show_words:
            self.influence_view.setHtml(
                influence_html(result.words, result.explained, palette)
                + f"<p>{influence_legend(result.explained, palette)}</p>"
            )
            self.influence_view.setToolTip(result.method)
            self.caption.setText(
                f"Tinted words pushed the model toward or away from "
                f"<b>{html.escape(result.explained)}</b> ({result.probability:.1%})."
                f"{_pick_hint(self.bars)}"
            )
        else:
            text = html.escape(result.request.source).replace("\n", "<br>")
            self.influence_view.setHtml(f'<p style="line-height:150%">{text}</p>')
            self.influence_view.setToolTip("")
            self.caption.setText(html.escape(result.explain_error))
        return show_words


def _pick_hint(bars: ProbabilityBarsWidget) -> str:
    if len(bars.rows) < 2:
        return ""
    return " Click another class in the bars to explain that one."


def influence_html(words: list[tuple[str, float]], target: str, palette: QPalette) -> str:
    """The words as HTML, each tinted by its influence: blue toward ``target``, orange against,
    stronger for a larger |score| (scores are scaled so the largest |score| is 1)."""
    dark = is_dark(palette)
    base = palette.color(QPalette.ColorRole.Base)
    spans = []
    for word, score in words:
        strength = min(abs(score), 1.0)
        if strength < 0.05:
            spans.append(html.escape(word))
            continue
        tint = (_TOWARD if score > 0 else _AGAINST)[dark]
        back = _blend(base, tint, strength * _MAX_TINT)
        fore = "#000000" if back.lightnessF() > 0.55 else "#ffffff"
        sign = "toward" if score > 0 else "against"
        spans.append(
            f'<span style="background-color:{back.name()}; color:{fore}" '
            f'title="{score:+.2f} ({sign} {html.escape(target)})">{html.escape(word)}</span>'
        )
    return f'<p style="line-height:150%">{" ".join(spans)}</p>'


def influence_legend(target: str, palette: QPalette) -> str:
    """One line saying what the two colours mean."""
    dark = is_dark(palette)
    base = palette.color(QPalette.ColorRole.Base)
    chips = []
    for tint, words in ((_TOWARD, f"toward {target}"), (_AGAINST, f"against {target}")):
        back = _blend(base, tint[dark], _MAX_TINT)
        fore = "#000000" if back.lightnessF() > 0.55 else "#ffffff"
        chips.append(
            f'<span style="background-color:{back.name()}; color:{fore}">'
            f"&nbsp;{html.escape(words)}&nbsp;</span>"
        )
    return " ".join(chips) + "&nbsp; stronger colour: more influence"


def _blend(base: QColor, tint: QColor, amount: float) -> QColor:
    def mix(a: int, b: int) -> int:
        return round(a + (b - a) * amount)

    return QColor(
        mix(base.red(), tint.red()), mix(base.green(), tint.green()), mix(base.blue(), tint.blue())
    )
