"""Worker jobs of the Layers page: the Recommended analysis and the learning-rate finder.

The engine is imported in the worker thread, not here, so that torch stays off the path to the
first window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop.worker import Job
from engine import Event, RunConfig, Task


@dataclass(frozen=True)
class LrPointFound:
    """One point of a running range test, sent through the worker's event batches."""

    lr: float
    loss: float


def advise_job(config: RunConfig, workspace: Path) -> Job:
    """A worker job that runs the Recommended analysis on ``config``; returns Advice.to_dict()."""

    def job(on_event: Callable[[Event], None], task: Task) -> dict:
        from engine import advise

        return advise(config, workspace=workspace, on_event=on_event, task=task).to_dict()

    return job


def lr_find_job(config: RunConfig, workspace: Path) -> Job:
    """A worker job that runs the range test on ``config``, streaming LrPointFound events;
    returns LrCurve.to_dict()."""

    def job(on_event: Callable[[Event], None], task: Task) -> dict:
        from engine import find_learning_rate

        def on_point(lr: float, loss: float) -> None:
            on_event(LrPointFound(float(lr), float(loss)))  # type: ignore[arg-type]

        curve = find_learning_rate(
            config, workspace=workspace, on_event=on_event, task=task, on_point=on_point
        )
        return curve.to_dict()

    return job
