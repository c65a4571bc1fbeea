"""Palettes: the system's light or dark theme, and an explicit dark palette for checks."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from desktop.resources import resource_path


def apply_app_style(app: QApplication) -> None:
    """The shipped style sheet (spacing only; colours follow the system's light or dark theme)."""
    style = resource_path("style", "app.qss")
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))


def apply_dark_palette(app: QApplication) -> None:
    """Fusion style with a dark palette (what a dark system theme gives on Linux/Windows)."""
    app.setStyle("Fusion")
    p = QPalette()
    role = QPalette.ColorRole
    p.setColor(role.Window, QColor(37, 37, 38))
    p.setColor(role.WindowText, QColor(230, 230, 230))
    p.setColor(role.Base, QColor(30, 30, 30))
    p.setColor(role.AlternateBase, QColor(45, 45, 48))
    p.setColor(role.ToolTipBase, QColor(45, 45, 48))
    p.setColor(role.ToolTipText, QColor(230, 230, 230))
    p.setColor(role.Text, QColor(230, 230, 230))
    p.setColor(role.Button, QColor(50, 50, 52))
    p.setColor(role.ButtonText, QColor(230, 230, 230))
    p.setColor(role.BrightText, QColor(255, 90, 90))
    p.setColor(role.Highlight, QColor(58, 110, 190))
    p.setColor(role.HighlightedText, QColor(255, 255, 255))
    p.setColor(role.Link, QColor(110, 170, 255))
    p.setColor(role.PlaceholderText, QColor(140, 140, 140))
    disabled = QPalette.ColorGroup.Disabled
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(disabled, r, QColor(120, 120, 120))
    app.setPalette(p)
