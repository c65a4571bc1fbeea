"""The Recommended method's analysis on its own: what it would choose, without training.

``refit advise`` and the Layers page's "Analyse my data" call it; nothing is written but the
feature cache (the run that follows reuses it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.advice.lr_find_config import _FinderContext, load_context
from engine.advice.recommend import Advice, recommend
from engine.config import Method, RunConfig
from engine.events import Event
from engine.task import Task


def advise(
    config: RunConfig,
    *,
    workspace: str | Path | None = None,
    on_event: Callable[[Event], Any] | None = None,
    task: Task | None = None,
) -> Advice:
    """The recipe the Recommended method would choose for ``config`` (whatever its method),
    and the evidence: depth scores, trials, the range test. Raises Cancelled on cancel."""
    config = config.replace(adapt=dataclasses.replace(config.adapt, method=Method.AUTO))
    config.validate()
    ctx = _FinderContext(config, workspace, on_event, task or Task())
    ctx.started_at = time.monotonic()
    model = load_context(ctx)
    model.to(ctx.placement.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)
    advice = recommend(ctx, model)
    advice.recording = None
    return advice
