"""Refit Studio's desktop app: a thin PySide6 view over the engine."""
