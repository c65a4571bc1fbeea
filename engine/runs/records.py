"""Typed, frozen records of a run folder's JSON files: state.json, summary.json, splits.json.

Each record wraps the file's object as read (``raw``, unknown keys kept, so a rewrite loses
nothing) and gives typed fields whose hostile values (wrong types) fall back to safe defaults.
Files carry a ``schema`` key from version 1 on; a file without one is version 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

#: The version of state.json, summary.json and splits.json this Refit Studio writes.
SCHEMA = 1
SCHEMA_KEY = "schema"


def schema_problem(data: Mapping[str, Any], path: Path) -> str:
    """ "" when ``data`` is a version this code reads, else one sentence naming the file."""
    version = data.get(SCHEMA_KEY, SCHEMA)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"The run file {path} records a format version that is not a whole number"
    if version > SCHEMA:
        return (
            f"The run file {path} was written by a newer Refit Studio (format {version}, this "
            f"one reads up to {SCHEMA}); update Refit Studio to open it"
        )
    return ""


def stamped(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the schema key this code writes (first for a new file, kept in place in
    an old one)."""
    return {SCHEMA_KEY: SCHEMA, **data} if SCHEMA_KEY not in data else dict(data)


def _frozen(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole(value: Any) -> int:
    """A count stored in a run file, 0 when it is not a usable number."""
    return int(value) if is_number(value) and value == value and abs(value) < 2**62 else 0


def numbers(values: Any) -> dict[str, float]:
    """The numeric entries of a JSON object ({} when it is not one)."""
    if not isinstance(values, dict):
        return {}
    return {str(k): float(v) for k, v in values.items() if is_number(v)}


@dataclass(frozen=True)
class RunState:
    """state.json: where the run stands and the facts resolved when it ran."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunState:
        return cls(_frozen(data))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    @property
    def status(self) -> str:
        """The recorded status; "unknown" when missing or not text (a forged {"x": 1})."""
        status = self.raw.get("status", "unknown")
        return status if isinstance(status, str) else "unknown"

    @property
    def status_is_text(self) -> bool:
        return isinstance(self.raw.get("status", ""), str)

    @property
    def created(self) -> str:
        return str(self.raw.get("created") or "")

    @property
    def epochs_done(self) -> int:
        return whole(self.raw.get("epochs_done"))

    @property
    def resumable(self) -> bool:
        """The run's own verdict when it stopped: a checkpoint to continue from."""
        return bool(self.raw.get("resumable"))

    @property
    def device(self) -> str:
        return str(self.raw.get("device", ""))

    @property
    def micro_batch(self) -> int | None:
        size: Any = self.raw.get("micro_batch")
        return int(size) if is_number(size) and size > 0 else None


@dataclass(frozen=True)
class RunSummary:
    """summary.json: what the run achieved (written when it ends)."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunSummary:
        return cls(_frozen(data))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    @property
    def status(self) -> str:
        status = self.raw.get("status", "")
        return status if isinstance(status, str) else ""

    @property
    def best(self) -> dict[str, float]:
        """The best epoch's metrics (numbers only)."""
        return numbers(self.raw.get("best"))

    @property
    def classes(self) -> list[Any]:
        classes = self.raw.get("classes")
        return list(classes) if isinstance(classes, list) else []

    @property
    def warnings(self) -> tuple[str, ...]:
        """Honest warnings (the model learned nothing useful), text entries only."""
        warnings = self.raw.get("warnings") or ()
        if not isinstance(warnings, list | tuple):
            return ()
        return tuple(w for w in warnings if isinstance(w, str))


class SplitRow(NamedTuple):
    """One example of splits.json: an image path or a text, its class index, its content
    digest, and (texts only) where it came from."""

    item: Any
    label: Any
    digest: Any
    origin: Any = ""

    @classmethod
    def from_row(cls, row: Any) -> SplitRow:
        """A stored row (a list of 3 items, 4 for texts); TypeError when it is not a list,
        IndexError when it is shorter than 3."""
        if not isinstance(row, list | tuple):
            raise TypeError(f"a split row is {type(row).__name__}, not a list")
        if len(row) < 3:
            raise IndexError(f"a split row holds {len(row)} items, not 3")
        return cls(*row[:4])


@dataclass(frozen=True)
class RunSplits:
    """splits.json: the classes and the train / val / test examples of the run."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunSplits:
        return cls(_frozen(data))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    @property
    def modality(self) -> str:
        return str(self.raw.get("modality") or "image")

    @property
    def classes(self) -> list[Any]:
        classes = self.raw.get("classes")
        return list(classes) if isinstance(classes, list) else []

    def size(self, split: str) -> int:
        """How many examples the split holds (0 when absent)."""
        rows = self.raw.get(split, [])
        return len(rows) if isinstance(rows, list) else 0

    def rows(self, split: str) -> tuple[SplitRow, ...]:
        """The split's examples; IndexError or TypeError when a row is malformed."""
        rows = self.raw.get(split, [])
        if not isinstance(rows, list):
            raise TypeError(f"the {split} split is not a list")
        return tuple(SplitRow.from_row(row) for row in rows)

    def digests(self, split: str) -> list[Any]:
        """The content digests of the split's examples, sorted."""
        return sorted(row.digest for row in self.rows(split))
