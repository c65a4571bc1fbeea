"""Ordered callbacks that react to engine events: metrics file, checkpoints, early stopping."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from engine.training.trainer import Trainer


class Callback:
    """Base class: override the ``on_<event>`` methods you need. Lower ``order`` runs first."""

    order: int = 50

    def on_run_started(self, event: RunStarted, trainer: Trainer) -> None: ...
    def on_step_ended(self, event: StepEnded, trainer: Trainer) -> None: ...
    def on_epoch_ended(self, event: EpochEnded, trainer: Trainer) -> None: ...
    def on_checkpoint_saved(self, event: CheckpointSaved, trainer: Trainer) -> None: ...
    def on_log_message(self, event: LogMessage, trainer: Trainer) -> None: ...
    def on_run_ended(self, event: RunEnded, trainer: Trainer) -> None: ...
    def on_event(self, event: Event, trainer: Trainer) -> None:
        """Called for every event, after the specific method."""


class EventFunction(Callback):
    """Forward every event to a plain function (the GUI bridge, the CLI's progress bar)."""

    order = 90

    def __init__(self, fn: Callable[[Event], Any]) -> None:
        self.fn = fn

    def on_event(self, event: Event, trainer: Trainer) -> None:
        self.fn(event)


def handler_name(event: Event) -> str:
    """``StepEnded`` -> ``on_step_ended``."""
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()


def dispatch(callbacks: Iterable[Callback], event: Event, trainer: Trainer) -> None:
    name = handler_name(event)
    for cb in callbacks:
        method = getattr(cb, name, None)
        if method is not None:
            method(event, trainer)
        cb.on_event(event, trainer)


class MetricsWriter(Callback):
    """Appends one JSON line per step and per epoch to metrics.jsonl (buffered ~1 s)."""

    order = 0

    def __init__(self, flush_seconds: float = 1.0) -> None:
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def on_step_ended(self, event: StepEnded, trainer: Trainer) -> None:
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
            self.flush(trainer)

    def on_epoch_ended(self, event: EpochEnded, trainer: Trainer) -> None:
        self._buffer.append(
            epoch_record(
                epoch=event.epoch,
                step=trainer.global_step,
                seconds=event.seconds,
                is_best=event.is_best,
                metrics=event.metrics,
            )
        )
        self.flush(trainer)

    def on_run_ended(self, event: RunEnded, trainer: Trainer) -> None:
        try:
            self.flush(trainer)
        except OSError:
            # A full disk at the very end: the steps of the last second are lost, but the
            # callbacks after this one (the app's bridge) must still hear that the run ended.
            self._buffer.clear()

    def flush(self, trainer: Trainer) -> None:
        trainer.run.append_metrics(*self._buffer)
        self._buffer.clear()
        self._last_flush = time.monotonic()


class Checkpointer(Callback):
    """Saves the best weights when the monitored metric improves, and the last state every epoch."""

    order = 10

    def on_epoch_ended(self, event: EpochEnded, trainer: Trainer) -> None:
        if event.is_best:
            trainer.save_checkpoint("best")
        trainer.save_checkpoint("last")


class EarlyStopping(Callback):
    """Asks the trainer to stop after ``patience`` epochs without a new best."""

    order = 20

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_ended(self, event: EpochEnded, trainer: Trainer) -> None:
        if self.patience and trainer.epochs_since_best >= self.patience:
            trainer.request_stop(
                f"Early stopping: no improvement of {trainer.config.schedule.monitor} "
                f"for {self.patience} epochs."
            )
