"""What a text reader (folder or table) hands to the review: the texts it read, and the
sentences about places in the source (rows, lines or files) that it words the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from engine.data.problems import Problem, ProblemKind


class TextProblemKind(StrEnum):
    """Problems only a text source has (the others reuse :class:`ProblemKind`)."""

    EMPTY_TEXT = "empty-text"
    MISSING_LABEL = "missing-label"
    ENCODING = "encoding"
    NOT_TEXT = "not-text"
    BAD_LINE = "bad-line"
    BLANK_ROW = "blank-row"
    OPEN_QUOTE = "unterminated-quote"


@dataclass
class TextItem:
    """A text read from the source, before review. ``ref`` is the row / line number as text,
    or the file path relative to the root."""

    text: str
    cls: str
    split: str | None
    ref: str
    origin: str
    digest: str = ""


@dataclass(frozen=True)
class Where:
    """How to name places in the source: rows / lines of one file, or files of a folder."""

    unit: str  # "row", "line" or "file"
    file: str | None = None  # the table's file name
    path: str | None = None  # the table's absolute path

    def subject(self, refs: Sequence[str]) -> tuple[str, str, bool]:
        """(subject, "(rows 4, 9, …)" listing, plural) for a sentence about ``refs``."""
        n = len(refs)
        shown = ", ".join(refs[:5]) + (", …" if n > 5 else "")
        if self.unit == "file":
            return (refs[0], "", False) if n == 1 else (f"{n} files", f" ({shown})", True)
        if n == 1:
            return f"{self.unit.capitalize()} {refs[0]} of {self.file}", "", False
        return f"{n} {self.unit}s of {self.file}", f" ({self.unit}s {shown})", True


def aggregate(
    kind: str, where: Where, refs: Sequence[str], what: tuple[str, str], then: tuple[str, str]
) -> Problem:
    """One problem about many places: ``what``/``then`` are (singular, plural) wordings."""
    subject, listing, many = where.subject(refs)
    return Problem(
        kind=cast(ProblemKind, kind),
        path=where.path,
        message=f"{subject} {what[many]}{listing}; {then[many]}",
    )


def encoding_problem(kind: str, where: Where, refs: Sequence[str], encoding: str) -> Problem:
    """ "<file> is not UTF-8; it was read as <encoding>. Save it as UTF-8 to be sure." """
    if where.unit != "file":
        where = Where("file", path=where.path)
    return aggregate(
        kind,
        where,
        refs,
        ("is not UTF-8", "are not UTF-8"),
        (
            f"it was read as {encoding}. Save it as UTF-8 to be sure.",
            f"they were read as {encoding}. Save them as UTF-8 to be sure.",
        ),
    )
