"""A run's curves as numpy arrays (from metrics.jsonl or live events), and their smoothing.

No Qt and no pyqtgraph here, so pages can import it without slowing the first window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine import Curves


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
        """The curves of metrics.jsonl's records (parsed by engine.runs.metrics)."""
        from engine import curves

        return cls.from_curves(curves(records))

    @classmethod
    def from_curves(cls, parsed: Curves) -> RunHistory:
        def array(values: tuple[float, ...]) -> np.ndarray:
            return np.asarray(values, dtype=float)

        return cls(
            steps=array(parsed.steps),
            losses=array(parsed.losses),
            lrs=array(parsed.lrs),
            epochs=array(parsed.epochs) + 1,
            val_loss=array(parsed.val_loss),
            val_accuracy=array(parsed.val_accuracy) * 100.0,
            train_loss=array(parsed.train_loss),
            best_epoch=parsed.best_epoch,
        )


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
