"""Train / validation / test splits: stratified, group-aware, deterministic for a seed.

Each class is split on its own: its content groups (samples with the same digest) are ranked by
a hash of (seed, digest) and the first ones go to test, the next to validation. This gives
exact per-class shares with at least one validation image for every class that has two, keeps
copies of an image together, and is stable: adding images to one class, renaming or moving the
folder, or adding another class does not reshuffle anything else. (scikit-learn's
StratifiedShuffleSplit / StratifiedGroupKFold can leave a small class without a validation
image and only approximate the fraction, so they are not used here.)

When samples carry group keys (patients, :mod:`engine.data.groups`), the unit is the group
instead: a group and every copy of its images (near-duplicates the scan found included) go to
one side. Groups may span classes, so the
per-class shares are met greedily: groups are taken in the order of a hash of (seed, group), and
each goes to test or validation when that brings the split's per-class image counts closer to
their targets, else to train. Without any group key the split is exactly the one above.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from engine.data.groups import has_groups, unit_of
from engine.data.index import DatasetIndex, Sample
from engine.data.problems import Problem, ProblemKind


@dataclass(frozen=True)
class Splits:
    """The samples of each split, in the index's order."""

    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]


def split_samples(
    index: DatasetIndex, *, val_fraction: float, test_fraction: float = 0.0, seed: int = 0
) -> Splits:
    """Split the index's samples.

    With split folders they are used as they are; a missing val/ (or test/, when
    ``test_fraction`` > 0) is carved from train. Without them every class is split by the
    fractions. See the module docstring for how.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} is {value}; it must be at least 0 and below 1.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must leave some images for training.")
    twins = getattr(index, "twins", ())  # a text index has none
    carve = (
        functools.partial(_carve_groups, twins=twins)
        if twins or has_groups(index.samples)
        else _carve
    )
    if not index.has_splits:
        return carve(index.samples, val_fraction, test_fraction, seed)
    given: dict[str | None, list[Sample]] = {"train": [], "val": [], "test": []}
    for s in index.samples:
        given.setdefault(s.split, []).append(s)
    carved = carve(
        given["train"],
        0.0 if given["val"] else val_fraction,
        0.0 if given["test"] else test_fraction,
        seed,
    )
    return Splits(
        train=carved.train,
        val=tuple(given["val"]) + carved.val,
        test=tuple(given["test"]) + carved.test,
    )


def _carve(
    samples: Sequence[Sample], val_fraction: float, test_fraction: float, seed: int
) -> Splits:
    groups: dict[str, int] = {}  # digest -> label of its first sample
    for s in samples:
        groups.setdefault(s.digest, s.label)
    by_class: dict[int, list[str]] = {}
    for digest, label in groups.items():
        by_class.setdefault(label, []).append(digest)
    to_val: set[str] = set()
    to_test: set[str] = set()
    for label in sorted(by_class):
        digests = sorted(by_class[label], key=lambda d: _rank(seed, d))
        n_val, n_test = _shares(len(digests), val_fraction, test_fraction)
        to_test.update(digests[:n_test])
        to_val.update(digests[n_test : n_test + n_val])
    return Splits(
        train=tuple(s for s in samples if s.digest not in to_val and s.digest not in to_test),
        val=tuple(s for s in samples if s.digest in to_val),
        test=tuple(s for s in samples if s.digest in to_test),
    )


def _carve_groups(
    samples: Sequence[Sample],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    twins: Sequence[tuple[str, str]] = (),
) -> Splits:
    """The stratified group split (see the module docstring); ``twins`` are pairs of paths of
    near-duplicate images that go together like copies."""
    units = _units(samples, twins)
    per_class: Counter[int] = Counter(s.label for s in samples)
    targets = {
        name: {label: _target(n, fraction) for label, n in per_class.items()}
        for name, fraction in (("test", test_fraction), ("val", val_fraction))
    }
    got: dict[str, Counter[int]] = {"test": Counter(), "val": Counter()}
    left: Counter[int] = Counter(per_class)  # images of each class not yet sent to val or test
    side: dict[str, str] = {}
    for unit in sorted(units, key=lambda u: _rank(seed, u)):
        counts = units[unit]
        best, gain = "train", 0
        for name in ("test", "val"):
            if any(left[label] - n < 1 for label, n in counts.items()):
                break  # every class keeps at least one training image
            change = sum(
                abs(targets[name][label] - got[name][label] - n)
                - abs(targets[name][label] - got[name][label])
                for label, n in counts.items()
            )
            if change < gain:
                best, gain = name, change
        side[unit] = best
        if best != "train":
            got[best].update(counts)
            left.subtract(counts)
    chosen = [side[_root_unit(units, s)] for s in samples]
    return Splits(
        train=tuple(s for s, c in zip(samples, chosen, strict=True) if c == "train"),
        val=tuple(s for s, c in zip(samples, chosen, strict=True) if c == "val"),
        test=tuple(s for s, c in zip(samples, chosen, strict=True) if c == "test"),
    )


def _target(n: int, fraction: float) -> int:
    """Images of a class with ``n`` images that a split of ``fraction`` should get."""
    if fraction <= 0 or n < 2:
        return 0
    return max(1, math.floor(n * fraction + 0.5))


class _Units(dict[str, Counter[int]]):
    """Units (a group joined with every group that shares an image content) -> images per
    class; ``of`` maps each sample's own unit to its joined unit."""

    of: dict[str, str]


def _units(samples: Sequence[Sample], twins: Sequence[tuple[str, str]] = ()) -> _Units:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(x: str, y: str) -> None:
        a, b = find(x), find(y)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for s in samples:  # copies of one image under two groups join them: they go together
        join(unit_of(s), f"d:{s.digest}")
    by_path = {s.path: s for s in samples}
    for first, second in twins:
        if first in by_path and second in by_path:
            join(unit_of(by_path[first]), unit_of(by_path[second]))
    units = _Units()
    units.of = {}
    for s in samples:
        own = unit_of(s)
        root = find(own)
        units.of[own] = root
        units.setdefault(root, Counter())[s.label] += 1
    return units


def _root_unit(units: _Units, sample: Sample) -> str:
    return units.of[unit_of(sample)]


def _rank(seed: int, digest: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{digest}".encode(), digest_size=16).digest()


def _shares(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(n_val, n_test) of a class with n groups; at least one group always stays in train."""
    n_val = max(1, math.floor(n * val_fraction + 0.5)) if val_fraction > 0 and n >= 2 else 0
    n_test = max(1, math.floor(n * test_fraction + 0.5)) if test_fraction > 0 and n >= 3 else 0
    n_val = min(n_val, n - 1)
    n_test = max(0, min(n_test, n - 1 - n_val))
    return n_val, n_test


def missing_class_problems(splits: Splits, classes: Sequence[str]) -> list[Problem]:
    """A warning for a validation or test split that has no examples of a class that training
    has: its accuracy (even 1.0) says nothing about that class."""
    in_train = {s.label for s in splits.train}
    problems = []
    for name, samples in (("validation", splits.val), ("test", splits.test)):
        if not samples:
            continue
        present = {s.label for s in samples}
        missing = [classes[label] for label in sorted(in_train - present)]
        if not missing:
            continue
        shown = ", ".join(f"'{c}'" for c in missing[:5]) + (", …" if len(missing) > 5 else "")
        many = len(missing) > 1
        count = f" ({len(missing)} of {len(classes)} classes)" if many else ""
        problems.append(
            Problem(
                kind=ProblemKind.MISSING_IN_SPLIT,
                message=f"The {name} split has no examples of {shown}{count}; its accuracy says "
                f"nothing about {'them' if many else 'it'}. Add {name} examples of "
                f"{'each' if many else 'it'} (in the {'val' if name == 'validation' else 'test'}/"
                " folder, or more examples so some can be set aside).",
            )
        )
    return problems
