"""Colours that read well on the current palette, light or dark (plots, log levels)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

# Colour cycles readable on a light and on a dark background: blue, orange, green, red, purple.
LIGHT_COLORS = ("#1f77b4", "#e6730f", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
DARK_COLORS = ("#5aa9ff", "#ffa040", "#5fd35f", "#ff6b6b", "#c39bff", "#d9a07a")


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def series_color(index: int, palette: QPalette, alpha: int = 255) -> QColor:
    """The ``index``-th colour of the cycle that suits ``palette``'s background."""
    colors = DARK_COLORS if is_dark(palette) else LIGHT_COLORS
    color = QColor(colors[index % len(colors)])
    color.setAlpha(alpha)
    return color


def level_color(level: str, palette: QPalette) -> str:
    """Text colour of a log level that reads well on the palette's background."""
    dark = is_dark(palette)
    if level == "warning":
        return "#ffb347" if dark else "#a35a00"
    if level == "error":
        return "#ff7b7b" if dark else "#c62828"
    return palette.color(QPalette.ColorRole.Text).name()
