"""Frozen compute: a frozen network's forward pass in onnxruntime on the CPU, checked by torch."""

from engine.frozen.forward import FrozenForward, use_onnxruntime

__all__ = ["FrozenForward", "use_onnxruntime"]
