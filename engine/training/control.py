"""Training's pause and cancel flags are the engine's one task object (engine/task.py).

``RunControl`` is the name training code has used for it; new code says ``Task``."""

from __future__ import annotations

from engine.task import Cancelled, Task

RunControl = Task

__all__ = ["Cancelled", "RunControl"]
