"""Which classes a scan keeps: the rule the image and the text scans share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from engine.data.problems import Problem, ProblemKind, plural


def keep_classes(
    names: Iterable[str],
    per_class: Counter[str],
    in_train: Counter[str],
    *,
    min_per_class: int,
    has_splits: bool,
    unit: str,
    path_of: Callable[[str], str | None],
) -> tuple[list[str], list[Problem]]:
    """The classes of ``names`` with at least ``min_per_class`` usable examples (and, in the
    split layout, some in the train folder), in order, and a problem per class left out.

    ``unit`` names one example ("image", "text"); ``path_of`` gives the folder a problem points
    at.
    """
    kept: list[str] = []
    problems: list[Problem] = []
    for cls in names:
        n = per_class.get(cls, 0)
        if n < min_per_class:
            why = f"has {plural(n, f'usable {unit}')} (the minimum is {min_per_class})"
            advice = "Add more examples or lower the minimum."
        elif has_splits and not in_train.get(cls):
            why = f"has no usable {unit}s in the train folder"
            advice = "Add training examples of it."
        else:
            kept.append(cls)
            continue
        problems.append(
            Problem(
                kind=ProblemKind.TOO_FEW,
                path=path_of(cls),
                message=f"Class '{cls}' {why}; it is left out. {advice}",
            )
        )
    return kept, problems
