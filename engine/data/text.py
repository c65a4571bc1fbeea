"""Scanning a labeled text source: which texts are usable, under which class, and what is wrong.

Sources: a folder with one sub-folder per class holding ``.txt`` files (one example a file;
``train/ val/ test/`` split folders work as for images), or one ``.csv`` / ``.tsv`` / ``.jsonl``
file with a text column and a label column. Nothing is ever written to the source.

The index works with :func:`engine.data.split_samples` (or :func:`split_text_samples`, which
says so to a type checker): copies of a text share a digest, so they stay in one split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from engine.data.classes import keep_classes
from engine.data.index import DatasetIndex
from engine.data.modality import unusable_source
from engine.data.problems import DatasetError, Problem, ProblemKind
from engine.data.text_folder import walk_text_folder
from engine.data.text_items import TextItem, Where, aggregate
from engine.data.text_items import TextProblemKind as TextProblemKind  # part of this API
from engine.data.text_read import TABLE_EXTENSIONS
from engine.data.text_table import table_items
from engine.task import Task

if TYPE_CHECKING:
    from engine.data.split import Splits


@dataclass(frozen=True)
class TextSample:
    """One usable text: its class index, split (or None), digest of the normalized text, and
    where it came from (a file path, or ``"data.csv:row 12"``)."""

    text: str
    label: int
    split: str | None
    digest: str
    origin: str


@dataclass(frozen=True)
class TextIndex:
    """What a text scan found. ``classes`` are sorted and hold only the classes that are kept;
    ``text_column`` and ``label_column`` are None for a folder source."""

    root: str
    classes: tuple[str, ...]
    samples: tuple[TextSample, ...]
    problems: tuple[Problem, ...]
    has_splits: bool
    text_column: str | None = None
    label_column: str | None = None
    read: int = 0  # rows (lines, files) read from the source, used or not

    @property
    def source(self) -> str:
        """The folder or file that was scanned (same as ``root``)."""
        return self.root

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Usable texts per class: ``{"all": {...}}``, or one entry per split."""
        return DatasetIndex.class_counts(cast(DatasetIndex, self))

    def fatal_problem(self) -> Problem | None:
        """The first problem that makes the dataset unusable, if any."""
        return next((p for p in self.problems if p.severity == "error"), None)

    def raise_if_unusable(self) -> None:
        """Raise DatasetError with the fatal problem's sentence, if there is one."""
        fatal = self.fatal_problem()
        if fatal is not None:
            raise DatasetError(fatal.message)


def normalize_text(text: str) -> str:
    """The text compared for copies: Unicode NFC with runs of whitespace made one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_digest(text: str) -> str:
    """blake2b-128 hex of the normalized text."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).hexdigest()


def scan_text_source(
    source: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    min_per_class: int = 2,
    task: Task | None = None,
) -> TextIndex:
    """Index the labeled texts of a folder or a .csv / .tsv / .jsonl file.

    Raises DatasetError when the source is missing or cannot be read at all, or when a column
    is named that does not exist or cannot be guessed, and Cancelled when ``task`` is cancelled
    while a folder is read; everything else is reported in ``TextIndex.problems``.
    """
    path = Path(os.path.abspath(Path(source).expanduser()))
    if not path.exists():
        raise DatasetError(unusable_source(path))
    if path.is_dir():
        items, problems, folders, has_splits = walk_text_folder(path, task)
        read = 0
        where = Where("file")
        columns: tuple[str | None, str | None] = (None, None)
    elif path.suffix.lower() in TABLE_EXTENSIONS:
        items, problems, columns, read = table_items(path, text_column, label_column)
        where = Where("line" if path.suffix.lower() == ".jsonl" else "row", path.name, str(path))
        folders, has_splits = {}, False
    else:
        raise DatasetError(unusable_source(path))
    kept, review_problems = review_texts(items, where)
    index = _finish(
        path, kept, problems + review_problems, folders, min_per_class, has_splits, columns
    )
    return dataclasses.replace(index, read=read)


def split_text_samples(
    index: TextIndex, *, val_fraction: float, test_fraction: float = 0.0, seed: int = 0
) -> Splits:
    """:func:`engine.data.split_samples` for a text index (its splits hold TextSamples)."""
    from engine.data.split import split_samples

    return split_samples(
        cast(DatasetIndex, index),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )


_SPLIT_RANK = {"train": 0, None: 0, "val": 1, "test": 2}


def review_texts(items: Sequence[TextItem], where: Where) -> tuple[list[TextItem], list[Problem]]:
    """Keep one copy of each text; report copies (same label), conflicts and split leaks."""
    groups: dict[str, list[TextItem]] = {}
    for item in items:
        item.digest = item.digest or text_digest(item.text)
        groups.setdefault(item.digest, []).append(item)
    dropped: set[int] = set()
    copies: list[str] = []
    leaks: list[str] = []
    conflicts: list[list[TextItem]] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda r: _SPLIT_RANK.get(r.split, 3))  # stable: source order in a split
        if len({r.cls for r in group}) > 1:
            dropped.update(id(r) for r in group)
            conflicts.append(group)
            continue
        for other in group[1:]:
            dropped.add(id(other))
            (copies if other.split == group[0].split else leaks).append(other.ref)
    problems = []
    if copies:
        problems.append(
            aggregate(
                ProblemKind.DUPLICATE,
                where,
                copies,
                (
                    "repeats an earlier text with the same label",
                    "repeat earlier texts with the same label",
                ),
                ("the copy is skipped.", "the copies are skipped."),
            )
        )
    if leaks:
        problems.append(
            aggregate(
                ProblemKind.IN_TWO_SPLITS,
                where,
                leaks,
                ("repeats a text of an earlier split", "repeat texts of earlier splits"),
                (
                    "it is left out so that the evaluation stays honest.",
                    "they are left out so that the evaluation stays honest.",
                ),
            )
        )
    if conflicts:
        problems.append(_conflicts(conflicts, where))
    return [item for item in items if id(item) not in dropped], problems


def _conflicts(groups: list[list[TextItem]], where: Where) -> Problem:
    refs = [r.ref for g in groups for r in g]
    classes = sorted({r.cls for g in groups for r in g})
    names = ", ".join(f"'{c}'" for c in classes[:5]) + (", …" if len(classes) > 5 else "")
    subject, listing, _ = where.subject(refs)
    what = "have the same text" if len(groups) == 1 else f"repeat {len(groups)} texts"
    return Problem(
        kind=ProblemKind.CONFLICTING_LABELS,
        path=where.path,
        message=f"{subject} {what} under different labels ({names}){listing}; "
        "every copy is left out. Give each text one label only.",
    )


def _finish(
    path: Path,
    items: list[TextItem],
    problems: list[Problem],
    folders: dict[str, str],
    min_per_class: int,
    has_splits: bool,
    columns: tuple[str | None, str | None],
) -> TextIndex:
    """Leave out classes that are too small, number the rest, and find fatal problems."""
    per_class = Counter(i.cls for i in items)
    in_train = Counter(i.cls for i in items if i.split == "train")
    names = sorted(set(folders) | set(per_class))
    kept, left_out = keep_classes(
        names,
        per_class,
        in_train,
        min_per_class=min_per_class,
        has_splits=has_splits,
        unit="text",
        path_of=lambda cls: folders.get(cls, str(path)),
    )
    problems.extend(left_out)
    label = {cls: i for i, cls in enumerate(kept)}
    samples = tuple(
        TextSample(text=i.text, label=label[i.cls], split=i.split, digest=i.digest, origin=i.origin)
        for i in items
        if i.cls in label
    )
    fatal = _fatal(path, kept, dropped=len(names) - len(kept))
    if fatal is not None:
        problems.insert(0, fatal)
    return TextIndex(
        root=str(path),
        classes=tuple(kept),
        samples=samples,
        problems=tuple(problems),
        has_splits=has_splits,
        text_column=columns[0],
        label_column=columns[1],
    )


def _fatal(path: Path, kept: list[str], *, dropped: int) -> Problem | None:
    what = f"The folder {path}" if path.is_dir() else str(path)
    if not kept:
        how = (
            "put each class's .txt files in a subfolder named after the class."
            if path.is_dir()
            else "give every row a text and a label."
        )
        enough = " with enough usable texts" if dropped else ""
        return Problem(
            kind=ProblemKind.EMPTY_DATASET,
            path=str(path),
            severity="error",
            message=f"{what} has no classes{enough}; {how}",
        )
    if len(kept) == 1:
        enough = " with enough texts" if dropped else ""
        return Problem(
            kind=ProblemKind.SINGLE_CLASS,
            path=str(path),
            severity="error",
            message=f"{what} has only one class{enough} ('{kept[0]}'); a classifier needs at "
            "least two classes. Add examples of another class.",
        )
    return None
