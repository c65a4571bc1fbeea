"""Which patient (or study, or other unit) each image belongs to, kept only as a salted hash.

Several images of one patient must stay on one side of a split, or validation measures how well
the model recognises patients rather than disease. A group key comes from one of the sources that
``DataConfig.group_by`` names:

- ``""``: no groups (every image is its own unit, as before);
- ``"dicom"``: the file's PatientID, or its StudyInstanceUID when it has none (header only);
- ``"pattern:<regex>"``: the first capture group of the regex searched in the image's path
  relative to the dataset root (its first 256 characters), e.g. ``pattern:(P\\d+)_``; patterns
  whose backtracking can explode (nested repeats, more than two unbounded ones) are refused;
- ``"manifest"``: the ``group`` column of a manifest CSV (:mod:`engine.data.manifest`).

Raw keys (PatientIDs are protected health information) never leave this module: a sample holds
``HMAC-SHA256(user key, salt + key)`` cut to 12 hex characters, and only that appears in messages
and files. The salt is per dataset (its folder name, see :func:`dataset_salt`), so the same
patient gets different hashes in different datasets, and the split stays the same when the folder
is moved. The key is this user's secret (engine/secrets.py, outside every workspace): record
numbers are few enough to try them all, so a plain hash in a shared run folder could be reversed;
a keyed one cannot without the key. (Where no key can be kept, a read-only home folder, the hash
is unkeyed.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from engine.data.dicom import DEFAULT_WINDOW, parse_header
from engine.data.index import DatasetIndex, Sample
from engine.data.leakage import index_near_duplicates, near_duplicate_twins, twins_problem
from engine.data.problems import DatasetError, Problem, ProblemKind, plural
from engine.data.safe_read import MIB, read_head
from engine.secrets import user_key
from engine.task import Task

#: This user's key of the patient hashes (engine/secrets.py).
GROUP_KEY_NAME = "group-hash.key"

DICOM = "dicom"
MANIFEST = "manifest"
PATTERN_PREFIX = "pattern:"
_HASH_CHARS = 12
_DICOM_FIRST = 64 * 1024  # a DICOM header (before the pixels) is a few kilobytes
_DICOM_HEAD = 4 * MIB  # read when the first 64 KiB end before the keys do
_LAST_KEY_TAG = 0x0020000D  # StudyInstanceUID, after PatientID (0010,0020)


class GroupSpecError(DatasetError):
    """A ``group_by`` value that cannot be used; the message says what to write instead."""


def parse_group_by(spec: str) -> tuple[str, re.Pattern[str] | None]:
    """(source, compiled regex or None) of a ``group_by`` value; GroupSpecError if unusable."""
    spec = spec.strip()
    if spec in ("", DICOM, MANIFEST):
        return spec, None
    if spec.startswith(PATTERN_PREFIX):
        text = spec[len(PATTERN_PREFIX) :]
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise GroupSpecError(
                f"The group pattern {_shown(text)} is not a valid regular expression ({exc}); "
                "write one with a capture group, e.g. pattern:(P\\d+)_"
            ) from None
        slow = _slow_pattern(text)
        if slow:
            raise GroupSpecError(
                f"The group pattern {_shown(text)} {slow}, which can take hours on one long "
                "file name; write a simpler one (bounded counts like \\d{1,8} are fine), e.g. "
                "pattern:(P\\d+)_"
            )
        if pattern.groups < 1:
            raise GroupSpecError(
                f"The group pattern {_shown(text)} has no capture group; put the part of the file "
                "name that names the patient in parentheses, e.g. pattern:(P\\d+)_"
            )
        return "pattern", pattern
    raise GroupSpecError(
        f"group_by is {_shown(spec)}; use '' (no groups), 'dicom', 'manifest' or 'pattern:<regex>'."
    )


_MAX_SUBJECT = 256  # characters of the relative path a pattern searches (a file name's limit)
_LONG_REPEAT = 16  # a repeat that may match more than this many times counts as unbounded
_MAX_UNBOUNDED = 2  # unbounded repeats in one pattern: search time grows as length ** (n + 1)


def _shown(text: str) -> str:
    """A user's spec quoted in a sentence: repr (no control characters), cut to 80 characters."""
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def _slow_pattern(text: str) -> str | None:
    """Why the regex ``text`` could backtrack for hours (the rest of a sentence), or None.

    Python's ``re`` has no timeout, so the shapes that make backtracking explode are refused
    from the parsed pattern: a repeat inside a repeat (``(a+)+``, ``(a{1,3})*``) or an
    alternation inside a repeat (``(a|ab)+``), both exponential in the length searched, and more
    than two unbounded repeats (``.*_.*_.*``), polynomial of a degree that hangs on 256
    characters. With these refused and the subject cut to 256 characters, a search stays
    within about length ** 3 steps."""
    from re import _parser  # type: ignore[attr-defined]  # the parser behind re.compile

    counts = {"unbounded": 0}

    def walk(items: object, in_repeat: bool) -> str | None:
        for op, av in items:  # type: ignore[attr-defined]
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                _low, high, body = av
                repeats = high > 1
                if repeats and in_repeat:
                    return "has a repeat inside a repeat (like (a+)+)"
                if high > _LONG_REPEAT:
                    counts["unbounded"] += 1
                why = walk(body, in_repeat or repeats)
            elif name == "BRANCH":
                if in_repeat:
                    return "repeats an alternation (like (a|ab)+)"
                why = _first_reason(walk(branch, in_repeat) for branch in av[1])
            elif name == "SUBPATTERN":
                why = walk(av[3], in_repeat)
            elif name in ("ASSERT", "ASSERT_NOT"):
                why = walk(av[1], in_repeat)
            elif name == "ATOMIC_GROUP":
                why = walk(av, in_repeat)
            elif name == "GROUPREF_EXISTS":
                why = _first_reason(walk(p, in_repeat) for p in av[1:] if p is not None)
            else:
                why = None
            if why:
                return why
        return None

    try:
        why = walk(_parser.parse(text), False)
    except Exception:  # re.compile accepted it; a parser detail we do not know is not fatal
        return None
    if why is None and counts["unbounded"] > _MAX_UNBOUNDED:
        why = f"has {counts['unbounded']} unbounded repeats (like .* or \\d+; at most 2)"
    return why


def _first_reason(reasons: Iterable[str | None]) -> str | None:
    return next((r for r in reasons if r), None)


def dataset_salt(root: str | Path) -> str:
    """The per-dataset salt of the group hashes: the dataset folder's (or manifest's) name."""
    return f"refit-group:{Path(str(root)).name}"


def hash_group(salt: str, key: str) -> str:
    """The salted hash that stands for a raw group key everywhere (12 hex characters). The whole
    key is hashed: two keys that differ only late (long IDs, paths) stay two patients. Keys are
    bounded by what reads them (a 4 MiB DICOM header, a CSV cell). Unicode is normalised (NFC)
    first: "José" typed on a Mac and on Windows is one patient, not two across the split."""
    key = unicodedata.normalize("NFC", key)
    blob = f"{salt}\x00{key}".encode("utf-8", "surrogatepass")
    secret = user_key(GROUP_KEY_NAME)
    if secret is None:
        return hashlib.sha256(blob).hexdigest()[:_HASH_CHARS]
    return hmac.new(secret, blob, hashlib.sha256).hexdigest()[:_HASH_CHARS]


def group_key_from_dicom(path: str | Path) -> str | None:
    """The file's PatientID, or its StudyInstanceUID when it has none; None when the file is not
    DICOM or has neither. Reads the first 64 KiB of a regular file (the header; never a pipe),
    or the first 4 MiB when the header is longer, and never raises on bad input."""
    for size in (_DICOM_FIRST, _DICOM_HEAD):
        try:
            head = read_head(path, size)
        except OSError:
            return None
        try:
            # Through dicom.parse_header: quiet, and a deflated dataset (a possible zip bomb)
            # is refused before pydicom would inflate all of it.
            ds = parse_header(head, stop_before_pixels=True)
        except Exception:  # a hostile or cut header breaks the parser in many ways
            continue
        # A cut header may end inside the PatientID: trust it only when the file ended or a
        # later tag was read whole (tags come in ascending order).
        if len(head) < size or max(ds.keys(), default=0) > _LAST_KEY_TAG:
            for keyword in ("PatientID", "StudyInstanceUID"):
                value = str(getattr(ds, keyword, "") or "").strip()
                if value:
                    return value
            return None
    return None


def key_from_pattern(pattern: re.Pattern[str], rel: str) -> str | None:
    """The first capture group of ``pattern`` found in the first 256 characters of ``rel`` (a
    path relative to the root; :func:`parse_group_by` refused the patterns that backtrack)."""
    match = pattern.search(rel[:_MAX_SUBJECT])
    if match is None:
        return None
    value = match.group(1)
    return value or None


def attach_groups(
    index: DatasetIndex,
    group_by: str,
    *,
    manifest_keys: Mapping[str, str] | None = None,
    salt: str | None = None,
) -> DatasetIndex:
    """The index with each sample's hashed group key, and a warning for the images that have none.

    ``manifest_keys`` maps absolute paths to raw group keys (the manifest's ``group`` column).
    With ``group_by`` "" the index comes back unchanged. Raises GroupSpecError for a bad spec.
    """
    source, pattern = parse_group_by(group_by)
    if not source:
        return index
    root = Path(index.root)
    salt = dataset_salt(root) if salt is None else salt
    key_of = _key_function(source, pattern, root, manifest_keys or {})
    samples = []
    missing: list[str] = []
    for s in index.samples:
        key = key_of(s.path)
        if key is None:
            missing.append(s.path)
        samples.append(dataclasses.replace(s, group=None if key is None else hash_group(salt, key)))
    problems = list(index.problems)
    if missing:
        problems.append(_missing_problem(source, missing, root))
    return dataclasses.replace(index, samples=tuple(samples), problems=tuple(problems))


def _key_function(
    source: str, pattern: re.Pattern[str] | None, root: Path, manifest: Mapping[str, str]
) -> Callable[[str], str | None]:
    if source == DICOM:
        try:
            import pydicom  # noqa: F401  (the header reader; asked for once, before any file)
        except ImportError:
            raise DatasetError(
                "Grouping by DICOM PatientID needs the pydicom package, which is not installed; "
                "install it (pip install pydicom) or choose another group_by."
            ) from None
        return group_key_from_dicom
    if source == MANIFEST:
        return manifest.get
    assert pattern is not None

    def from_pattern(path: str) -> str | None:
        try:
            rel = Path(path).relative_to(root).as_posix()
        except ValueError:
            rel = Path(path).name
        return key_from_pattern(pattern, rel)

    return from_pattern


def _missing_problem(source: str, missing: list[str], root: Path) -> Problem:
    why = {
        DICOM: "no PatientID or StudyInstanceUID (or are not DICOM files)",
        MANIFEST: "an empty group column in the manifest",
    }.get(source, "a path the group pattern does not match")
    first = _rel(missing[0], root)
    return Problem(
        kind=ProblemKind.NO_GROUP,
        path=missing[0],
        message=f"{plural(len(missing), 'image')} ({first} first) {_have(len(missing))} {why}; "
        "each of them is "
        "split on its own as if it were a patient. Fix the source of the group keys if they "
        "belong to patients with other images.",
    )


def _have(n: int) -> str:
    return "has" if n == 1 else "have"


def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def crossing_groups_problems(index: DatasetIndex) -> list[Problem]:
    """LEAKAGE warnings for groups whose images lie in more than one of the train/val/test
    folders: the model is validated on patients it was trained on. Not fixed, only told."""
    if not index.has_splits:
        return []
    by_group: dict[str, dict[str, list[str]]] = {}
    for s in index.samples:
        if s.group is not None and s.split is not None:
            by_group.setdefault(s.group, {}).setdefault(s.split, []).append(s.path)
    root = Path(index.root)
    problems = []
    for group in sorted(by_group):
        splits = by_group[group]
        if len(splits) < 2:
            continue
        order = [name for name in ("train", "val", "test") if name in splits]
        named = "; ".join(
            f"{name}: "
            + ", ".join(_rel(p, root) for p in sorted(splits[name])[:2])
            + (f" and {len(splits[name]) - 2} more" if len(splits[name]) > 2 else "")
            for name in order
        )
        problems.append(
            Problem(
                kind=ProblemKind.GROUP_LEAKAGE,
                path=sorted(splits[order[-1]])[0],
                message=f"Patient (group) #{group} has images in {' and '.join(order)} ({named}); "
                "the validation result will be too optimistic. Move all of this patient's images "
                "into one split folder.",
            )
        )
    return problems


def has_groups(samples: Iterable[object]) -> bool:
    """Whether any of the samples carries a group key (text samples have none)."""
    return any(getattr(s, "group", None) is not None for s in samples)


def unit_of(sample: Sample) -> str:
    """The unit a split keeps together: the sample's group, else its content digest."""
    return f"g:{sample.group}" if sample.group is not None else f"d:{sample.digest}"


# Names that look like identifiers: a date (1980-03-14, 19800314, 14.03.1980), a run of six or
# more digits (a medical record number), or "DOB" / "birth" as a word.
_IDENTIFIER = re.compile(
    r"(?<!\d)(?:19|20)\d\d[-_.]?(?:0[1-9]|1[0-2])[-_.]?(?:0[1-9]|[12]\d|3[01])(?!\d)"
    r"|(?<!\d)(?:0[1-9]|[12]\d|3[01])[-_.](?:0[1-9]|1[0-2])[-_.](?:19|20)\d\d(?!\d)"
    r"|(?<!\d)\d{6,}(?!\d)"
    r"|(?<![a-z])(?:dob|birth)(?![a-z])",
    re.IGNORECASE,
)
_SHOWN_NAMES = 3
# Not identifiers, cut out before the check: a date followed by a time of day is when a camera,
# phone or scanner took the picture (IMG_20230514_123456, PXL_20230514_123456789, "Screenshot
# 2023-05-14 at 12.34.56"), not a birth date; a zero-padded counter (frame_000123, 00000042)
# has at most four significant digits, where a record number has six or more.
_NOT_IDENTIFIER = re.compile(
    r"(?<!\d)(?:19|20)\d\d[-_.]?(?:0[1-9]|1[0-2])[-_.]?(?:0[1-9]|[12]\d|3[01])"
    r"(?:[-_ T]|[ _-]at[ _-])(?:[01]\d|2[0-3])[-_.:]?[0-5]\d[-_.:]?[0-5]\d\d{0,3}(?!\d)"
    r"|(?<!\d)00+\d{1,4}(?!\d)",
    re.IGNORECASE,
)


def looks_like_identifier(name: str) -> bool:
    """Whether a file or folder name holds something like a date of birth or a record number
    (see ``_IDENTIFIER``), once capture timestamps and zero-padded counters are set aside."""
    return _IDENTIFIER.search(_NOT_IDENTIFIER.sub(" ", name)) is not None


def identifier_name_problem(index: DatasetIndex) -> Problem | None:
    """ONE warning when file or folder names look like they hold dates of birth or record
    numbers (protected health information travels with the names into logs and exports)."""
    root = Path(index.root)
    flagged = [
        (rel, s.path) for s in index.samples if looks_like_identifier(rel := _rel(s.path, root))
    ]
    if not flagged:
        return None
    names = [rel for rel, _ in flagged[:_SHOWN_NAMES]]
    shown = ", ".join(names) + (", …" if len(flagged) > _SHOWN_NAMES else "")
    n = len(flagged)
    return Problem(
        kind=ProblemKind.IDENTIFIER_NAME,
        path=flagged[0][1],
        message=f"{plural(n, 'image')} {_have(n)} file or folder names that look like dates "
        f"or record numbers ({shown}); if they identify patients, rename them (e.g. with "
        "study codes) before sharing runs or models, which keep the file names.",
    )


def check_groups(
    index: DatasetIndex,
    group_by: str = "",
    *,
    manifest_keys: Mapping[str, str] | None = None,
    task: Task | None = None,
    window: str = DEFAULT_WINDOW,
) -> DatasetIndex:
    """A scanned index with its group keys and what the patients-not-files checks find: groups
    that cross the split folders, near-duplicate images across them, identifier-like names.
    Without split folders, near-duplicates become ``twins`` that the split keeps together.
    Every image scan goes through here; with ``group_by`` "" and no manifest groups no keys
    are attached and the near-duplicates and names are still checked."""
    index = attach_groups(index, group_by, manifest_keys=manifest_keys)
    found = crossing_groups_problems(index) + index_near_duplicates(index, task, window)
    if not index.has_splits:
        # The split is still to be made: keep near-duplicates (a resized or re-encoded copy of an
        # image) on one side of it, patients in use or not.
        twins = (
            list(index.twins)
            if index.twins_found
            else near_duplicate_twins(index.samples, task=task, window=window)
        )
        notice = twins_problem(twins, index.root)
        if notice is not None:
            index = dataclasses.replace(index, twins=tuple(twins))
            found.append(notice)
    index = dataclasses.replace(index, leakage=leakage_record(index, found))
    named = identifier_name_problem(index)
    if named is not None:
        found.append(named)
    if not found:
        return index
    return dataclasses.replace(index, problems=index.problems + tuple(found))


def leakage_record(index: DatasetIndex, found: Sequence[Problem]) -> dict[str, int]:
    """Counts of what the leakage checks found (``found``: the checks' problems; the scan's
    exact copies are in ``index.problems``), for a run's summary and its report: with split
    folders, patients and near-duplicate pairs across them; without, the near-duplicate pairs the
    split keeps on one side; either way, exact copies left out of a second split."""

    def counted(problems: Iterable[Problem], kind: ProblemKind) -> int:
        return sum(max(0, int(p.count)) for p in problems if p.kind is kind)

    near = counted(found, ProblemKind.NEAR_DUPLICATE)
    return {
        "split_folders": int(index.has_splits),
        "patients_across": counted(found, ProblemKind.GROUP_LEAKAGE),
        "near_duplicates_across": near if index.has_splits else 0,
        "near_duplicates_kept_together": 0 if index.has_splits else near,
        "copies_left_out": counted(index.problems, ProblemKind.IN_TWO_SPLITS),
    }
