"""Learning-rate range test (Leslie Smith): raise the rate exponentially, watch the loss, suggest.

The same procedure as fastai's ``lr_find`` and torch-lr-finder; not the torch-lr-finder package,
which pulls in matplotlib/tqdm and drives a DataLoader+model, while we run it on cached
activations too, with our cancel/pause and events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.task import Cancelled, Task

Batch = tuple[Any, torch.Tensor]
BatchSource = Callable[[], Iterable[Batch]] | Iterable[Batch]

SMOOTHING = 0.98  # fastai's beta for the exponential moving average of the loss
DIVERGENCE_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum

VALLEY_REASON = (
    "The middle of the longest stretch where the loss keeps falling (fastai's valley rule): "
    "fast learning, well below where the loss blows up."
)
FALLBACK_REASON = (
    "The loss curve has no clear falling stretch, so the suggestion is a tenth of the rate "
    "where the loss is lowest."
)
NO_POINTS_REASON = (
    "The loss was not a finite number even at the smallest rate, so there is no suggestion; "
    "check the labels and the images, or start the test at a lower rate."
)


@dataclass(frozen=True)
class LrCurve:
    """A range test's result: the head learning rates tried and their (smoothed) losses.

    ``lrs`` are head rates (config.optim.lr); other parameter groups moved at their own scale.
    ``suggestion`` is None when nothing usable was recorded or no rate applies (``reason`` says
    why in one sentence). ``diverged_at`` is the rate where the test stopped on divergence.
    """

    lrs: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()
    raw_losses: tuple[float, ...] = ()
    suggestion: float | None = None
    reason: str = ""
    start_lr: float = 0.0
    end_lr: float = 0.0
    steps: int = 0
    diverged_at: float | None = None

    @property
    def ran(self) -> bool:
        """False when the test was not run (a method without a learning rate)."""
        return bool(self.lrs)

    def table(self, rows: int = 10) -> list[tuple[float, float]]:
        """About ``rows`` (lr, smoothed loss) points spread evenly over the curve."""
        n = len(self.lrs)
        picks: Sequence[int]
        if n <= rows:
            picks = range(n)
        else:
            picks = sorted({round(i * (n - 1) / (rows - 1)) for i in range(rows)})
        return [(self.lrs[i], self.losses[i]) for i in picks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lrs": list(self.lrs),
            "losses": list(self.losses),
            "raw_losses": list(self.raw_losses),
            "suggestion": self.suggestion,
            "reason": self.reason,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "steps": self.steps,
            "diverged_at": self.diverged_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LrCurve:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown key in a learning-rate curve: {sorted(unknown)[0]}")

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            lrs=tuple(float(v) for v in data.get("lrs", ())),
            losses=tuple(float(v) for v in data.get("losses", ())),
            raw_losses=tuple(float(v) for v in data.get("raw_losses", ())),
            suggestion=opt("suggestion"),
            reason=str(data.get("reason", "")),
            start_lr=float(data.get("start_lr", 0.0)),
            end_lr=float(data.get("end_lr", 0.0)),
            steps=int(data.get("steps", 0)),
            diverged_at=opt("diverged_at"),
        )


def lr_range_test(
    model: nn.Module,
    batches: BatchSource,
    forward: Callable[[Any], torch.Tensor],
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    groups: list[dict],
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    task: Task | None = None,
    on_point: Callable[[float, float], Any] | None = None,
    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer] | None = None,
    grad_clip: float = 0.0,
) -> LrCurve:
    """Train ``model`` for up to ``steps`` steps at exponentially rising rates; return the curve.

    ``batches`` is a callable returning an iterable of (x, y) (called again when exhausted) or a
    re-iterable; ``forward(x)`` gives logits. ``groups`` are optimiser parameter groups (as
    engine.training.optim.param_groups builds them): each group's rate is the head rate times
    its ``lr_scale``. ``make_optimizer`` defaults to AdamW. Weights, buffers (BatchNorm
    statistics), gradients, requires_grad flags, train/eval modes and the RNG are restored
    afterwards, also on cancel (Cancelled) or error. ``on_point(lr, smoothed_loss)`` streams.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"The range test needs 0 < start_lr < end_lr, got {start_lr}, {end_lr}.")
    if steps < 2:
        raise ValueError(f"The range test needs at least 2 steps, got {steps}.")
    snapshot = _ModelState(model)
    try:
        lrs, smooth, raw, diverged = _run(
            model,
            batches,
            forward,
            criterion,
            groups=groups,
            rates=exponential_rates(start_lr, end_lr, steps),
            task=task,
            on_point=on_point,
            make_optimizer=make_optimizer or _adamw,
            grad_clip=grad_clip,
        )
    finally:
        snapshot.restore()
    suggestion, reason = suggest_lr(lrs, smooth)
    return LrCurve(
        lrs=tuple(lrs),
        losses=tuple(smooth),
        raw_losses=tuple(raw),
        suggestion=suggestion,
        reason=reason,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        diverged_at=diverged,
    )


def exponential_rates(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """``steps`` rates from ``start_lr`` to ``end_lr``, evenly spaced on a log scale."""
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def _run(
    model: nn.Module,
    batches: BatchSource,
    forward: Callable[[Any], torch.Tensor],
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    groups: list[dict],
    rates: list[float],
    task: Task | None,
    on_point: Callable[[float, float], Any] | None,
    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer],
    grad_clip: float,
) -> tuple[list[float], list[float], list[float], float | None]:
    # Copies of the groups: the caller's dicts (and their "lr") stay as they were.
    optimizer = make_optimizer([dict(g) for g in groups])
    scales = [float(g.get("lr_scale", 1.0)) for g in optimizer.param_groups]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    model.train()
    lrs: list[float] = []
    smooth: list[float] = []
    raw: list[float] = []
    average, lowest = 0.0, math.inf
    source = _cycle(batches)
    for i, lr in enumerate(rates):
        if task is not None:
            task.wait_while_paused()
            if task.cancelled:
                raise Cancelled()
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] = lr * scale
        x, y = next(source)
        loss = criterion(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        value = loss.item()
        if not math.isfinite(value):
            return lrs, smooth, raw, lr
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smoothed = average / (1 - SMOOTHING ** (i + 1))
        lrs.append(lr)
        smooth.append(smoothed)
        raw.append(value)
        if on_point is not None:
            on_point(lr, smoothed)
        lowest = min(lowest, smoothed)
        if smoothed > DIVERGENCE_FACTOR * lowest:
            return lrs, smooth, raw, lr
    return lrs, smooth, raw, None


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float | None, str]:
    """fastai's valley rule on a smoothed curve, or a tenth of the lowest point's rate.

    Like fastai, the first tenth and the last five points are left out of a long curve (the
    start is flat noise, the end is the blow-up).
    """
    n = len(losses)
    if n == 0:
        return None, NO_POINTS_REASON
    cut_start, cut_end = (n // 10, 5) if n >= 30 else (0, 0)
    rates, values = list(lrs[cut_start : n - cut_end]), list(losses[cut_start : n - cut_end])
    start, end = _longest_valley(values)
    if end - start >= 2:
        third = (end - start) / 3
        return float(rates[start + int(third) + int(third / 2)]), VALLEY_REASON
    lowest = min(range(n), key=lambda i: losses[i])
    suggestion = min(max(lrs[lowest] / 10, lrs[0]), lrs[-1])
    return float(suggestion), FALLBACK_REASON


def _longest_valley(losses: Sequence[float]) -> tuple[int, int]:
    """Start and end index of the longest decreasing run of points (fastai's ``valley``)."""
    n = len(losses)
    if n == 0:
        return 0, 0
    length = [1] * n
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and length[i] < length[j] + 1:
                length[i] = length[j] + 1
        if length[best_end] < length[i]:
            best_end = i
    return max(0, best_end - length[best_end] + 1), best_end


def _adamw(groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups)


def _cycle(batches: BatchSource) -> Iterator[Batch]:
    """Batches without end: the factory is called (or the iterable re-read) when it runs out."""
    while True:
        empty = True
        for batch in batches() if callable(batches) else batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("The range test got no training batches; the training set is empty.")


class _ModelState:
    """Everything the range test changes, copied to the CPU so it can be put back exactly."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.params = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}
        self.buffers = {n: b.detach().to("cpu", copy=True) for n, b in model.named_buffers()}
        self.flags = {n: p.requires_grad for n, p in model.named_parameters()}
        self.grads = {
            n: None if p.grad is None else p.grad.detach().to("cpu", copy=True)
            for n, p in model.named_parameters()
        }
        self.modes = {n: m.training for n, m in model.named_modules()}
        self.rng = torch.get_rng_state()
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda_rng = torch.cuda.get_rng_state_all() if cuda else None

    @torch.no_grad()
    def restore(self) -> None:
        for name, p in self.model.named_parameters():
            p.copy_(self.params[name])
            p.requires_grad_(self.flags[name])
            saved = self.grads[name]
            p.grad = None if saved is None else saved.to(p.device)
        for name, b in self.model.named_buffers():
            b.copy_(self.buffers[name])
        for name, module in self.model.named_modules():
            module.training = self.modes[name]
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
