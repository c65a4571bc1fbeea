"""Worker jobs that train or resume a run (EngineWorker jobs: an event stream and the Task that
stops them); torch is imported in the worker thread, not here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop.widgets.run_history import HistoryLoaded, RunHistory
from desktop.worker import Job
from engine import Event, RunConfig, RunStarted, Task


def train_job(config: RunConfig, workspace: Path) -> Job:
    """A worker job that trains ``config``."""

    def job(on_event: Callable[[Event], None], task: Task) -> Any:
        from engine import train

        return train(config, workspace=workspace, on_event=on_event, task=task)

    return job


def resume_job(run_dir: str, workspace: Path) -> Job:
    """A worker job that continues a stopped run; its earlier curves are sent first."""

    def job(on_event: Callable[[Event], None], task: Task) -> Any:
        from engine import RunDir, resume

        def forward(event: Event) -> None:
            if isinstance(event, RunStarted):  # metrics.jsonl is trimmed to the checkpoint now
                records = RunDir(Path(event.run_dir)).metrics()
                on_event(HistoryLoaded(RunHistory.from_records(records)))  # type: ignore[arg-type]
            on_event(event)

        return resume(run_dir, workspace=workspace, on_event=forward, task=task)

    return job
