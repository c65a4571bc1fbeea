"""The time budget: a run stops before an epoch that would end past schedule.time_budget_min."""

from __future__ import annotations

import time

from engine.training.context import RunContext


def check_budget(ctx: RunContext, epoch_seconds: float) -> None:
    """Ask the run to stop when one more epoch like the last would end past the budget."""
    schedule = ctx.config.schedule
    budget = schedule.time_budget_min * 60
    if not budget or ctx.loop.epoch >= schedule.epochs:
        return
    if time.monotonic() - ctx.started_at + epoch_seconds > budget:
        ctx.request_stop(
            f"Time budget of {schedule.time_budget_min:g} min reached: stopped "
            f"after epoch {ctx.loop.epoch} of {schedule.epochs}; the best epoch is "
            "kept."
        )
