"""Refit Studio's engine: datasets, backbones, training and run folders. Never imports Qt."""

from __future__ import annotations

__version__ = "0.1.0"
