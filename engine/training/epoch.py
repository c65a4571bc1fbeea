"""One epoch of the loop: its training steps, then its validation metrics and best epoch."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from engine.events import StepEnded
from engine.task import Cancelled
from engine.training.context import RunContext
from engine.training.devices import Placement
from engine.training.honesty import run_warnings
from engine.training.metrics import classification_metrics
from engine.training.oom import accumulate_gradients
from engine.training.pipeline import Pipeline


@dataclass(frozen=True)
class _Step:
    """What oom.accumulate_gradients runs a step with."""

    optimizer: torch.optim.Optimizer
    criterion: nn.CrossEntropyLoss
    placement: Placement
    pipeline: Any
    scaler: torch.amp.GradScaler | None


def train_epoch(ctx: RunContext, pipeline: Pipeline, criterion: nn.CrossEntropyLoss) -> None:
    """The steps of the epoch under way (from ``ctx.loop.step_in_epoch`` on a resume), each
    emitting StepEnded; waits while paused and raises Cancelled between steps."""
    loop, optimization = ctx.loop, ctx.optimization
    optimizer, scaler = optimization.optimizer, optimization.scaler
    step = _Step(optimizer, criterion, ctx.placement, pipeline, scaler)
    ctx.model.train()
    total_steps = pipeline.steps_per_epoch * ctx.config.schedule.epochs
    clip = ctx.config.optim.grad_clip
    t_last = time.perf_counter()
    dist = ctx.dist
    for batch, failure in _batches(ctx, pipeline):
        if ctx.control is not None:  # under torchrun: rank 0's control file, on every rank
            ctx.control.apply(ctx.task)
            if ctx.task.cancelled:
                raise Cancelled()
        ctx.task.wait_while_paused()
        run_step = step
        if dist.active:  # DDP averages over ranks: weigh each rank's loss by its share
            local, total = _weights(ctx, criterion, batch, failure)
            share = local * dist.world / max(total, 1e-12)
            run_step = dataclasses.replace(step, criterion=cast(Any, _Shared(criterion, share)))
        assert batch is not None  # a batch that failed to load raised in _weights
        x, y = batch
        loss_value, correct = ctx.micro.run(
            len(y),
            functools.partial(accumulate_gradients, run_step, x, y),
            cleanup=lambda: optimizer.zero_grad(set_to_none=True),
        )
        n = len(y)
        if dist.active:  # the global batch's loss and counts, as a 1-process step sees them
            # (before the divergence check, so that every rank judges the same loss)
            weighted, correct, n_sum = dist.all_sum(
                [loss_value / max(share, 1e-12) * local, correct, n], ctx.placement.device
            )
            n, loss_value = int(n_sum), weighted / max(total, 1e-12)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if clip:
            nn.utils.clip_grad_norm_(ctx.model.parameters(), clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimization.scheduler.step()
        ctx.divergence.check_step(loss_value, loop.global_step + 1, optimization.lr)
        loop.train_sums["loss"] += loss_value * n
        loop.train_sums["correct"] += correct
        loop.train_sums["seen"] += n
        loop.global_step += 1
        loop.step_in_epoch += 1
        now = time.perf_counter()
        ctx.emit(
            StepEnded(
                step=loop.global_step,
                epoch=loop.epoch,
                total_steps=total_steps,
                loss=loss_value,
                lr=optimization.lr,
                samples_per_sec=n / max(now - t_last, 1e-9),
            )
        )
        t_last = now
        if ctx.task.cancelled:
            raise Cancelled()


def _batches(
    ctx: RunContext, pipeline: Pipeline
) -> Iterator[tuple[tuple[Any, torch.Tensor] | None, BaseException | None]]:
    """The epoch's batches as (batch, None). Under torchrun a batch that fails to load on this
    rank (a corrupt image, a failing augmentation) ends them with (None, the exception), so the
    step's all-reduce tells every rank; one process raises it at once."""
    batches = iter(pipeline.train_batches(ctx.loop.epoch, ctx.loop.step_in_epoch))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:
            if not ctx.dist.active:
                raise
            yield None, exc
            return
        yield batch, None


def _weights(
    ctx: RunContext, criterion: nn.CrossEntropyLoss, batch: Any, failure: BaseException | None
) -> tuple[float, float]:
    """This rank's batch weight and the global batch's, from one all-reduce that also says
    whether a rank failed to load its batch: then every rank raises that rank's sentence
    (ProcessFailed) instead of waiting for it."""
    local = _batch_weight(criterion, batch[1]) if batch is not None else 0.0
    flag = float(failure is not None)
    total, failed = ctx.dist.all_sum([local, flag], ctx.placement.device)
    sentence = ctx.rank_failure(failure) if failure is not None else ""
    ctx.dist.fail_together(failed, sentence, failure)
    return local, total


def _batch_weight(criterion: nn.CrossEntropyLoss, y: torch.Tensor) -> float:
    """What a batch's mean loss divides by: its rows, or the class weights of its rows."""
    weight = criterion.weight
    return float(weight[y].sum()) if weight is not None else float(len(y))


class _Shared(nn.Module):
    """The loss of one rank's rows scaled by ``share`` (its part of the global batch times the
    world size), so that DDP's average of the ranks' gradients is the global batch's."""

    def __init__(self, criterion: nn.CrossEntropyLoss, share: float) -> None:
        super().__init__()
        self.criterion = criterion
        self.weight = criterion.weight
        self.share = share

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, y) * self.share


def end_epoch(ctx: RunContext, pipeline: Pipeline) -> tuple[int, dict[str, float], bool]:
    """Validate the epoch just trained, check it for divergence, update the best epoch and move
    the loop to the next epoch. Returns the epoch's index, its metrics and whether it is best."""
    loop = ctx.loop
    logits, targets = pipeline.validation_logits()
    metrics = classification_metrics(logits, targets, ctx.data.classes)
    seen = max(1.0, loop.train_sums["seen"])
    metrics["train_loss"] = loop.train_sums["loss"] / seen
    metrics["train_accuracy"] = loop.train_sums["correct"] / seen
    metrics["lr"] = ctx.optimization.lr
    ctx.divergence.check_validation(metrics, loop.epoch, metrics["lr"])
    is_best = ctx.best.update(metrics, loop.epoch)
    if is_best:
        ctx.best.logits = logits
        data = ctx.data
        ctx.best.warnings = run_warnings(logits, targets, data.classes, data.modality)
    epoch = loop.epoch
    loop.end_epoch(metrics)
    return epoch, metrics, is_best
