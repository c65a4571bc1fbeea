"""The training loop: one RunConfig in, a run folder with metrics and checkpoints out.

The Trainer sets a run up (engine/training/setup.py), runs its epochs and ends it; what the
run's parts share lives in a RunContext (context.py), the checkpoints in a callback
(checkpointing.py), resuming in resume_state.py and the files a run leaves in outcome.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from engine.config import RunConfig
from engine.distributed import SINGLE, Control, Dist
from engine.events import EpochEnded, Event, RunEnded, RunStatus
from engine.runs import RunDir, Workspace
from engine.task import Cancelled, Task
from engine.training import setup
from engine.training.budget import check_budget
from engine.training.callbacks import (
    Callback,
    EarlyStopping,
    EventFunction,
    MetricsWriter,
    dispatch,
)
from engine.training.checkpointing import Checkpointer
from engine.training.context import RunContext
from engine.training.devices import resolve_placement
from engine.training.divergence import Diverged, DivergenceGuard
from engine.training.epoch import end_epoch, train_epoch
from engine.training.oom import MicroBatcher, shrink_sentence
from engine.training.outcome import save_evaluation, write_outcome
from engine.training.pipeline import FeaturePipeline, Pipeline
from engine.training.probe import ProbeFit
from engine.training.provenance import StorageError, error_sentence
from engine.training.resume_state import check_resumable, record_resume_error, restore


@dataclass(frozen=True)
class RunResult:
    """How a run ended and where it lives."""

    run_dir: Path
    status: RunStatus
    best_metrics: dict[str, float]
    error: str = ""
    warnings: tuple[str, ...] = ()  # the model learned nothing useful, and what to try
    evaluation: str = ""  # evaluation/val.json saved from the best epoch's predictions


def train(
    config: RunConfig,
    *,
    workspace: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    on_event: Callable[[Event], Any] | None = None,
    task: Task | None = None,
) -> RunResult:
    """Start a new run of ``config`` in ``workspace``."""
    config.validate()
    run = Workspace(workspace).create_run(config)
    with run.lock():
        trainer = Trainer(config, run, Workspace(workspace), callbacks, on_event, task)
        return trainer.fit()


def resume(
    ref: str | Path,
    *,
    workspace: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    on_event: Callable[[Event], Any] | None = None,
    task: Task | None = None,
) -> RunResult:
    """Continue a stopped run from its last checkpoint, with the same split and config.

    A completed or diverged run is refused before any file is touched, and so is a run that
    another process trains (RunBusyError) or whose files are damaged (RunFileError); a resume
    that fails before training starts leaves the run's status and results as they were.
    """
    ws = Workspace(workspace)
    run = ws.open_run(ref)
    with run.lock():
        config = run.intact_config()  # a damaged file stops here, with the run untouched
        check_resumable(run)
        trainer = Trainer(config, run, ws, callbacks, on_event, task, resuming=True)
        return trainer.fit()


class Trainer:
    """Runs one RunConfig; emits events to ordered callbacks; checks pause/cancel every step."""

    pipeline: Pipeline
    criterion: nn.CrossEntropyLoss

    def __init__(
        self,
        config: RunConfig,
        run: RunDir,
        workspace: Workspace,
        callbacks: Iterable[Callback] = (),
        on_event: Callable[[Event], Any] | None = None,
        task: Task | None = None,
        *,
        resuming: bool = False,
        dist: Dist = SINGLE,
        control: Control | None = None,
    ) -> None:
        self.metrics_writer, self.checkpointer = MetricsWriter(), Checkpointer()
        stock: list[Callback] = [self.metrics_writer, self.checkpointer]
        if config.schedule.early_stopping_patience:
            stock.append(EarlyStopping(config.schedule.early_stopping_patience))
        extra = [EventFunction(on_event)] if on_event else []
        if not dist.is_main:  # several processes: rank 0 alone writes files and emits events
            stock.remove(self.metrics_writer)
            callbacks, extra = (), []
        self.callbacks = sorted([*stock, *callbacks, *extra], key=lambda c: c.order)
        task = task or Task()
        self.ctx = RunContext(config, run, workspace, task, resuming=resuming, sink=self._dispatch)
        self.ctx.dist, self.ctx.control = dist, control
        self.evaluation_file = ""

    def _dispatch(self, event: Event, ctx: RunContext) -> None:
        dispatch(self.callbacks, event, ctx)

    # -- the run ------------------------------------------------------------------------------

    def fit(self) -> RunResult:
        ctx = self.ctx
        status, error = RunStatus.COMPLETED, ""
        started = False
        try:
            self._setup()
            ctx.emit(setup.run_started(ctx, self.pipeline, self.param_count))
            started = True
            self._loop()
            if ctx.loop.stop_reason:
                ctx.log(ctx.loop.stop_reason)
        except Cancelled:
            status = RunStatus.CANCELLED
            ctx.log("Run stopped by the user; `refit resume` or Resume continues it.")
        except Diverged as exc:
            status, error = RunStatus.DIVERGED, exc.sentence(ctx.best.epoch)
            ctx.log(error, level="error")
        except KeyboardInterrupt:
            self._abort()
            raise
        except BaseException as exc:
            error = ctx.failure_sentence(exc)
            if ctx.resuming and not ctx.touched_files:
                record_resume_error(ctx.run, error)
                ctx.emit(RunEnded(status=RunStatus.FAILED, error=error, run_dir=str(ctx.run.path)))
            else:
                self._finish(RunStatus.FAILED, error, started)
            if isinstance(exc, OSError) and error != error_sentence(exc):
                raise StorageError(exc.errno, error) from exc
            raise
        try:
            status, error = self._finish(status, error, started)
        except KeyboardInterrupt:  # a second Ctrl+C while the run writes its end
            self._abort()
            raise
        best = ctx.best
        return RunResult(
            ctx.run.path,
            status,
            dict(best.metrics),
            error,
            tuple(best.warnings),
            self.evaluation_file,
        )

    def _abort(self) -> None:
        """A second Ctrl+C: stop at once. The step under way may be half done, so no checkpoint
        is written; the run is cancelled and resumes from its last committed checkpoint."""
        ctx = self.ctx
        if ctx.resuming and not ctx.touched_files:
            return
        sentence = "Run aborted (Ctrl+C twice); it resumes from its last saved checkpoint."
        self.checkpointer.finishing = True
        status, error = write_outcome(ctx, RunStatus.CANCELLED, "")
        ctx.log(sentence if status is RunStatus.CANCELLED else error, level="warning")
        ctx.emit(RunEnded(status=status, error=error, run_dir=str(ctx.run.path)))

    def _finish(self, status: RunStatus, error: str, started: bool) -> tuple[RunStatus, str]:
        """Write the final checkpoints, summary and state; a failing disk makes the run failed
        (and resumable from its previous checkpoint) instead of leaving it "running"."""
        ctx = self.ctx
        self.checkpointer.finishing = True
        if started and ctx.has_model and status is not RunStatus.FAILED:
            try:
                self.checkpointer.finish(ctx, status)
            except Diverged as exc:
                status, error = RunStatus.DIVERGED, exc.sentence(ctx.best.epoch)
                ctx.log(error, level="error")
            except Exception as exc:
                status, error = RunStatus.FAILED, ctx.failure_sentence(exc)
                ctx.log(error, level="error")
        if status in (RunStatus.FAILED, RunStatus.DIVERGED):
            ctx.best.warnings = []
        # A diverged run keeps the best checkpoint of an epoch before it broke: evaluated too.
        ended = (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.DIVERGED)
        if status in ended and ctx.dist.is_main:
            self.evaluation_file = save_evaluation(ctx)
        for warning in ctx.best.warnings:
            ctx.log(warning, level="warning")
        status, error = write_outcome(ctx, status, error)
        ctx.emit(
            RunEnded(
                status=status,
                error=error,
                best_metrics=dict(ctx.best.metrics),
                run_dir=str(ctx.run.path),
                warnings=tuple(ctx.best.warnings),
            )
        )
        return status, error

    def _setup(self) -> None:
        ctx = self.ctx
        setup.seed_everything(ctx.config)
        ctx.placement = resolve_placement(ctx.config.device)
        ctx.micro = MicroBatcher(ctx.placement.device, on_shrink=self._on_micro_shrink)
        ctx.data = setup.load_data(ctx)
        frozen, self.param_count = setup.build_run_model(ctx)
        self.criterion = setup.criterion(ctx)
        self.pipeline = ctx.pipeline = setup.choose_pipeline(ctx, frozen)
        ctx.optimization = setup.optimization(ctx, self.pipeline.steps_per_epoch)
        if ctx.dist.active:
            from engine.distributed.model import wrap_for_training

            wrap_for_training(ctx, self.pipeline)
        ctx.divergence = DivergenceGuard(len(ctx.data.classes))
        setup.log_memory_estimate(ctx)
        if ctx.resuming:
            # Everything that can fail on a moved dataset or a damaged checkpoint runs before
            # the first file of the run changes.
            restore(ctx, self.checkpointer)
            self.pipeline.prepare()
            ctx.touched_files = True
            self.metrics_writer.resume(ctx)
            ctx.log(f"Resuming at epoch {ctx.loop.epoch + 1}, step {ctx.loop.global_step}.")
        ctx.touched_files = True
        setup.mark_running(ctx, frozen, self.param_count)
        if not ctx.resuming:
            self.pipeline.prepare()
        ctx.advice_recording = None  # whatever the pipeline reused is its own now

    def _loop(self) -> None:
        ctx, loop = self.ctx, self.ctx.loop
        if isinstance(self.pipeline, FeaturePipeline):
            ProbeFit(ctx, self.pipeline, self.criterion.weight).run()
            return
        epochs = ctx.config.schedule.epochs
        while loop.epoch < epochs and not loop.stop_reason:
            t0 = time.monotonic()
            train_epoch(ctx, self.pipeline, self.criterion)
            epoch, metrics, is_best = end_epoch(ctx, self.pipeline)
            seconds = time.monotonic() - t0
            ctx.emit(
                EpochEnded(
                    epoch=epoch, epochs=epochs, metrics=metrics, is_best=is_best, seconds=seconds
                )
            )
            check_budget(ctx, seconds)

    def _on_micro_shrink(self, _rows: int, size: int) -> None:
        """A training step ran out of device memory: say so, and record the micro-batch so a
        resumed run starts at it."""
        batch = self.ctx.config.schedule.batch_size
        device = self.ctx.placement.device
        self.ctx.log(shrink_sentence(device, batch, size), level="warning")
        self.ctx.run.update_state(micro_batch=size)
