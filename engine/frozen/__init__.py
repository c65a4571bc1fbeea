"""Frozen compute: a frozen network's forward pass in onnxruntime on the CPU, checked by torch.

The names below are imported on first use: engine/frozen/records.py and keys.py stay free of
torch, so `refit train`'s prefetching child (engine/data/prefetch.py) can find a checked export
and run it before this process has imported torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_getattr

if TYPE_CHECKING:
    from engine.frozen.forward import FrozenForward, use_onnxruntime

_LAZY = {
    "FrozenForward": "engine.frozen.forward",
    "use_onnxruntime": "engine.frozen.forward",
}

__all__ = ["FrozenForward", "use_onnxruntime"]

__getattr__ = lazy_getattr(__name__, _LAZY)
