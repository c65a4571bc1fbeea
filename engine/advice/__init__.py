"""Choosing the recipe: learning-rate range test (and, later, the other advisors).

Kept light on purpose: nothing heavy (torch, models) is imported until a function is called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LrCurve", "find_learning_rate", "lr_range_test", "suggest_lr"]


def __getattr__(name: str) -> Any:
    if name in ("LrCurve", "lr_range_test", "suggest_lr"):
        from engine.advice import lr_finder

        return getattr(lr_finder, name)
    if name == "find_learning_rate":
        from engine.advice.lr_find_config import find_learning_rate

        return find_learning_rate
    raise AttributeError(f"module 'engine.advice' has no attribute {name!r}")
