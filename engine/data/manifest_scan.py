"""Scanning the images a manifest CSV lists, as a folder scan scans a class folder, and
:func:`scan_image_source`, the one entry of every image scan (a folder or a manifest).

The rows come from :mod:`engine.data.manifest`; each image is then read, hashed and decoded by
the same code as a folder scan (:mod:`engine.data.scan`), so copies, conflicting labels, bad files
and small classes are told in the same sentences. The index's root is the CSV's folder (the
paths are relative to it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine.data.dicom import DEFAULT_WINDOW
from engine.data.frames import check_frames, expand_frames
from engine.data.groups import attach_groups, check_groups, dataset_salt, parse_group_by
from engine.data.index import DatasetIndex
from engine.data.manifest import is_image_manifest, read_manifest
from engine.data.problems import Problem, ProblemKind
from engine.data.review import review_samples
from engine.data.scan import Candidate, Walk, check_files, finish_scan, scan_folder
from engine.task import Task, as_task


def scan_image_source(
    source: str | Path,
    *,
    min_per_class: int = 2,
    group_by: str = "",
    task: Task | None = None,
    index: DatasetIndex | None = None,
    window: str = DEFAULT_WINDOW,
    frames: str = "middle",
) -> DatasetIndex:
    """Scan an image folder or manifest CSV, attach group keys (``group_by``, see
    :mod:`engine.data.groups`) and add the leakage and identifier checks. ``index``: a folder
    scan already made (the prefetching child's), so only the checks run. ``window``: the DICOM
    window files are decoded with (data.dicom_window; the intensity statistics are of those
    pixels). ``frames``: data.dicom_frames ("all": every frame of a multi-frame DICOM file a
    sample, its frames in one group; :func:`engine.data.frames.expand_frames`). A bad
    ``group_by`` is refused (GroupSpecError) before any file is read."""
    parse_group_by(group_by)
    check_frames(frames)
    if index is None and is_image_manifest(source):
        found = scan_manifest(
            source, min_per_class=min_per_class, group_by=group_by, task=task, window=window
        )
        return expand_frames(check_groups(found, "", task=task, window=window), frames, task=task)
    if index is None:
        index = scan_folder(source, min_per_class=min_per_class, task=task, window=window)
    return expand_frames(check_groups(index, group_by, task=task, window=window), frames, task=task)


def scan_manifest(
    csv_path: str | Path,
    *,
    min_per_class: int = 2,
    group_by: str = "",
    task: Task | None = None,
    workers: int | None = None,
    window: str = DEFAULT_WINDOW,
) -> DatasetIndex:
    """Index the images listed in the manifest at ``csv_path`` (DICOM files decoded with
    ``window``).

    The manifest's ``group`` column gives the groups when ``group_by`` is "" or "manifest";
    another ``group_by`` ("dicom", "pattern:...") is applied to the listed files instead.
    Raises DatasetError when the manifest as a whole is unusable, Cancelled on cancel.
    """
    task = as_task(task)
    manifest = read_manifest(csv_path, task)
    root = Path(manifest.folder)
    walk = Walk(problems=list(manifest.problems))
    has_splits = manifest.has_split and any(r.split for r in manifest.rows)
    for row in manifest.rows:
        split = (row.split or "train") if has_splits else None
        walk.candidates.append(Candidate(path=row.path, rel=row.rel, cls=row.label, split=split))
    digests = check_files(walk, root, task, workers, window=window)
    samples, review_problems = review_samples(walk.candidates, digests)
    walk.problems.extend(review_problems)
    index = finish_scan(root, walk, samples, min_per_class, has_splits=has_splits)
    index = _manifest_fatal(index, manifest.csv_path)
    source, _ = parse_group_by(group_by)
    if source in ("", "manifest") and manifest.has_group:
        keys = {r.path: r.group for r in manifest.rows if r.group}
        return attach_groups(
            index, "manifest", manifest_keys=keys, salt=dataset_salt(manifest.csv_path)
        )
    if source and source != "manifest":
        return attach_groups(index, group_by, salt=dataset_salt(manifest.csv_path))
    return index


def _manifest_fatal(index: DatasetIndex, csv_path: str) -> DatasetIndex:
    """The folder scan's fatal sentences speak of class folders; a manifest has label values."""
    problems = list(index.problems)
    for i, p in enumerate(problems):
        if p.severity != "error":
            continue
        if p.kind is ProblemKind.EMPTY_DATASET:
            message = (
                f"The manifest {csv_path} lists no class with enough usable images; check its "
                "file and label columns and that the images are next to it."
            )
        elif p.kind is ProblemKind.SINGLE_CLASS:
            message = (
                f"The manifest {csv_path} has only one class with enough images "
                f"('{index.classes[0]}'); a classifier needs at least two labels."
            )
        else:
            continue
        problems[i] = Problem(kind=p.kind, path=csv_path, severity="error", message=message)
    return dataclasses.replace(index, problems=tuple(problems))
