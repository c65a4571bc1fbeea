"""Scanning a labeled folder: which images are usable, under which class, and what is wrong.

DICOM files (``.dcm``, ``.dicom``, or no extension and the "DICM" marker) are images like any
other; 3-D volumes (NIfTI and the like) are reported as not read yet.

Layouts: ``root/<class>/...`` (flat), or ``root/train/<class>/...`` with ``val/`` and optionally
``test/`` beside it (split folders, names matched case-insensitively). Images may sit in
sub-folders of a class folder. Nothing is ever written inside ``root``. Links are followed only
inside ``root``, special files are never opened, and each file is read up to a size cap: see
:mod:`engine.data.walk` and :mod:`engine.data.safe_read`.

A cancelled scan raises :class:`engine.task.Cancelled` rather than returning a partial index, so
a half-scanned folder can never be trained on by mistake.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.classes import keep_classes
from engine.data.dicom import DEFAULT_WINDOW, declares_deidentified, is_dicom, is_volume_name
from engine.data.images import IMAGE_EXTENSIONS, decode_image, volume_error
from engine.data.index import DatasetIndex, Sample
from engine.data.intensity import IntensityReport, IntensityStats, image_stats
from engine.data.modality import unusable_source
from engine.data.problems import (
    DatasetError,
    ImageError,
    Problem,
    ProblemKind,
    file_problem,
)
from engine.data.review import Reviewed, review_samples
from engine.data.safe_read import IMAGE_LIMIT, FileReadError, read_capped, read_head
from engine.data.walk import SPLIT_NAMES, DatasetWalk, is_hidden
from engine.task import Task, as_task


@dataclass
class Candidate:
    path: str  # absolute
    rel: str  # relative to root, with forward slashes
    cls: str
    split: str | None


@dataclass
class Walk:
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    folders: dict[tuple[str | None, str], str] = field(default_factory=dict)  # -> folder path
    stats: dict[str, IntensityStats] = field(default_factory=dict)  # digest -> pixel statistics
    # digest of each DICOM file -> whether it declares PatientIdentityRemoved YES
    deidentified: dict[str, bool] = field(default_factory=dict)


def scan_folder(
    root: str | Path,
    *,
    min_per_class: int = 2,
    task: Task | None = None,
    workers: int | None = None,
    window: str = DEFAULT_WINDOW,
) -> DatasetIndex:
    """Index the images under ``root``; every file is decoded once to prove it is usable.

    DICOM files are decoded with ``window`` (a run's ``data.dicom_window``), so the intensity
    statistics are those of the pixels the run will see.

    Raises DatasetError when ``root`` is missing, not a folder or unreadable, and Cancelled when
    ``task`` is cancelled; everything else is reported in ``DatasetIndex.problems``. The task's
    ``report(done, total)`` is called at most about a hundred times.
    """
    task = as_task(task)
    root_path = Path(os.path.abspath(Path(root).expanduser()))
    entries = _list_root(root_path)
    walk = Walk()
    safe = DatasetWalk(root_path, walk.problems, task)
    kinds = {entry.name: safe.kind(entry) for entry in entries}  # skipped ones are told here
    split_dirs = _split_dirs(root_path, entries, kinds)
    for entry in entries:
        kind = kinds[entry.name]
        if kind is None:
            continue
        if not split_dirs:
            _visit(walk, safe, entry, None, kind)
            continue
        split = SPLIT_NAMES.get(entry.name.lower())
        if kind != "dir":
            _stray(walk, root_path, entry, "is not inside a class folder")
        elif split is None:
            _stray(walk, root_path, entry, "is not a train, val or test folder")
        elif split_dirs[split] != entry.name:
            _stray(walk, root_path, entry, f"is a second {split} folder")
        else:
            for sub in safe.entries(entry.path):
                _visit(walk, safe, sub, split, safe.kind(sub))

    digests = check_files(walk, root_path, task, workers, window=window)
    samples, review_problems = review_samples(walk.candidates, digests)
    walk.problems.extend(review_problems)
    return finish_scan(root_path, walk, samples, min_per_class, has_splits=bool(split_dirs))


def _list_root(root: Path) -> list[os.DirEntry]:
    if not root.is_dir():
        raise DatasetError(unusable_source(root))
    try:
        with os.scandir(root) as it:
            entries = [e for e in it if not is_hidden(e.name)]
    except OSError as exc:
        raise DatasetError(
            f"The folder {root} cannot be read ({exc.strerror or exc}); check its permissions."
        ) from exc
    return sorted(entries, key=lambda e: e.name)


def _split_dirs(
    root: Path, entries: list[os.DirEntry], kinds: dict[str, str | None]
) -> dict[str, str]:
    """{"train": folder name, ...} when the root uses split folders, else {}.

    A train folder that holds sub-folders marks the layout; a class that happens to be named
    "train" holds images directly and keeps the flat layout.
    """
    found: dict[str, str] = {}
    for entry in entries:
        split = SPLIT_NAMES.get(entry.name.lower())
        if split and kinds[entry.name] == "dir" and split not in found:
            found[split] = entry.name
    if "train" not in found:
        return {}
    try:
        with os.scandir(root / found["train"]) as it:
            has_sub = any(e.is_dir() and not is_hidden(e.name) for e in it)
    except OSError:
        has_sub = False
    return found if has_sub else {}


def _visit(
    walk: Walk, safe: DatasetWalk, entry: os.DirEntry, split: str | None, kind: str | None
) -> None:
    """One entry of the root (or of a split folder): a class folder, or a stray file."""
    if kind is None:
        return
    root = safe.root
    if kind != "dir":
        _stray(walk, root, entry, "is not inside a class folder")
        return
    cls = entry.name
    walk.folders.setdefault((split, cls), entry.path)
    for path in safe.files(entry.path):
        rel = safe.rel(path)
        ext = Path(path).suffix.lower()
        if is_volume_name(path):
            walk.problems.append(
                file_problem(rel, path, ProblemKind.NOT_IMAGE, volume_error(rel).reason)
            )
            continue
        if ext not in IMAGE_EXTENSIONS and not (not ext and _starts_like_dicom(path)):
            why = f"{ext} files are not read" if ext else "it has no file extension"
            walk.problems.append(
                file_problem(rel, path, ProblemKind.NOT_IMAGE, f"is not an image file ({why})")
            )
            continue
        walk.candidates.append(Candidate(path=path, rel=rel, cls=cls, split=split))


def _starts_like_dicom(path: str) -> bool:
    """Whether a file without an extension is a DICOM file (many scanners write them so)."""
    try:
        return is_dicom(read_head(path, 132))
    except FileReadError:
        return False


def _stray(walk: Walk, root: Path, entry: os.DirEntry, what: str) -> None:
    rel = Path(entry.path).relative_to(root).as_posix()
    walk.problems.append(
        Problem(
            kind=ProblemKind.STRAY_FILE,
            path=entry.path,
            message=f"{rel} {what}; it is ignored.",
        )
    )


_STATS_SIDE = 64
_Checked = tuple[str | None, Problem | None, IntensityStats | None, bool | None]


def _check_file(path: str, rel: str, window: str = DEFAULT_WINDOW) -> _Checked:
    """Read, hash and decode one file: (digest, None, pixel statistics, de-identified) or
    (None, problem, None, None); de-identified is None for a file that is not DICOM, else
    whether it declares PatientIdentityRemoved YES.

    The statistics come from the picture decoded anyway (JPEGs at a reduced scale): no second
    pass over the folder."""
    try:
        data = read_capped(path, IMAGE_LIMIT, what="image")
    except FileReadError as exc:
        return None, file_problem(rel, path, exc.kind, exc.reason), None, None
    try:
        # JPEGs are decoded at a reduced scale, but never below a 64-pixel short side: the
        # intensity statistics of a few dozen averaged pixels would call a photo flat.
        image = decode_image(data, rel, min_size=_STATS_SIDE, window=window)
    except ImageError as exc:
        problem = file_problem(rel, path, exc.kind, exc.reason, advised=exc.advised)
        return None, problem, None, None
    declared = declares_deidentified(data) if is_dicom(data) else None
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return digest, None, image_stats(image), declared


def check_files(
    walk: Walk,
    root: Path,
    task: Task,
    workers: int | None,
    *,
    window: str = DEFAULT_WINDOW,
) -> list[str | None]:
    """Digest of every candidate (None when unusable; its problem is added to ``walk``); DICOM
    files decoded with ``window``."""
    items = walk.candidates
    total = len(items)
    results: list[_Checked] = [(None, None, None, None)] * total
    reporter = _Progress(task, total)
    n_workers = min(8, os.cpu_count() or 1) if workers is None else workers
    if n_workers <= 1:
        for i, c in enumerate(items):
            task.check_cancelled()
            results[i] = _check_file(c.path, c.rel, window)
            reporter.update(i + 1)
    else:
        # A bounded window of files in flight: cancel stays quick and wait() stays cheap.
        in_flight = 4 * n_workers
        pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="refit-scan")
        pending: dict[Future, int] = {}
        next_i = done = 0
        try:
            while done < total:
                while next_i < total and len(pending) < in_flight:
                    c = items[next_i]
                    pending[pool.submit(_check_file, c.path, c.rel, window)] = next_i
                    next_i += 1
                finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                task.check_cancelled()
                for fut in finished:
                    results[pending.pop(fut)] = fut.result()
                    done += 1
                reporter.update(done)
        finally:
            # On cancel or Ctrl+C, return at once: queued files are dropped and the few in
            # flight (each a regular file under the size cap) finish on their own.
            pool.shutdown(wait=False, cancel_futures=True)
    for digest, problem, stats, declared in results:
        if problem is not None:
            walk.problems.append(problem)
        if digest is not None and stats is not None:
            walk.stats[digest] = stats
        if digest is not None and declared is not None:
            walk.deidentified[digest] = declared
    return [digest for digest, _, _, _ in results]


class _Progress:
    """Calls ``task.report(done, total)`` only when the whole percentage changes."""

    def __init__(self, task: Task, total: int) -> None:
        self.task, self.total, self.last = task, total, -1
        self.update(0)

    def update(self, done: int) -> None:
        pct = 100 if self.total == 0 else done * 100 // self.total
        if pct != self.last:
            self.last = pct
            self.task.report(done, self.total)


def finish_scan(
    root: Path, walk: Walk, samples: list[Reviewed], min_per_class: int, *, has_splits: bool
) -> DatasetIndex:
    """Leave out classes that are too small, number the rest, and find fatal problems."""
    per_class = Counter(s.cls for s in samples)
    train_per_class = Counter(s.cls for s in samples if s.split == "train")
    names = sorted({cls for _, cls in walk.folders} | set(per_class))
    kept, left_out = keep_classes(
        names,
        per_class,
        train_per_class,
        min_per_class=min_per_class,
        has_splits=has_splits,
        unit="image",
        path_of=lambda cls: _class_path(walk, cls),
    )
    problems = list(walk.problems) + left_out
    label = {cls: i for i, cls in enumerate(kept)}
    final = tuple(
        Sample(path=s.path, label=label[s.cls], split=s.split, digest=s.digest)
        for s in samples
        if s.cls in label
    )
    fatal = _fatal(root, kept, dropped=len(names) - len(kept))
    if fatal is not None:
        problems.insert(0, fatal)
    measured = [(s.path, walk.stats[s.digest]) for s in final if s.digest in walk.stats]
    intensity = IntensityReport.of([stats for _, stats in measured])
    # The notice points at one narrow image, so a click on it shows what is meant.
    example = next((path for path, stats in measured if stats.narrow), str(root))
    notice = intensity.problem(example)
    if notice is not None:
        problems.append(notice)
    declared = [walk.deidentified[s.digest] for s in final if s.digest in walk.deidentified]
    return DatasetIndex(
        root=str(root),
        classes=tuple(kept),
        samples=final,
        problems=tuple(problems),
        has_splits=has_splits,
        intensity=intensity,
        dicom_files=len(declared),
        dicom_deidentified=sum(declared),
    )


def _class_path(walk: Walk, cls: str) -> str | None:
    """The class's folder (its train folder in the split layout)."""
    paths = {split: path for (split, name), path in walk.folders.items() if name == cls}
    return paths.get("train") or paths.get(None) or next(iter(paths.values()), None)


def _fatal(root: Path, kept: list[str], *, dropped: int) -> Problem | None:
    if not kept:
        return Problem(
            kind=ProblemKind.EMPTY_DATASET,
            path=str(root),
            severity="error",
            message=f"The folder {root} has no class folders with enough usable images; put "
            "each class's images in a subfolder named after the class."
            if dropped
            else f"The folder {root} has no class folders with images; put each class's images in "
            "a subfolder named after the class.",
        )
    if len(kept) == 1:
        enough = " with enough images" if dropped else ""
        return Problem(
            kind=ProblemKind.SINGLE_CLASS,
            path=str(root),
            severity="error",
            message=f"The folder {root} has only one class{enough} ('{kept[0]}'); a classifier "
            "needs at least two classes. Add a folder per class.",
        )
    return None
