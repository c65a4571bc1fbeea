"""The one-cycle schedule's rise (issue 11: the full fine-tune vs a plain loop)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.config import Schedule, ScheduleConfig
from engine.training.optim import ONE_CYCLE_RISE, build_scheduler


def _lrs(warmup_fraction: float, steps: int = 100) -> list[float]:
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    cfg = ScheduleConfig(schedule=Schedule.ONE_CYCLE, warmup_fraction=warmup_fraction)
    sched = build_scheduler(opt, cfg, steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_one_cycle_rises_for_at_least_thirty_percent_with_the_default_warm_up():
    lrs = _lrs(ScheduleConfig().warmup_fraction)  # 0.05, the cosine schedule's warm-up
    peak = lrs.index(max(lrs))
    # Before the fix the peak came at step 5 of 100: the full rate within five steps.
    assert peak >= 29
    assert lrs[10] < 0.5 * max(lrs)
    assert max(lrs) == pytest.approx(1e-3, rel=1e-3)


def test_one_cycle_keeps_a_longer_warm_up_when_asked_for():
    lrs = _lrs(0.45)
    assert lrs.index(max(lrs)) >= 44
    assert ONE_CYCLE_RISE < 0.45
