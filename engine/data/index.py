"""The result of scanning a folder: classes, usable samples and the problems found."""

from __future__ import annotations

from dataclasses import dataclass

from engine.data.intensity import IntensityReport
from engine.data.problems import DatasetError, Problem


@dataclass(frozen=True)
class Sample:
    """One usable image: absolute path, class index, split folder (or None) and content hash."""

    path: str
    label: int
    split: str | None
    digest: str


@dataclass(frozen=True)
class DatasetIndex:
    """What a scan found. ``classes`` are sorted and hold only the classes that are kept."""

    root: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    problems: tuple[Problem, ...]
    has_splits: bool
    intensity: IntensityReport | None = None  # images only: how much range the pixels use

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Usable images per class: ``{"all": {...}}``, or one entry per split folder."""
        keys = [s.split or "all" for s in self.samples]
        order = {"train": 0, "val": 1, "test": 2, "all": 3}
        counts: dict[str, dict[str, int]] = {
            key: dict.fromkeys(self.classes, 0) for key in sorted(set(keys), key=order.__getitem__)
        }
        if not counts:
            counts["all"] = dict.fromkeys(self.classes, 0)
        for key, sample in zip(keys, self.samples, strict=True):
            counts[key][self.classes[sample.label]] += 1
        return counts

    def fatal_problem(self) -> Problem | None:
        """The first problem that makes the dataset unusable, if any."""
        return next((p for p in self.problems if p.severity == "error"), None)

    def raise_if_unusable(self) -> None:
        """Raise DatasetError with the fatal problem's sentence, if there is one."""
        fatal = self.fatal_problem()
        if fatal is not None:
            raise DatasetError(fatal.message)
