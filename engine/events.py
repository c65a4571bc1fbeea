"""Events the engine emits while it works. Qt-free, frozen, scalar payloads only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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


#: The events a JSON line may name (engine.distributed's --events-jsonl).
EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        StepEnded,
        EpochEnded,
        CheckpointSaved,
        StageProgressed,
        LogMessage,
        RunEnded,
        AdviceGiven,
    )
}
MAX_EVENT_LINE = 1_000_000  # an AdviceGiven is the largest: tens of kilobytes


def event_to_json(event: Event) -> str:
    """One JSON line: ``{"event": "EpochEnded", ...fields}`` (dataclasses.asdict)."""
    import dataclasses
    import json

    return json.dumps({"event": type(event).__name__, **dataclasses.asdict(event)})


def event_from_json(line: str) -> Event | None:
    """The event a line of :func:`event_to_json` describes, or None for any other line (a
    warning printed by a library, a damaged or oversized line, an unknown event, a field of the
    wrong type: a plot must never get a string to draw): never raises. JSON has no NaN, so a
    null number is NaN again; whole numbers in float fields become floats."""
    import dataclasses
    import json

    if len(line) > MAX_EVENT_LINE or not line.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    cls = EVENT_TYPES.get(str(data.get("event", "")))
    if cls is None:
        return None
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = _typed(str(f.type), data[f.name])
            if value is _BAD:
                return None
            values[f.name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError):
        return None


_BAD = object()


def _typed(hint: str, value: Any) -> Any:
    """``value`` as the field type ``hint`` names (the annotations above), or _BAD."""
    if hint == "str":
        return value if isinstance(value, str) else _BAD
    if hint == "bool":
        return value if isinstance(value, bool) else _BAD
    if hint == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if hint == "float":
        return _number(value)
    if hint == "RunStatus":
        try:
            return RunStatus(value)
        except ValueError:
            return _BAD
    if hint.startswith("tuple"):
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        return tuple(value) if ok else _BAD
    if hint == "dict[str, float]":
        if not isinstance(value, dict):
            return _BAD
        numbers = {str(k): _number(v) for k, v in value.items()}
        return _BAD if any(v is _BAD for v in numbers.values()) else numbers
    if hint == "dict":
        return value if isinstance(value, dict) else _BAD
    return _BAD


def _number(value: Any) -> Any:
    if value is None:  # written as null: NaN
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _BAD
    return float(value)
