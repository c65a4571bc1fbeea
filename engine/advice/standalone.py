"""The Recommended method's analysis on its own: what it would choose, without training.

``refit advise`` and the Layers page's "Analyse my data" call it; nothing is written but the
feature cache (the run that follows reuses it).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.advice.lr_find_config import _FinderContext
from engine.advice.recommend import Advice, recommend
from engine.config import Method, RunConfig
from engine.events import Event, StageProgressed
from engine.training.control import Cancelled, RunControl


def advise(
    config: RunConfig,
    *,
    workspace: str | Path | None = None,
    on_event: Callable[[Event], Any] | None = None,
    control: RunControl | None = None,
) -> Advice:
    """The recipe the Recommended method would choose for ``config`` (whatever its method),
    and the evidence: depth scores, trials, the range test. Raises Cancelled on cancel."""
    from engine.data.intensity import resolve_intensity
    from engine.models import build_model, resolve_entry
    from engine.training.devices import resolve_placement
    from engine.training.inputs import prepare_data
    from engine.training.loaders import auto_workers
    from engine.training.trainer import check_modality

    config = config.replace(adapt=dataclasses.replace(config.adapt, method=Method.AUTO))
    config.validate()
    ctx = _FinderContext(config, workspace, on_event, control or RunControl())
    ctx.started_at = time.monotonic()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    ctx.placement = resolve_placement(config.device)
    ctx.workers = auto_workers(config.data.num_workers)

    def progress(done: int, total: int) -> None:
        ctx.emit(StageProgressed(stage="scan", done=done, total=total))

    ctx.data = prepare_data(config, control=ctx.control, on_progress=progress)
    if ctx.control.cancelled:
        raise Cancelled()
    for problem in ctx.data.problems:
        ctx.log(problem.message, level="warning")
    check_modality(resolve_entry(config.model.backbone), ctx.data)
    model = build_model(config.model, len(ctx.data.classes))
    if model.modality == "image":
        intensity = resolve_intensity(str(config.data.intensity), ctx.data.intensity)
        model.preprocess = dataclasses.replace(model.preprocess, intensity=intensity)
    ctx.channels_last = config.device.channels_last and model.entry.is_convnet
    model.to(ctx.placement.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)
    advice = recommend(ctx, model)
    advice.recording = None
    return advice
