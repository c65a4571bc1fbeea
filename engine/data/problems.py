"""What can be wrong with a dataset folder or one image, each told in one plain sentence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ProblemKind(StrEnum):
    """The kinds of problems a scan reports."""

    MISSING_FOLDER = "missing-folder"
    EMPTY_DATASET = "empty-dataset"
    SINGLE_CLASS = "single-class"
    TOO_FEW = "too-few-examples"
    EMPTY_FILE = "empty-file"
    NOT_IMAGE = "not-an-image"
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    TOO_LARGE = "decompression-bomb"
    DUPLICATE = "duplicate"
    CONFLICTING_LABELS = "conflicting-labels"
    IN_TWO_SPLITS = "in-two-splits"
    STRAY_FILE = "stray-file"
    NOT_REGULAR = "not-a-regular-file"
    FILE_TOO_BIG = "file-too-large"
    LINK_OUTSIDE = "link-outside-dataset"
    LINK_LOOP = "link-loop"
    MISSING_IN_SPLIT = "class-missing-in-split"
    NARROW_INTENSITY = "narrow-intensity"
    NO_GROUP = "no-group-key"
    GROUP_LEAKAGE = "group-leakage"
    NEAR_DUPLICATE = "near-duplicate-leakage"
    IDENTIFIER_NAME = "identifier-in-name"
    MANIFEST = "manifest"


class DatasetError(ValueError):
    """A dataset that cannot be used; the message says what, which folder and what to do."""


class ImageError(ValueError):
    """One image that cannot be used; the message names the file.

    ``kind`` tells which problem it is and ``reason`` is the message without the file name
    (e.g. "is truncated (the image data ends early)"), so a scan can word its own sentence.
    """

    def __init__(
        self,
        message: str,
        kind: ProblemKind = ProblemKind.UNREADABLE,
        reason: str = "",
        *,
        advised: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = ProblemKind(kind)
        self.reason = reason or message
        #: the reason already says what to do (a DICOM "...; re-export it"): a scan adds only
        #: that the file is skipped, not its kind's generic advice as a second remedy
        self.advised = advised

    def __reduce__(self) -> tuple:
        # DataLoader workers pickle exceptions back to the main process: keep kind and reason.
        return (_image_error, (str(self), self.kind, self.reason, self.advised))


def _image_error(message: str, kind: ProblemKind, reason: str, advised: bool) -> ImageError:
    return ImageError(message, kind, reason, advised=advised)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset. ``severity`` "error" means it cannot be trained on."""

    kind: ProblemKind
    message: str
    path: str | None = None
    severity: str = "warning"
    count: int = 1  # the findings this one sentence stands for ("1,204 more pairs ...")


# What a scan does about each per-file problem, appended to the reason.
_FILE_ADVICE = {
    ProblemKind.EMPTY_FILE: "it will be skipped. Copy the file again or remove it.",
    ProblemKind.NOT_IMAGE: "it is ignored.",
    ProblemKind.UNREADABLE: "it will be skipped. Check its permissions, or re-export it.",
    ProblemKind.TRUNCATED: "it will be skipped. Re-export or remove the file.",
    ProblemKind.TOO_LARGE: "it will be skipped. Downscale it first.",
    ProblemKind.NOT_REGULAR: "it is skipped. Remove it from the dataset folder.",
    ProblemKind.FILE_TOO_BIG: "it is skipped. Shrink or split the file.",
    ProblemKind.LINK_LOOP: "it is skipped. Remove the link.",
}


def file_problem(
    rel: str, path: str, kind: ProblemKind, reason: str, *, advised: bool = False
) -> Problem:
    """The problem of one file that a scan skips: "<rel> <reason>; <what happens>" (only "it
    will be skipped." when the reason already says what to do: ``advised``)."""
    advice = "it will be skipped." if advised else _FILE_ADVICE.get(kind, "it will be skipped.")
    return Problem(kind=kind, message=f"{rel} {reason}; {advice}", path=path)


def plural(n: int, word: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
