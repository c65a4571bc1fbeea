"""A run's curves as numpy arrays (from metrics.jsonl or live events), and their smoothing.

No Qt and no pyqtgraph here, so pages can import it without slowing the first window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RunHistory:
    """A run's curves from its metrics.jsonl records (epochs 1-based, accuracy in percent)."""

    steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    losses: np.ndarray = field(default_factory=lambda: np.empty(0))
    lrs: np.ndarray = field(default_factory=lambda: np.empty(0))
    epochs: np.ndarray = field(default_factory=lambda: np.empty(0))
    val_loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    val_accuracy: np.ndarray = field(default_factory=lambda: np.empty(0))
    train_loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    best_epoch: int | None = None

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> RunHistory:
        steps = [r for r in records if r.get("type") == "step"]
        epochs = [r for r in records if r.get("type") == "epoch"]
        best = [int(r["epoch"]) + 1 for r in epochs if r.get("is_best")]

        def column(rows: list[dict[str, Any]], key: str, scale: float = 1.0) -> np.ndarray:
            values = [_number(r.get(key)) * scale for r in rows]
            return np.asarray(values, dtype=float)

        return cls(
            steps=column(steps, "step"),
            losses=column(steps, "loss"),
            lrs=column(steps, "lr"),
            epochs=column(epochs, "epoch") + 1,
            val_loss=column(epochs, "val_loss"),
            val_accuracy=column(epochs, "val_accuracy", 100.0),
            train_loss=column(epochs, "train_loss"),
            best_epoch=best[-1] if best else None,
        )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class Ema:
    """Debiased exponential moving average (like TensorBoard's smoothing); NaN leaves a gap."""

    def __init__(self, weight: float = 0.9) -> None:
        self.weight = weight
        self.reset()

    def reset(self) -> None:
        self._value = 0.0
        self._count = 0

    def push(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        out = np.empty(len(values))
        w = self.weight
        for i, v in enumerate(values):
            if not np.isfinite(v):
                out[i] = np.nan
                continue
            self._value = w * self._value + (1 - w) * v
            self._count += 1
            out[i] = self._value / (1 - w**self._count)
        return out


def smooth(values: Sequence[float] | np.ndarray, weight: float = 0.9) -> np.ndarray:
    """The debiased EMA of a whole series."""
    return Ema(weight).push(values)


@dataclass(frozen=True)
class HistoryLoaded:
    """Not an engine event: curves of a resumed run up to its checkpoint, sent before RunStarted."""

    history: RunHistory
