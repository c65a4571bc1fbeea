"""The run being set up: one RunConfig that every page edits, with a change signal."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine import RunConfig


class ConfigState(QObject):
    """Holds the RunConfig the pages edit; emits ``changed(config)`` after every edit."""

    changed = Signal(object)

    def __init__(self, config: RunConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = config or RunConfig()

    @property
    def config(self) -> RunConfig:
        return self._config

    def set_config(self, config: RunConfig) -> None:
        if config != self._config:
            self._config = config
            self.changed.emit(config)

    def update(self, section: str, **fields: Any) -> None:
        """Replace fields of one section, e.g. ``update("optim", lr=1e-3)``."""
        current = getattr(self._config, section)
        self.set_config(self._config.replace(**{section: dataclasses.replace(current, **fields)}))

    def update_top(self, **fields: Any) -> None:
        """Replace top-level fields such as ``seed`` or ``name``."""
        self.set_config(self._config.replace(**fields))
