"""What a resumable checkpoint holds besides the weights, and what resuming may touch."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from engine.runs import RunDir
from engine.training.checkpoint import (
    load_trainer_state,
    load_weights,
    read_weights,
    rng_state,
    set_rng_state,
)
from engine.training.checkpoint_files import BEST, CheckpointError, last_checkpoint

if TYPE_CHECKING:
    from engine.training.trainer import Trainer

_POSITION = (
    "epoch",
    "step_in_epoch",
    "global_step",
    "best_value",
    "best_loss",
    "best_epoch",
    "best_metrics",
    "last_metrics",
    "epochs_since_best",
    "train_sums",
)


def check_resumable(run: RunDir) -> None:
    """Refuse, before any file is touched, a run that resuming cannot continue."""
    status = run.state().get("status") or run.summary().get("status")
    if status == "completed":
        raise CheckpointError(
            f"The run {run.run_id} already completed; there is nothing to resume. To train "
            f"longer, start a new run from its config (refit train {run.config_path})."
        )
    if status == "diverged":
        raise CheckpointError(
            f"The run {run.run_id} diverged, and resuming would repeat it; start a new run from "
            f"its config with a lower learning rate (refit train {run.config_path} --lr ...)."
        )


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """Optimizer, scheduler, scaler, RNG and loop position: plain tensors and numbers only."""
    state = {
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else {},
        "rng": rng_state(),
        "divergence": trainer.divergence.state_dict(),
    }
    for key in _POSITION:
        value = getattr(trainer, key)
        state[key] = dict(value) if isinstance(value, dict) else value
    state["best_warnings"] = list(trainer.best_warnings)
    state["micro_batch"] = trainer.micro.size  # 0: whole batches; else the out-of-memory split
    return state


def restore(trainer: Trainer) -> None:
    """Load the newest complete checkpoint into ``trainer`` (reading only; no file of the run
    changes); raise CheckpointError if there is none or it is damaged."""
    run = trainer.run
    skipped: list[str] = []
    last = last_checkpoint(run.checkpoints, skipped)
    if last is None:
        raise CheckpointError(
            f"The run {run.run_id} has no resumable checkpoint (it stopped before its first "
            "checkpoint was saved); start a new run from its config."
        )
    state = load_trainer_state(last.state)
    advice = "the run cannot be resumed, start a new run from its config"
    load_weights(trainer.model, last.weights, advice)
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        if trainer.scaler is not None and state["scaler"]:
            trainer.scaler.load_state_dict(state["scaler"])
        position = {key: state[key] for key in _POSITION}
        # Checkpoints from before honest warnings have none: the next best epoch sets them.
        position["best_warnings"] = [str(w) for w in state.get("best_warnings", [])]
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"The checkpoint {last.state} does not fit this run ({type(exc).__name__}: {exc}); "
            f"{advice}."
        ) from exc
    for key, value in position.items():
        setattr(trainer, key, value)
    trainer.divergence.load_state_dict(state.get("divergence"))
    _restore_micro_batch(trainer, state)
    set_rng_state(state["rng"])
    for problem in skipped:
        trainer.log(f"Skipped a damaged checkpoint ({problem}).", level="warning")
    _restore_best(trainer)


def _restore_micro_batch(trainer: Trainer, state: dict[str, Any]) -> None:
    """Start at the smallest micro-batch the run needed: the checkpoint's, or state.json's when
    an out-of-memory came after the checkpoint."""
    sizes = [state.get("micro_batch"), trainer.run.state().get("micro_batch")]
    sizes = [int(s) for s in sizes if isinstance(s, int | float) and s > 0]
    if not sizes:
        return
    trainer.micro.size = min(sizes)
    trainer.log(
        f"Continuing with micro-batches of {trainer.micro.size} (this run ran out of memory "
        f"with batch {trainer.config.schedule.batch_size} before)."
    )


def _restore_best(trainer: Trainer) -> None:
    """Check the best weights the state refers to; when they are missing or damaged, say so
    and let the next epoch become the best, so that best.safetensors is written again."""
    best = trainer.run.checkpoints / BEST
    if trainer.best_value is None:
        return
    problem = "" if best.is_file() else f"{best} is missing"
    if not problem:
        try:
            tensors = read_weights(trainer.model, best)
        except CheckpointError as exc:
            problem = str(exc).split(";")[0]
        else:
            if trainer.feature_cache:
                device = trainer.placement.device
                # The in-memory best of a cached-feature run is its head's state.
                trainer._best_snapshot = {
                    k.removeprefix("head."): v.to(device)
                    for k, v in tensors.items()
                    if k.startswith("head.")
                }
            return
    trainer.log(
        f"{problem.rstrip('.')}; the best weights of epoch {trainer.best_epoch + 1} are lost, so "
        "the next epoch's weights become the best checkpoint.",
        level="warning",
    )
    trainer.best_value, trainer.best_loss, trainer.best_epoch = None, None, -1
    trainer.best_metrics, trainer.epochs_since_best = {}, 0


def record_resume_error(run: RunDir, error: str) -> None:
    """Note a failed resume beside the run's status, which stays what the run achieved."""
    # On a full or read-only disk this note is lost; the exception still reaches the user.
    with contextlib.suppress(OSError):
        run.update_state(
            last_resume_error=error, last_resume_failed=time.strftime("%Y-%m-%dT%H:%M:%S")
        )
