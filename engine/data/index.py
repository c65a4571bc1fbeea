"""The result of scanning a folder: classes, usable samples and the problems found."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.data.intensity import IntensityReport
from engine.data.problems import DatasetError, Problem


@dataclass(frozen=True)
class Sample:
    """One usable image: absolute path, class index, split folder (or None), content hash and
    the salted hash of its group (patient) key, or None (see :mod:`engine.data.groups`)."""

    path: str
    label: int
    split: str | None
    digest: str
    group: str | None = None


@dataclass(frozen=True)
class DatasetIndex:
    """What a scan found. ``classes`` are sorted and hold only the classes that are kept."""

    root: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    problems: tuple[Problem, ...]
    has_splits: bool
    intensity: IntensityReport | None = None  # images only: how much range the pixels use
    # Pairs of paths of near-duplicate images (resized or re-encoded copies) that the split keeps
    # on one side; found when there are no split folders.
    twins: tuple[tuple[str, str], ...] = ()
    # Whether ``twins`` were looked for already (by `refit train`'s prefetching child, in the
    # run's DICOM window): the checks then take them instead of decoding every image again.
    twins_found: bool = False
    # Usable DICOM files among the samples, and how many of them declare themselves
    # de-identified (PatientIdentityRemoved YES), for the run's record and its report.
    dicom_files: int = 0
    dicom_deidentified: int = 0
    # What the leakage checks found (engine/data/groups.py ``leakage_record``: counts only, no
    # name), for the run's record and its report; None when they did not run (texts).
    leakage: dict[str, int] | None = None

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

    def group_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Images and groups (patients) per class, per split folder (``"all"`` without them):
        ``{"train": {"cat": {"images": 10, "groups": 4}, ...}, ...}``. An image without a group
        counts as a group of its own."""
        return split_group_counts(
            {
                key: [s for s in self.samples if (s.split or "all") == key]
                for key in self.class_counts()
            },
            self.classes,
        )

    def fatal_problem(self) -> Problem | None:
        """The first problem that makes the dataset unusable, if any."""
        return next((p for p in self.problems if p.severity == "error"), None)

    def raise_if_unusable(self) -> None:
        """Raise DatasetError with the fatal problem's sentence, if there is one."""
        fatal = self.fatal_problem()
        if fatal is not None:
            raise DatasetError(fatal.message)


def split_group_counts(
    splits: Mapping[str, Sequence[Sample]], classes: Sequence[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """Images and groups (patients) per class of each named list of samples. A group that spans
    classes counts once in each of its classes; an image without a group is a group of its own."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name, samples in splits.items():
        images: Counter[int] = Counter()
        groups: dict[int, set[str]] = {}
        for s in samples:
            images[s.label] += 1
            unit = f"g:{s.group}" if s.group is not None else f"p:{s.path}"
            groups.setdefault(s.label, set()).add(unit)
        out[name] = {
            cls: {"images": images[i], "groups": len(groups.get(i, ()))}
            for i, cls in enumerate(classes)
        }
    return out
