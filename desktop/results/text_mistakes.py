"""Text examples of a confusion-matrix cell as rows, with influential words highlighted."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QTextBrowser, QWidget

from desktop.widgets.palette_colors import is_dark

if TYPE_CHECKING:
    from engine import TokenInfluence

MAX_ROWS = 300
SHOWN_INFLUENCE = 0.15  # weaker words stay plain: a page of faint colour reads as noise


@dataclass(frozen=True)
class Example:
    """One example of the gallery: where it is, what it is, what the model said."""

    index: int
    ref: str  # image path, or the text itself
    truth: str
    predicted: str
    confidence: float


def influence_colors(palette: QPalette) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """RGB of words that push towards the prediction, and of words that push away."""
    if is_dark(palette):
        return (255, 140, 60), (90, 160, 255)
    return (230, 100, 20), (40, 110, 220)


def influence_html(words: Sequence[tuple[str, float]], palette: QPalette) -> str:
    """The words with a background whose strength follows the influence (orange: towards the
    predicted class, blue: away from it)."""
    towards, away = influence_colors(palette)
    base = palette.color(QPalette.ColorRole.Base)
    parts = []
    for word, score in words:
        text = html.escape(word)
        if abs(score) < SHOWN_INFLUENCE:
            parts.append(text)
            continue
        alpha = 0.2 + 0.6 * min(1.0, abs(score))
        color = _blend(towards if score > 0 else away, base, alpha)
        parts.append(
            f'<span style="background-color: {color};" title="influence {score:+.2f}">{text}</span>'
        )
    return " ".join(parts)


def _blend(rgb: tuple[int, int, int], base: QColor, alpha: float) -> str:
    """``rgb`` at ``alpha`` over ``base`` as #rrggbb (rich text has no reliable rgba())."""
    mixed = [
        round(c * alpha + b * (1 - alpha)) for c, b in zip(rgb, base.getRgb()[:3], strict=True)
    ]
    return "#{:02x}{:02x}{:02x}".format(*mixed)


class TextMistakesView(QTextBrowser):
    """Rows of texts, most confident first; highlights appear as they are computed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("textMistakes")
        self.setAccessibleName("Text examples")
        self.setOpenLinks(False)
        self.examples: list[Example] = []
        self.influence: Mapping[str, TokenInfluence | str] = {}
        self.highlight = False

    def set_examples(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)
        self.render()

    def set_influence(self, influence: Mapping[str, TokenInfluence | str], highlight: bool) -> None:
        self.influence = influence
        self.highlight = highlight
        self.render()

    def render(self) -> None:
        scroll = self.verticalScrollBar().value()
        self.setHtml(self.page_html())
        self.verticalScrollBar().setValue(scroll)

    def page_html(self) -> str:
        palette = self.palette()
        muted = palette.color(QPalette.ColorRole.PlaceholderText).name()
        line = palette.color(QPalette.ColorRole.Mid).name()
        rows = []
        for n, example in enumerate(self.examples[:MAX_ROWS], start=1):
            body = html.escape(example.ref)
            found = self.influence.get(example.ref) if self.highlight else None
            if found is not None and not isinstance(found, str):
                body = influence_html(found.words, palette)
            elif isinstance(found, str):
                body += f'<br><span style="color:{muted}">{html.escape(found)}</span>'
            cell = f"padding:6px 12px 6px 0; border-bottom:1px solid {line}; vertical-align:top"
            rows.append(
                f'<tr><td width="110" style="{cell}; white-space:nowrap">'
                f'<span style="color:{muted}">{n}.</span> '
                f"<b>{100 * example.confidence:.1f}%</b><br>"
                f"<small>said {html.escape(example.predicted)}<br>"
                f"truly {html.escape(example.truth)}</small></td>"
                f'<td style="{cell}">{body}</td></tr>'
            )
        more = len(self.examples) - MAX_ROWS
        tail = f'<p style="color:{muted}">… and {more} more.</p>' if more > 0 else ""
        return (
            '<table width="100%" cellspacing="0" cellpadding="0">'
            + "".join(rows)
            + "</table>"
            + tail
        )

    def row_texts(self) -> list[str]:
        """The texts shown, in order (tests read them)."""
        return [e.ref for e in self.examples[:MAX_ROWS]]
