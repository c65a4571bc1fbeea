"""Every frame of a multi-frame DICOM file as a sample (``data.dicom_frames`` "all").

A cine loop, a tomosynthesis stack or an ultrasound clip is one file of many frames. With
"middle" (the default) the file is one sample, its middle frame. With "all" each frame becomes a
sample whose path is ``file.dcm#frame=N`` (:func:`engine.data.dicom.frame_path`): the loaders
(:func:`engine.data.images.load_image`) decode just that frame, and splits.json, thumbnails,
predictions and the mistakes gallery carry the path like any other.

The frames of one file are one patient's, nearly identical, and must never be split apart (a
model would be validated on the neighbours of frames it trained on): every frame keeps the
file's group, the salted PatientID hash when grouping by patient, else a salted hash of the
file's own path, so the stratified group split keeps them on one side. Each frame's digest is
the file's with the frame number appended (the split and the duplicate checks key on digests).

Guards: at most :data:`MAX_FRAMES_PER_FILE` frames of a file (evenly spaced, first and last
included) and :data:`MAX_SAMPLES` samples in all; past either, the rest keep fewer frames and a
warning says so. A file's header gives its frame count; its last chosen frame is decoded once,
so that a file cut short (a truncated copy) keeps its middle frame instead of failing mid-run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from engine.data.dicom import MAX_FRAMES_PER_FILE, frame_count, frame_path, is_dicom
from engine.data.groups import dataset_salt, hash_group
from engine.data.index import DatasetIndex, Sample
from engine.data.problems import Problem, ProblemKind
from engine.data.safe_read import FileReadError, read_head
from engine.task import Task, as_task

FRAME_CHOICES = ("middle", "all")
#: Samples of a dataset at most once frames are expanded (about 100k frames of 512x512 in
#: memory-mapped features is what a laptop trains on in a sitting).
MAX_SAMPLES = 100_000
#: Bytes of a file read to find its NumberOfFrames: the header comes before the pixels.
HEADER_BYTES = 1024 * 1024


def check_frames(frames: str) -> str:
    """``frames`` when it is one of :data:`FRAME_CHOICES`, else ValueError naming them."""
    if frames not in FRAME_CHOICES:
        raise ValueError(f"The DICOM frames {frames!r} is not one of {', '.join(FRAME_CHOICES)}.")
    return frames


def chosen_frames(count: int, cap: int = MAX_FRAMES_PER_FILE) -> list[int]:
    """The frame numbers of a file of ``count`` frames that become samples: all of them, or
    ``cap`` evenly spaced ones (first and last included) when there are more."""
    if count <= cap:
        return list(range(count))
    return sorted(set(np.rint(np.linspace(0, count - 1, cap)).astype(int).tolist()))


def expand_frames(
    index: DatasetIndex,
    frames: str,
    *,
    max_samples: int = MAX_SAMPLES,
    task: Task | None = None,
) -> DatasetIndex:
    """``index`` with each multi-frame DICOM sample replaced by one sample a frame when
    ``frames`` is "all" (``index`` itself for "middle" or when no file has several frames)."""
    if check_frames(frames) != "all":
        return index
    task = as_task(task)
    salt = dataset_salt(index.root)
    base = Path(index.root)
    base = base if base.is_dir() else base.parent
    out: list[Sample] = []
    problems: list[Problem] = []
    capped: list[str] = []
    short: list[str] = []  # files whose last frame does not decode
    total = len(index.samples)
    full = False
    for n, sample in enumerate(index.samples):
        if n % 64 == 0:
            task.check()
        count = 1 if full else file_frame_count(sample.path)
        if count <= 1:
            out.append(sample)
            continue
        chosen = chosen_frames(count)
        if not _last_frame_decodes(sample.path, chosen[-1]):
            short.append(_rel(sample.path, base))
            out.append(sample)  # the scan decoded its middle frame: that one is used
            continue
        if total + len(chosen) - 1 > max_samples:
            full = True
            out.append(sample)  # its middle frame, as with "middle"
            continue
        if len(chosen) < count:
            capped.append(_rel(sample.path, base))
        total += len(chosen) - 1
        group = sample.group or hash_group(salt, "file:" + _rel(sample.path, base))
        out.extend(
            dataclasses.replace(
                sample, path=frame_path(sample.path, f), digest=f"{sample.digest}#{f}", group=group
            )
            for f in chosen
        )
    if capped:
        problems.append(
            Problem(
                kind=ProblemKind.FILE_TOO_BIG,
                path=capped[0],
                message=f"{len(capped)} DICOM file{'s have' if len(capped) > 1 else ' has'} more "
                f"than {MAX_FRAMES_PER_FILE} frames (first: {capped[0]}); "
                f"{MAX_FRAMES_PER_FILE} evenly spaced frames of each are used.",
            )
        )
    if short:
        problems.append(
            Problem(
                kind=ProblemKind.TRUNCATED,
                path=short[0],
                message=(
                    f"{len(short)} multi-frame DICOM file(s) hold fewer frames than their header "
                    f"says (first: {short[0]}); of these only the middle frame is used. Re-export "
                    "them to use every frame."
                ),
            )
        )
    if full:
        problems.append(
            Problem(
                kind=ProblemKind.FILE_TOO_BIG,
                message=f"Every frame of every file would make more than {max_samples:,} "
                "samples; the files past that limit give their middle frame only. Choose the "
                "middle frame, or split the folder.",
            )
        )
    if len(out) == len(index.samples) and not problems:
        return index
    return dataclasses.replace(
        index, samples=tuple(out), problems=tuple(index.problems) + tuple(problems)
    )


def file_frame_count(path: str | Path) -> int:
    """Frames of the file at ``path`` (1 when it is not DICOM or cannot be read)."""
    if Path(path).suffix.lower() not in ("", ".dcm", ".dicom"):
        return 1  # the scan reads only these as DICOM
    try:
        head = read_head(path, HEADER_BYTES)
    except FileReadError:
        return 1
    return frame_count(head) if is_dicom(head) else 1


def _last_frame_decodes(path: str, frame: int) -> bool:
    """Whether the last frame to be used decodes: a file cut short loses its last frames first,
    and the scan decoded only the middle one (one more decode a multi-frame file)."""
    from engine.data.images import load_image
    from engine.data.problems import ImageError

    try:
        load_image(frame_path(path, frame))
    except (ImageError, OSError):
        return False
    return True


def _rel(path: str, base: Path) -> str:
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return Path(path).name
