"""Progress on the terminal: tqdm bars for long stages, a line per epoch, Ctrl+C that stops a
run after its step; what `refit train`, `resume`, `lr-find`, `advise` and `compare` show."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from engine.cli.reports import print_advice, saved_evaluation_lines
from engine.task import Progress as TaskProgress
from engine.task import ProgressCallback, Task

T = TypeVar("T")


STOP_AFTER_STEP = "Stopping after this step (Ctrl+C again to abort)…"


@contextlib.contextmanager
def cancel_on_sigint(
    message: str = STOP_AFTER_STEP, on_progress: ProgressCallback | None = None
) -> Iterator[Task]:
    """A Task that the first Ctrl+C cancels (saying ``message``); a second one aborts."""
    task = Task(on_progress)

    def on_sigint(signum: int, frame: Any) -> None:
        if task.cancelled:
            raise KeyboardInterrupt
        print(f"\n{message}", file=sys.stderr)
        task.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield task
    finally:
        signal.signal(signal.SIGINT, previous)


def run_cancellable(
    job: Callable[[Callable[[Any], None], Task], T],
    *,
    quiet: bool,
    message: str = STOP_AFTER_STEP,
) -> T:
    """``job(on_event, task)`` with its events and the task's progress on the terminal (bars
    and lines, none when ``quiet``); the first Ctrl+C cancels the task (saying ``message``), a
    second one aborts. A job stopped by its task raises engine.task.Cancelled as usual."""
    view = TrainView(quiet)
    try:
        with cancel_on_sigint(message, view.on_progress) as task:
            return job(view.on_event, task)
    finally:
        view.close()


def run_with_progress(start: Any, *, quiet: bool) -> int:
    """Train (or resume) with :func:`run_cancellable`, then print the outcome."""
    result = run_cancellable(start, quiet=quiet)
    best = result.best_metrics
    if best:
        print(
            f"Best epoch {int(best['epoch']) + 1}: val_accuracy {best['val_accuracy']:.4f}, "
            f"val_loss {best['val_loss']:.4f}, val_macro_f1 {best['val_macro_f1']:.4f}"
        )
    for line in _data_lines(result):
        print(line)
    if getattr(result, "evaluation", ""):
        print("\n".join(saved_evaluation_lines(result.evaluation)))
    for warning in getattr(result, "warnings", ()):  # last: what the user must not miss
        print(f"Warning: {warning}")
    print(f"Run {result.status}: {result.run_dir}")
    return 0 if str(result.status) == "completed" else 1


def _data_lines(result: Any) -> list[str]:
    """What summary.json records about the data a reviewer asks for first: patients per split
    ("Split by patient: ...") and how many DICOM files declared themselves de-identified."""
    from engine.runs import RunDir
    from engine.training.patients import deidentified_sentence, patients_sentence

    run_dir = getattr(result, "run_dir", "")
    if not run_dir:
        return []
    try:
        summary = RunDir(Path(run_dir)).summary()
    except (OSError, ValueError):
        return []
    lines = []
    patients, dicom = summary.get("patients"), summary.get("dicom")
    if isinstance(patients, dict) and patients:
        lines.append(patients_sentence(patients))
    if isinstance(dicom, dict) and dicom:
        lines.append(deidentified_sentence(dicom))
    return lines


class Progress:
    """A tqdm bar driven by (done, total) callbacks; silent when quiet."""

    def __init__(self, desc: str, *, quiet: bool = False, unit: str = "file") -> None:
        self.desc, self.quiet, self.unit = desc, quiet, unit
        self.bar: Any = None  # a tqdm bar once there is progress to show

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def report(self, progress: TaskProgress) -> None:
        """An ``on_progress`` callback for an engine Task: the bar shows its counts."""
        self.update(progress.done, progress.total)

    def update(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=self.desc, unit=self.unit, leave=False, file=sys.stderr
            )
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TrainView:
    """Prints the run the way a person wants to read it: bars for long stages, a line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stage: Progress | None = None
        self.stage_name = ""

    def on_event(self, event: Any) -> None:
        from engine import events as ev
        from engine.modalities import modality_of

        if isinstance(event, ev.StageProgressed):
            labels = {"scan": "Scanning", "features": "Features", "tokenize": "Tokenizing"}
            labels["lr_find"] = "Range test"
            labels["advice"] = "Looking at your data"
            units = {"scan": "file", "tokenize": "text", "lr_find": "step"}
            unit = units.get(event.stage, "sample")
            stage = self._stage(event.stage, labels.get(event.stage, event.stage), unit)
            stage.update(event.done, event.total)
        elif isinstance(event, ev.StepEnded):
            stage = self._stage("train", "Training", "step")
            stage.update(event.step, event.total_steps)
            if stage.bar is not None:
                stage.bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
        elif isinstance(event, ev.RunStarted):
            self.close()
            share = event.trainable_params / max(1, event.total_params)
            share_text = f"{share:.2%}" if share >= 1e-4 else "under 0.01%"
            what = modality_of(event.modality).noun
            print(
                f"Run {event.run_id}: {len(event.classes)} classes, {event.train_size} train / "
                f"{event.val_size} val {what} on {event.device}; training "
                f"{event.trainable_params:,} of {event.total_params:,} parameters ({share_text})"
                + (" on cached features" if event.feature_cache else "")
            )
        elif isinstance(event, ev.EpochEnded):
            m = event.metrics
            self._write(
                f"epoch {event.epoch + 1}/{event.epochs}  train_loss {m['train_loss']:.4f}"
                f"  val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}"
                f"  val_f1 {m['val_macro_f1']:.4f}" + ("  *" if event.is_best else "")
            )
        elif isinstance(event, ev.AdviceGiven):
            self.close()
            if not self.quiet:
                print_advice(event.advice, recipe=False)
        elif isinstance(event, ev.LogMessage):
            prefix = "" if event.level == "info" else f"{event.level}: "
            self._write(prefix + event.text)

    def on_progress(self, progress: TaskProgress) -> None:
        """A Task's progress: a bar named by its message (a job's events have their own)."""
        if progress.total:
            self._stage("task", progress.message or "Working", "step").report(progress)

    def _stage(self, name: str, desc: str, unit: str) -> Progress:
        """The bar of stage ``name``; a new stage closes the bar of the one before."""
        if self.stage is None or name != self.stage_name:
            self.close()
            self.stage = Progress(desc, quiet=self.quiet, unit=unit)
            self.stage_name = name
        return self.stage

    def _write(self, text: str) -> None:
        if self.stage is not None and self.stage.bar is not None:
            self.stage.bar.write(text, file=sys.stdout)
        else:
            print(text)

    def close(self) -> None:
        if self.stage is not None:
            self.stage.close()
        self.stage, self.stage_name = None, ""
