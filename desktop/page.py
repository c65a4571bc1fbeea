"""Base class of a workflow page."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from desktop.context import AppContext


class Page(QWidget):
    """A page of the main window. ``title`` shows in the navigation list."""

    title = ""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setObjectName(type(self).__name__)

    def on_shown(self) -> None:
        """Called when the user switches to this page."""
