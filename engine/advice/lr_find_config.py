"""The range test of one RunConfig: its data, model, freezing/LoRA and augmentation, no run folder.

The training pipelines (engine/training/pipeline.py, text_pipeline.py) take a Trainer; a small
context object gives them what they read from it, so the test sees exactly the batches a run
would train on.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.advice.lr_finder import LrCurve, lr_range_test
from engine.config import Method, RunConfig
from engine.events import Event, LogMessage, StageProgressed
from engine.modalities import modality_of
from engine.runs import Workspace
from engine.task import Cancelled, Task

PROBE_REASON = (
    "The linear probe uses no learning rate: it fits the head to convergence with L-BFGS and "
    "picks its L2 strength by cross-validation, so there is nothing to find; the finder is for "
    "methods that train backbone layers (last-N, full, LoRA)."
)


class _FinderContext:
    """The part of a Trainer the pipelines read: config, model, data, placement, events."""

    def __init__(
        self,
        config: RunConfig,
        workspace: str | Path | None,
        on_event: Callable[[Event], Any] | None,
        task: Task,
    ) -> None:
        self.config = config
        self.workspace = Workspace(workspace)
        self.on_event = on_event
        self.task = task  # the name the training pipelines read (engine/training/context.py)
        self.model: Any = None
        self.data: Any = None
        self.placement: Any = None
        self.channels_last = False
        self.max_length = 0
        self.workers = 0  # set by load_context
        self.started_at = 0.0  # `refit advise`: when the advice began (its time budget)
        # One process: the pipelines ask who this process is among several (engine/distributed).
        from engine.distributed import SINGLE

        self.dist = SINGLE

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def log(self, text: str, level: str = "info") -> None:
        self.emit(LogMessage(level=level, text=text))


def find_learning_rate(
    config: RunConfig,
    *,
    workspace: str | Path | None = None,
    on_event: Callable[[Event], Any] | None = None,
    task: Task | None = None,
    on_point: Callable[[float, float], Any] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
) -> LrCurve:
    """Run the range test on ``config``'s training split with its model, method and augmentation.

    Nothing is written (no run folder; the dataset is only read). A linear probe (a frozen
    backbone) is not tested: the returned curve is empty and its ``reason`` says why. Emits
    StageProgressed("scan", "lr_find") and LogMessage events; raises Cancelled on cancel.
    """
    config.validate()
    if Method(config.adapt.method) is Method.LINEAR_PROBE:
        return LrCurve(reason=PROBE_REASON)
    ctx = _FinderContext(config, workspace, on_event, task or Task())
    model = _prepare(ctx)
    if model is None:
        return LrCurve(reason=PROBE_REASON)
    pipeline = _pipeline(ctx)
    epochs = itertools.count()

    def batches() -> Any:
        # Each pass over the training set is a new epoch: new order, new augmentation.
        return pipeline.train_batches(next(epochs), 0)

    def forward(x: Any) -> torch.Tensor:
        with ctx.placement.autocast():
            return pipeline.forward(x)

    def point(lr: float, loss: float) -> None:
        ctx.emit(StageProgressed(stage="lr_find", done=len(points) + 1, total=steps))
        points.append((lr, loss))
        if on_point is not None:
            on_point(lr, loss)

    from engine.training.optim import build_optimizer, param_groups

    points: list[tuple[float, float]] = []
    curve = lr_range_test(
        model,
        batches,
        forward,
        _criterion(ctx),
        groups=param_groups(model, model.head, config.optim),
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        task=ctx.task,
        on_point=point,
        make_optimizer=lambda groups: build_optimizer(groups, config.optim),
        grad_clip=config.optim.grad_clip,
    )
    return curve


def load_context(ctx: _FinderContext) -> Any:
    """Seed, device, the scanned and split data, and the model of ``ctx.config`` (its image
    intensity resolved, nothing frozen yet); what a run's set-up does before it trains."""
    from engine.data.intensity import resolve_intensity
    from engine.models import build_model, resolve_entry
    from engine.training.devices import resolve_placement
    from engine.training.inputs import prepare_data
    from engine.training.loaders import auto_workers
    from engine.training.setup import check_modality

    cfg = ctx.config
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    ctx.placement = resolve_placement(cfg.device)
    ctx.workers = auto_workers(cfg.data.num_workers)

    def progress(done: int, total: int) -> None:
        ctx.emit(StageProgressed(stage="scan", done=done, total=total))

    ctx.data = prepare_data(cfg, task=ctx.task.stage(0.0, 1.0, lambda p: progress(p.done, p.total)))
    if ctx.task.cancelled:
        raise Cancelled()
    for problem in ctx.data.problems:
        ctx.log(problem.message, level="warning")
    check_modality(resolve_entry(cfg.model.backbone), ctx.data)
    model = build_model(cfg.model, len(ctx.data.classes))
    if modality_of(model).has_intensity:
        intensity = resolve_intensity(str(cfg.data.intensity), ctx.data.intensity)
        model.preprocess = dataclasses.replace(model.preprocess, intensity=intensity)
    ctx.channels_last = cfg.device.channels_last and model.entry.is_convnet
    return model


def _prepare(ctx: _FinderContext) -> Any:
    """Scan and split the data, build and adapt the model; None when the backbone is frozen."""
    from engine.models import adapt_model, backbone_is_frozen

    cfg = ctx.config
    model = load_context(ctx)
    _frozen, count = adapt_model(model, cfg.adapt)
    if count.trainable == 0:
        raise ValueError("Every layer is frozen, so nothing would train; unfreeze the head.")
    if backbone_is_frozen(model):
        return None
    ctx.max_length = modality_of(model).token_limit(model, cfg.data.max_length)
    model.to(ctx.placement.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)
    ctx.model = model
    ctx.log(
        f"Learning-rate range test on {len(ctx.data.train)} training {modality_of(ctx.data).noun} "
        f"({ctx.placement.description}), training {count.trainable:,} of {count.total:,} "
        "parameters; the model's weights are left as they were."
    )
    return model


def _pipeline(ctx: _FinderContext) -> Any:
    # the pipeline that trains through the network (the finder's context stands in for a run's)
    pipeline: Any = modality_of(ctx.model).pipeline(False)(ctx)
    pipeline.prepare()
    return pipeline


def _criterion(ctx: _FinderContext) -> nn.Module:
    from engine.training.inputs import class_weight_tensor

    weights = class_weight_tensor(ctx.data, ctx.config.optim.class_weights)
    return nn.CrossEntropyLoss(
        weight=weights.to(ctx.placement.device) if weights is not None else None,
        label_smoothing=ctx.config.optim.label_smoothing,
    )
