"""What a run leaves when it ends: summary.json, then state.json, each written best effort."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.events import RunStatus
from engine.training.checkpoint_files import has_last_checkpoint

if TYPE_CHECKING:
    from engine.training.trainer import Trainer


def write_outcome(trainer: Trainer, status: RunStatus, error: str) -> tuple[RunStatus, str]:
    """Write summary.json and state.json; a write that fails makes the run failed (and says so).

    When state.json cannot be written either it still says "running", and the run list infers
    "interrupted" from the run's dead owner; the checkpoint before is intact, so it resumes.
    """
    for write in (_write_summary, _write_state):
        try:
            write(trainer, status, error)
        except OSError as exc:
            sentence = trainer.failure_sentence(exc)
            if status is not RunStatus.FAILED:
                status, error = RunStatus.FAILED, sentence
            trainer.log(sentence, level="error")
    return status, error


def _write_summary(trainer: Trainer, status: RunStatus, error: str) -> None:
    summary: dict[str, Any] = {
        "status": str(status),
        "error": error,
        "stop_reason": trainer._stop_reason,
        "best_epoch": trainer.best_epoch,
        "best": trainer.best_metrics,
        "last": trainer.last_metrics,
        "epochs_done": trainer.epoch,
        "global_step": trainer.global_step,
        "seconds": round(time.monotonic() - trainer.started_at, 2),
        "warnings": list(trainer.best_warnings),
    }
    data = trainer.data
    if data is not None:
        summary.update(
            classes=list(data.classes),
            train_size=len(data.train),
            val_size=len(data.val),
            test_size=len(data.test),
        )
        if data.modality == "image":
            summary["intensity"] = trainer.intensity
    run = trainer.run
    run.write_summary(summary)


def _write_state(trainer: Trainer, status: RunStatus, error: str) -> None:
    resumable = status in (RunStatus.CANCELLED, RunStatus.FAILED) and has_last_checkpoint(
        trainer.run.checkpoints
    )
    trainer.run.update_state(
        status=str(status),
        error=error,
        resumable=resumable,
        epochs_done=trainer.epoch,
        ended=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
