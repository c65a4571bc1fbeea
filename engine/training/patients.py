"""Patients (groups) and images per split of a run, and whether its DICOM files declared
themselves de-identified: for its log and its summary.

A run split by patient (``data.group_by``) says so in numbers a reviewer can check: how many
patients and how many images each side holds. Only counts leave this module: the group hashes
are counted, never written, and raw keys never get here at all (samples hold salted hashes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_SPLIT_WORDS = (("train", "train"), ("val", "validation"), ("test", "test"))


def split_patients(data: Any) -> dict[str, dict[str, int]] | None:
    """``{"train": {"patients": 14, "images": 37}, "val": {...}, "test": {...}}`` of a run's
    data (a split with no examples is left out), or None when no example has a group. An image
    without a group counts as a patient of its own, as the split treats it."""
    splits: dict[str, Sequence[Any]] = {name: getattr(data, name, ()) for name, _ in _SPLIT_WORDS}
    if not any(getattr(s, "group", None) is not None for v in splits.values() for s in v):
        return None
    out: dict[str, dict[str, int]] = {}
    for name, samples in splits.items():
        if not samples:
            continue
        units = {
            ("g", s.group) if getattr(s, "group", None) is not None else ("i", i)
            for i, s in enumerate(samples)
        }
        out[name] = {"patients": len(units), "images": len(samples)}
    return out


def patients_sentence(counts: Mapping[str, Mapping[str, int]]) -> str:
    """One log line, e.g. "Split by patient: 14 patients (37 images) train, 4 patients
    (11 images) validation." (counts of :func:`split_patients` or summary.json's ``patients``)."""
    parts = []
    for name, word in _SPLIT_WORDS:
        c = counts.get(name)
        if not c:
            continue
        patients, images = int(c.get("patients", 0)), int(c.get("images", 0))
        parts.append(
            f"{patients} patient{'s' if patients != 1 else ''} "
            f"({images} image{'s' if images != 1 else ''}) {word}"
        )
    return "Split by patient: " + ", ".join(parts) + "."


def dicom_record(data: Any) -> dict[str, int] | None:
    """``{"files": 40, "declare_deidentified": 12}`` of a run's scanned data (None when it
    holds no DICOM file, or was not scanned in this process: a resumed run)."""
    files = int(getattr(data, "dicom_files", 0) or 0)
    if files <= 0:
        return None
    return {"files": files, "declare_deidentified": int(getattr(data, "dicom_deidentified", 0))}


def deidentified_sentence(record: Mapping[str, int]) -> str:
    """ "12 of 40 DICOM files declare PatientIdentityRemoved=YES." for a report or a log."""
    files, declared = int(record.get("files", 0)), int(record.get("declare_deidentified", 0))
    verb = "declares" if declared == 1 and files == 1 else "declare"
    noun = "file" if files == 1 else "files"
    return f"{declared} of {files} DICOM {noun} {verb} PatientIdentityRemoved=YES."
