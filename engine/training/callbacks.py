"""Ordered callbacks that react to engine events: the metrics file and early stopping (the
checkpoints' callback is engine/training/checkpointing.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from engine.events import (
    CheckpointSaved,
    EpochEnded,
    Event,
    LogMessage,
    RunEnded,
    RunStarted,
    StepEnded,
)
from engine.runs.metrics import epoch_record, step_record
from engine.training.context import RunContext


class Callback:
    """Base class: override the ``on_<event>`` methods you need. Lower ``order`` runs first.

    Each method gets the event and the run's :class:`RunContext` (its config, folder, model,
    loop position and best epoch)."""

    order: int = 50

    def on_run_started(self, event: RunStarted, ctx: RunContext) -> None: ...
    def on_step_ended(self, event: StepEnded, ctx: RunContext) -> None: ...
    def on_epoch_ended(self, event: EpochEnded, ctx: RunContext) -> None: ...
    def on_checkpoint_saved(self, event: CheckpointSaved, ctx: RunContext) -> None: ...
    def on_log_message(self, event: LogMessage, ctx: RunContext) -> None: ...
    def on_run_ended(self, event: RunEnded, ctx: RunContext) -> None: ...
    def on_event(self, event: Event, ctx: RunContext) -> None:
        """Called for every event, after the specific method."""


class EventFunction(Callback):
    """Forward every event to a plain function (the GUI bridge, the CLI's progress bar)."""

    order = 90

    def __init__(self, fn: Callable[[Event], Any]) -> None:
        self.fn = fn

    def on_event(self, event: Event, ctx: RunContext) -> None:
        self.fn(event)


def handler_name(event: Event) -> str:
    """``StepEnded`` -> ``on_step_ended``."""
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()


def dispatch(callbacks: Iterable[Callback], event: Event, ctx: RunContext) -> None:
    name = handler_name(event)
    for cb in callbacks:
        method = getattr(cb, name, None)
        if method is not None:
            method(event, ctx)
        cb.on_event(event, ctx)


class MetricsWriter(Callback):
    """Appends one JSON line per step and per epoch to metrics.jsonl (buffered ~1 s)."""

    order = 0

    def __init__(self, flush_seconds: float = 1.0) -> None:
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def on_step_ended(self, event: StepEnded, ctx: RunContext) -> None:
        self._buffer.append(
            step_record(
                step=event.step,
                epoch=event.epoch,
                loss=event.loss,
                lr=event.lr,
                samples_per_sec=event.samples_per_sec,
            )
        )
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush(ctx)

    def on_epoch_ended(self, event: EpochEnded, ctx: RunContext) -> None:
        self._buffer.append(
            epoch_record(
                epoch=event.epoch,
                step=ctx.loop.global_step,
                seconds=event.seconds,
                is_best=event.is_best,
                metrics=event.metrics,
            )
        )
        self.flush(ctx)

    def on_run_ended(self, event: RunEnded, ctx: RunContext) -> None:
        try:
            self.flush(ctx)
        except OSError:
            # A full disk at the very end: the steps of the last second are lost, but the
            # callbacks after this one (the app's bridge) must still hear that the run ended.
            self._buffer.clear()

    def resume(self, ctx: RunContext) -> None:
        """A resumed run: drop the lines written after its checkpoint (a crash), which the
        resumed run would write again."""
        ctx.run.keep_metrics_until(ctx.loop.global_step, ctx.loop.epoch)

    def flush(self, ctx: RunContext) -> None:
        ctx.run.append_metrics(*self._buffer)
        self._buffer.clear()
        self._last_flush = time.monotonic()


class EarlyStopping(Callback):
    """Asks the trainer to stop after ``patience`` epochs without a new best."""

    order = 20

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_ended(self, event: EpochEnded, ctx: RunContext) -> None:
        if self.patience and ctx.best.epochs_since >= self.patience:
            ctx.request_stop(
                f"Early stopping: no improvement of {ctx.config.schedule.monitor} "
                f"for {self.patience} epochs."
            )
