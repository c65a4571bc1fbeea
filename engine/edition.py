"""Which build of Refit Studio is running: a packaged edition or an install from source.

The packaged app is built in two editions (see docs/installer.md): "CPU/Apple" without the
CUDA libraries, and "NVIDIA GPU" with them. ``build.spec`` writes the edition into the bundle as
``refit_edition.json``; an install with pip has none and is reported as such.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARKER = "refit_edition.json"
EDITIONS = {"cpu": "CPU/Apple edition", "nvidia": "NVIDIA GPU edition"}
UNKNOWN = "packaged, edition unknown"


def bundle_dir() -> Path | None:
    """The folder of a PyInstaller bundle's files, or None when not running from one."""
    folder = getattr(sys, "_MEIPASS", None)
    return Path(folder) if getattr(sys, "frozen", False) and folder else None


def edition() -> str:
    """'CPU/Apple edition', 'NVIDIA GPU edition', or 'installed from source' (pip, a checkout)."""
    folder = bundle_dir()
    if folder is None:
        return "installed from source"
    try:
        key = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("edition")
    except (OSError, ValueError, AttributeError):
        key = None
    return EDITIONS[key] if isinstance(key, str) and key in EDITIONS else UNKNOWN


def version_line() -> str:
    """'Refit Studio 0.1.0, CPU/Apple edition; torch 2.13.0+cpu': what `refit --version` prints."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("refit-studio")
    except PackageNotFoundError:
        ours = "(version unknown)"
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "unknown"
    return f"Refit Studio {ours}, {edition()}; torch {torch_version}"
