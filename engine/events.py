"""Events the engine emits while it works. Qt-free, frozen, scalar payloads only."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RunStatus(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DIVERGED = "diverged"  # the loss became NaN/inf or exploded; the best checkpoint is kept


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every engine event."""

    run_id: str = ""


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    run_dir: str
    epochs: int
    steps_per_epoch: int
    start_epoch: int
    device: str
    precision: str
    trainable_params: int
    total_params: int
    train_size: int
    val_size: int
    classes: tuple[str, ...]
    feature_cache: bool
    modality: str = "image"  # "image" or "text": what one sample is


@dataclass(frozen=True, kw_only=True)
class StepEnded(Event):
    step: int
    epoch: int
    total_steps: int
    loss: float
    lr: float
    samples_per_sec: float


@dataclass(frozen=True, kw_only=True)
class EpochEnded(Event):
    epoch: int
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    is_best: bool = False
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class CheckpointSaved(Event):
    path: str
    kind: str  # "best", "last" or "interrupted"
    epoch: int


@dataclass(frozen=True, kw_only=True)
class StageProgressed(Event):
    """Progress of a long stage outside the step loop (scanning, caching features)."""

    stage: str  # "scan" or "features"
    done: int
    total: int


@dataclass(frozen=True, kw_only=True)
class LogMessage(Event):
    level: str  # "info", "warning" or "error"
    text: str


@dataclass(frozen=True, kw_only=True)
class RunEnded(Event):
    status: RunStatus
    error: str = ""
    best_metrics: dict[str, float] = field(default_factory=dict)
    run_dir: str = ""
    warnings: tuple[str, ...] = ()  # sentences: the model learned nothing useful, what to try


@dataclass(frozen=True, kw_only=True)
class AdviceGiven(Event):
    """The Recommended method chose the recipe; ``advice`` is what advice.json holds (depth
    scores, trials, the range test, the reason)."""

    advice: dict = field(default_factory=dict)
