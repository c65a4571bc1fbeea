"""metrics.jsonl: one JSON object a line, a "step" record per optimizer step and an "epoch"
record per epoch. This module owns its keys: the writer's records, the trimming a resume does,
and the curves the app draws from them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STEP, EPOCH = "step", "epoch"


def step_record(
    *, step: int, epoch: int, loss: float, lr: float, samples_per_sec: float
) -> dict[str, Any]:
    """The line written after one optimizer step."""
    return {
        "type": STEP,
        "step": step,
        "epoch": epoch,
        "loss": loss,
        "lr": lr,
        "samples_per_sec": round(samples_per_sec, 2),
        "time": round(time.time(), 3),
    }


def epoch_record(
    *, epoch: int, step: int, seconds: float, is_best: bool, metrics: Mapping[str, Any]
) -> dict[str, Any]:
    """The line written after one epoch's validation (``metrics`` follow the fixed keys)."""
    return {
        "type": EPOCH,
        "epoch": epoch,
        "step": step,
        "seconds": round(seconds, 3),
        "is_best": is_best,
        **metrics,
    }


def is_metrics_record(record: Mapping[str, Any]) -> bool:
    """A line the curves and resume can use: step and epoch whole numbers, type a string."""
    for key in ("step", "epoch"):
        value = record.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            return False
    return isinstance(record.get("type", ""), str)


def records_until(
    records: Iterable[Mapping[str, Any]], global_step: int, epoch: int
) -> list[Mapping[str, Any]]:
    """The records a resume at (``global_step``, ``epoch``) keeps: lines written after the
    checkpoint (a crash) would be duplicated when the run continues."""
    return [
        r
        for r in records
        if r.get("step", 0) <= global_step and (r.get("type") != EPOCH or r.get("epoch", 0) < epoch)
    ]


@dataclass(frozen=True)
class Curves:
    """A run's curves from its records (epochs 0-based as stored; NaN where a value is not a
    number). ``best_epoch`` is the 1-based epoch of the last record marked best."""

    steps: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()
    lrs: tuple[float, ...] = ()
    epochs: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    val_accuracy: tuple[float, ...] = ()
    train_loss: tuple[float, ...] = ()
    best_epoch: int | None = None


def curves(records: Iterable[Mapping[str, Any]]) -> Curves:
    """The curves of metrics.jsonl's ``records``."""
    records = list(records)
    steps = [r for r in records if r.get("type") == STEP]
    epochs = [r for r in records if r.get("type") == EPOCH]
    best = [int(r["epoch"]) + 1 for r in epochs if r.get("is_best")]

    def column(rows: list[Mapping[str, Any]], key: str) -> tuple[float, ...]:
        return tuple(_number(r.get(key)) for r in rows)

    return Curves(
        steps=column(steps, "step"),
        losses=column(steps, "loss"),
        lrs=column(steps, "lr"),
        epochs=column(epochs, "epoch"),
        val_loss=column(epochs, "val_loss"),
        val_accuracy=column(epochs, "val_accuracy"),
        train_loss=column(epochs, "train_loss"),
        best_epoch=best[-1] if best else None,
    )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
