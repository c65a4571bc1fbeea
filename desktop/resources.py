"""Finding files the app ships in resources/, from a checkout or inside a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def resource_root() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("style", "app.qss")``."""
    return resource_root().joinpath(*parts)
