"""What the Recommended method found and chose: the records behind advice.json."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.advice.chosen import CHOSEN_FIELDS  # noqa: F401 - re-exported
from engine.advice.record import Recording
from engine.advice.trials import TrialResult
from engine.config import RunConfig


@dataclass(frozen=True)
class DepthScore:
    """How well a linear probe on the pooled activation after ``group`` separates the classes."""

    group: str
    index: int
    dim: int
    cv_accuracy: float

    def to_dict(self) -> dict:
        return {
            "group": self.group,
            "index": self.index,
            "dim": self.dim,
            "cv_accuracy": _number(self.cv_accuracy),
        }


@dataclass
class Advice:
    """The recipe chosen for a run and the evidence behind it (advice.json in the run folder)."""

    config: RunConfig
    reason: str
    depths: list[DepthScore] = field(default_factory=list)
    probe_cv: float | None = None
    probe_holdout: float | None = None
    trials: list[TrialResult] = field(default_factory=list)
    lr_curve: Any = None  # LrCurve of the chosen cut
    cut: str | None = None  # last frozen group of a partial fine-tune
    seconds: float = 0.0
    recording: Recording | None = None  # reused by the run; not saved

    def to_dict(self) -> dict:
        return {
            "reason": self.reason,
            "method": str(self.config.adapt.method),
            "last_n": self.config.adapt.last_n,
            "lr": self.config.optim.lr,
            "epochs": self.config.schedule.epochs,
            "depths": [d.to_dict() for d in self.depths],
            "probe_cv_accuracy": _number(self.probe_cv),
            "probe_holdout_accuracy": self.probe_holdout,
            "trials": [t.to_dict() for t in self.trials],
            "lr_curve": self.lr_curve.to_dict() if self.lr_curve is not None else None,
            "cut": self.cut,
            "seconds": self.seconds,
        }


def _number(value: float | None) -> float | None:
    """JSON has no NaN: a score that could not be measured is null."""
    return None if value is None or math.isnan(value) else value
