"""Copies of the same image (by content hash): duplicates, conflicting labels, split leakage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.data.problems import Problem, ProblemKind

_SPLIT_RANK = {"train": 0, None: 0, "val": 1, "test": 2}


class _Candidate(Protocol):
    path: str
    rel: str
    cls: str
    split: str | None


@dataclass(frozen=True)
class Reviewed:
    """A usable image before class numbering."""

    path: str
    rel: str
    cls: str
    split: str | None
    digest: str


def review_samples(
    candidates: Sequence[_Candidate], digests: Sequence[str | None]
) -> tuple[list[Reviewed], list[Problem]]:
    """Keep one copy of each image content; report the copies that were left out.

    - The same content under two classes: every copy is left out (the label is ambiguous).
    - The same content twice in a class: the copy in train (then val, then test), first by
      path, is kept; copies in the same split are DUPLICATE, in another split IN_TWO_SPLITS.
    """
    groups: dict[str, list[Reviewed]] = {}
    for c, digest in zip(candidates, digests, strict=True):
        if digest is not None:
            groups.setdefault(digest, []).append(
                Reviewed(path=c.path, rel=c.rel, cls=c.cls, split=c.split, digest=digest)
            )
    dropped: set[str] = set()
    problems: list[Problem] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda r: (_SPLIT_RANK.get(r.split, 3), r.rel))
        classes = sorted({r.cls for r in group})
        if len(classes) > 1:
            dropped.update(r.path for r in group)
            problems.append(_conflict(group, classes))
            continue
        keep = group[0]
        for other in group[1:]:
            dropped.add(other.path)
            problems.append(_copy(other, keep))
    kept = [r for g in groups.values() for r in g if r.path not in dropped]
    order = {c.path: i for i, c in enumerate(candidates)}
    kept.sort(key=lambda r: order[r.path])
    problems.sort(key=lambda p: p.message)
    return kept, problems


def _conflict(group: list[Reviewed], classes: list[str]) -> Problem:
    first = group[0]
    second = next(r for r in group if r.cls != first.cls)
    names = ", ".join(f"'{c}'" for c in classes)
    if len(group) == 2:
        who, all_ = f"{first.rel} and {second.rel} are", "both are"
    else:
        who = f"{first.rel} and {len(group) - 1} other copies are"
        all_ = "all are"
    return Problem(
        kind=ProblemKind.CONFLICTING_LABELS,
        path=first.path,
        message=f"{who} the same image under different classes ({names}); {all_} left out. "
        "Keep the image in one class only.",
    )


def _copy(other: Reviewed, keep: Reviewed) -> Problem:
    if other.split == keep.split:
        return Problem(
            kind=ProblemKind.DUPLICATE,
            path=other.path,
            message=f"{other.rel} is a copy of {keep.rel}; the copy is skipped.",
        )
    return Problem(
        kind=ProblemKind.IN_TWO_SPLITS,
        path=other.path,
        message=f"{other.rel} is the same image as {keep.rel}; it is left out of {other.split} "
        "so that the evaluation stays honest.",
    )
