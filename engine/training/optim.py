"""Optimisers and learning-rate schedules, built from names in the RunConfig."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.config import OptimConfig, Optimizer, Schedule, ScheduleConfig

# Shortest rise of the one-cycle schedule, as a share of all steps: torch's default. The 5 %
# warm-up meant for cosine took a full fine-tune (AdamW, 96 steps) to its peak rate within five
# steps, which knocked the pretrained features off in the first epoch (issue 11; see the
# "full fine-tune vs a plain loop" section of docs/benchmarks.md).
ONE_CYCLE_RISE = 0.3


def param_groups(model: nn.Module, head: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Head at the full learning rate, unfrozen backbone layers scaled; no decay on norms/biases."""
    head_ids = {id(p) for p in head.parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = id(p) in head_ids
        no_decay = p.ndim <= 1 or name.endswith(".bias")
        groups.setdefault((is_head, no_decay), []).append(p)
    out = []
    for (is_head, no_decay), params in sorted(groups.items()):
        scale = 1.0 if is_head else cfg.backbone_lr_scale
        out.append(
            {
                "params": params,
                "lr": cfg.lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            }
        )
    return out


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.optimizer is Optimizer.SGD:
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Warm-up then cosine decay, one-cycle, or warm-up then constant; stepped once per step.

    One-cycle rises for ``warmup_fraction`` of the steps, but at least ONE_CYCLE_RISE."""
    total_steps = max(1, total_steps)
    if cfg.schedule is Schedule.ONE_CYCLE:
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        pct = max(cfg.warmup_fraction, ONE_CYCLE_RISE)
        if abs(pct * (total_steps + 1) - 1) < 1e-9:
            pct += 1e-3  # OneCycleLR divides by zero when its warm-up ends on step 0 exactly
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lrs,
            total_steps=total_steps + 1,
            pct_start=pct,
            anneal_strategy="cos",
            cycle_momentum=False,
        )
    warmup = round(cfg.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule is Schedule.CONSTANT:
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
