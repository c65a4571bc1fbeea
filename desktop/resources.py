"""Finding files the app ships in resources/, from a checkout or inside a PyInstaller bundle."""

from __future__ import annotations

from pathlib import Path

from engine import bundle_dir


def resource_root() -> Path:
    bundle = bundle_dir()
    if bundle is not None:
        return bundle / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("style", "app.qss")``."""
    return resource_root().joinpath(*parts)
