"""Out-of-memory fallback: split a batch into smaller pieces on a CUDA or MPS out-of-memory.

A training step whose batch does not fit is retried on the same batch in micro-batches (half
the size after each out-of-memory), with gradient accumulation, so the effective batch, the
number of optimizer steps and the metrics stay what they were. Inference passes (validation,
feature extraction) are simply run in smaller chunks.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import torch

T = TypeVar("T")


class MemoryExhausted(RuntimeError):
    """Out of memory even with pieces of one example; str() is the sentence for the user."""


def is_device_oom(exc: BaseException, device: torch.device) -> bool:
    """True for an out-of-memory the fallback may handle: CUDA's OutOfMemoryError (or one a
    test injects on any device) and MPS's RuntimeError. A CPU allocation failure is not one:
    halving there would only thrash the machine's swap."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return device.type == "mps" and isinstance(exc, RuntimeError) and "out of memory" in str(exc)


def free_device_memory(device: torch.device) -> None:
    """Give the allocator's cached blocks back after an out-of-memory."""
    gc.collect()
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps") and hasattr(torch.mps, "empty_cache"):
        torch.mps.empty_cache()


def batch_rows(x: Any) -> int:
    """Rows of a batch: a tensor or a dict of tensors (tokenized texts)."""
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


def slice_rows(x: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a tensor or of each tensor of a dict."""
    if isinstance(x, dict):
        return {k: v[start:stop] for k, v in x.items()}
    return x[start:stop]


def pieces(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive pieces of at most ``size`` rows covering ``n`` rows."""
    size = max(1, size or n)
    return [(i, min(i + size, n)) for i in range(0, n, size)]


class MicroBatcher:
    """Remembers the largest piece that fits (0: the whole batch) and halves it on an
    out-of-memory. ``on_shrink(failed_size, new_size)`` says so in the log; ``what`` names the
    work in the failure sentence ("training", "validation", "feature extraction")."""

    def __init__(
        self,
        device: torch.device,
        *,
        size: int = 0,
        what: str = "training",
        on_shrink: Callable[[int, int], None] | None = None,
    ) -> None:
        self.device = device
        self.size = size
        self.what = what
        self.on_shrink = on_shrink

    def run(
        self, n: int, attempt: Callable[[int], T], cleanup: Callable[[], object] = gc.collect
    ) -> T:
        """``attempt(piece_size)`` for a batch of ``n`` rows, retried with half the piece size
        after each device out-of-memory; ``cleanup`` drops what the failed attempt held."""
        while True:
            size = min(self.size or n, n)
            try:
                return attempt(size)
            except Exception as exc:
                if not is_device_oom(exc, self.device):
                    raise
            # Outside the except block: the traceback, and the tensors its frames held, are gone.
            cleanup()
            free_device_memory(self.device)
            if size <= 1:
                raise MemoryExhausted(self.exhausted_sentence())
            self.size = size // 2
            if self.on_shrink is not None:
                self.on_shrink(size, self.size)

    def map(
        self,
        fn: Callable[[Any], torch.Tensor],
        x: Any,
        cleanup: Callable[[], object] = gc.collect,
    ) -> torch.Tensor:
        """``fn`` over pieces of ``x`` (rows), concatenated; the pieces shrink on out-of-memory
        (``cleanup`` runs before each retry, as in :meth:`run`)."""
        n = batch_rows(x)

        def attempt(size: int) -> torch.Tensor:
            if size >= n:
                return fn(x)
            return torch.cat([fn(slice_rows(x, a, b)) for a, b in pieces(n, size)])

        return self.run(n, attempt, cleanup)

    def exhausted_sentence(self) -> str:
        return (
            f"Out of memory on {self.device.type} during {self.what} even one example at a "
            "time; choose a smaller model or a smaller image size (or shorter texts), or train "
            "on another device."
        )


class GradientStep(Protocol):
    """What a training step runs with (the Trainer has each of these)."""

    @property
    def optimizer(self) -> torch.optim.Optimizer: ...
    @property
    def criterion(self) -> torch.nn.CrossEntropyLoss: ...
    @property
    def placement(self) -> Any: ...
    @property
    def pipeline(self) -> Any: ...
    @property
    def scaler(self) -> torch.amp.GradScaler | None: ...


def accumulate_gradients(
    trainer: GradientStep, x: Any, y: torch.Tensor, size: int
) -> tuple[float, float]:
    """Forward and backward of one batch in pieces of ``size`` rows, each loss scaled by its
    share of the batch, so the summed gradients equal the whole batch's. Returns the batch's
    loss and its number of correct predictions; the optimizer step is the caller's."""
    trainer.optimizer.zero_grad(set_to_none=True)
    weight = trainer.criterion.weight
    # A weighted cross-entropy averages over the weights of the rows' classes, not the rows.
    total = weight[y].sum() if weight is not None else len(y)
    loss_value, correct = 0.0, 0.0
    parts = pieces(len(y), size)
    for k, (a, b) in enumerate(parts):
        xs, ys = (x, y) if b - a == len(y) else (slice_rows(x, a, b), y[a:b])
        # Several processes: gradients are all-reduced in the step's last backward alone.
        last = k == len(parts) - 1
        quiet = getattr(trainer.pipeline, "no_sync", contextlib.nullcontext)
        with contextlib.nullcontext() if last else quiet():
            with trainer.placement.autocast():
                logits = trainer.pipeline.forward(xs)
            loss = trainer.criterion(logits.float(), ys)
            if b - a < len(y):
                share = weight[ys].sum() / total if weight is not None else (b - a) / total
                loss = loss * share
            if trainer.scaler is not None:
                trainer.scaler.scale(loss).backward()
            else:
                loss.backward()
        loss_value += loss.item()
        correct += (logits.argmax(1) == ys).sum().item()
    return loss_value, correct


def shrink_sentence(device: torch.device, batch: int, micro: int) -> str:
    """The log line of a training step that continues in micro-batches."""
    k = -(-batch // micro)
    return (
        f"Out of memory on {device.type} with batch {batch}: continuing with micro-batches of "
        f"{micro}, {k} accumulated per step (effective batch {batch})."
    )


def inference_shrink_sentence(device: torch.device, what: str, batch: int, size: int) -> str:
    """The log line of an inference pass that continues in smaller batches."""
    return (
        f"Out of memory on {device.type} during {what} with batch {batch}: continuing in "
        f"batches of {size}."
    )
