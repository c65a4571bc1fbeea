"""Resuming: which runs may resume, and loading the newest checkpoint into a run's parts."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from engine.runs import RunDir
from engine.training.checkpoint import (
    load_trainer_state,
    load_weights,
    read_weights,
    set_rng_state,
)
from engine.training.checkpoint_files import BEST, CheckpointError, last_checkpoint
from engine.training.checkpointing import Checkpointer
from engine.training.context import RunContext


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


def restore(ctx: RunContext, checkpointer: Checkpointer) -> None:
    """Load the newest complete checkpoint into the run's parts, each through its
    ``load_state_dict`` (reading only; no file of the run changes); raise CheckpointError if
    there is none or it is damaged."""
    run = ctx.run
    skipped: list[str] = []
    last = last_checkpoint(run.checkpoints, skipped)
    if last is None:
        raise CheckpointError(
            f"The run {run.run_id} has no resumable checkpoint (it stopped before its first "
            "checkpoint was saved); start a new run from its config."
        )
    state = load_trainer_state(last.state)
    advice = "the run cannot be resumed, start a new run from its config"
    load_weights(ctx.model, last.weights, advice)
    try:
        ctx.optimization.load_state_dict(state)
        ctx.loop.load_state_dict(state)
        ctx.best.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"The checkpoint {last.state} does not fit this run ({type(exc).__name__}: {exc}); "
            f"{advice}."
        ) from exc
    ctx.divergence.load_state_dict(state.get("divergence"))
    _restore_micro_batch(ctx, state)
    set_rng_state(state["rng"])
    for problem in skipped:
        ctx.log(f"Skipped a damaged checkpoint ({problem}).", level="warning")
    _restore_best(ctx, checkpointer)


def _restore_micro_batch(ctx: RunContext, state: dict[str, Any]) -> None:
    """Start at the smallest micro-batch the run needed: the checkpoint's, or state.json's when
    an out-of-memory came after the checkpoint."""
    found = [state.get("micro_batch"), ctx.run.state().get("micro_batch")]
    sizes = [int(s) for s in found if isinstance(s, int | float) and s > 0]
    if not sizes:
        return
    ctx.micro.size = min(sizes)
    ctx.log(
        f"Continuing with micro-batches of {ctx.micro.size} (this run ran out of memory "
        f"with batch {ctx.config.schedule.batch_size} before)."
    )


def _restore_best(ctx: RunContext, checkpointer: Checkpointer) -> None:
    """Check the best weights the state refers to; when they are missing or damaged, say so
    and let the next epoch become the best, so that best.safetensors is written again."""
    best = ctx.run.checkpoints / BEST
    if ctx.best.value is None:
        return
    problem = "" if best.is_file() else f"{best} is missing"
    if not problem:
        try:
            tensors = read_weights(ctx.model, best)
        except CheckpointError as exc:
            problem = str(exc).split(";")[0]
        else:
            checkpointer.load_best(ctx, tensors)
            return
    ctx.log(
        f"{problem.rstrip('.')}; the best weights of epoch {ctx.best.epoch + 1} are lost, so "
        "the next epoch's weights become the best checkpoint.",
        level="warning",
    )
    ctx.best.forget()


def record_resume_error(run: RunDir, error: str) -> None:
    """Note a failed resume beside the run's status, which stays what the run achieved."""
    # On a full or read-only disk this note is lost; the exception still reaches the user.
    with contextlib.suppress(OSError):
        run.update_state(
            last_resume_error=error, last_resume_failed=time.strftime("%Y-%m-%dT%H:%M:%S")
        )
