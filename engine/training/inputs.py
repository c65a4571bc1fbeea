"""What a run trains on: the scanned, split dataset, saved in the run folder for resume."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from engine.config import ClassWeights, RunConfig
from engine.data import (
    DatasetError,
    Problem,
    Sample,
    TextSample,
    detect_modality,
    split_samples,
)
from engine.data.intensity import (
    IntensityReport,
    intensity_reason,
    resolve_intensity,
    stored_intensity,
)
from engine.data.split import missing_class_problems
from engine.modalities import modality_of
from engine.runs import REMEDY, RunDir, RunFileError
from engine.task import Task

AnySample = Sample | TextSample


def image_samples(samples: Sequence[AnySample]) -> Sequence[Sample]:
    """``samples`` of an image run, typed as such (an image run's splits hold only images)."""
    return cast("Sequence[Sample]", samples)


def text_samples(samples: Sequence[AnySample]) -> Sequence[TextSample]:
    """``samples`` of a text run, typed as such (a text run's splits hold only texts)."""
    return cast("Sequence[TextSample]", samples)


@dataclass(frozen=True)
class RunData:
    """Classes and split samples of one run: images (Sample) or texts (TextSample).

    A text run stores its texts in splits.json, so it resumes even when the source file changes.
    """

    root: str
    classes: tuple[str, ...]
    train: tuple[AnySample, ...]
    val: tuple[AnySample, ...]
    test: tuple[AnySample, ...]
    problems: tuple[Problem, ...] = ()
    modality: str = "image"
    intensity: IntensityReport | None = None  # from the scan; not stored in splits.json
    # From the scan (not stored in splits.json): usable DICOM files, and how many of them
    # declare themselves de-identified (PatientIdentityRemoved YES).
    dicom_files: int = 0
    dicom_deidentified: int = 0
    leakage: dict[str, int] | None = None  # what the scan's leakage checks found (counts)

    def to_dict(self) -> dict:
        rows = modality_of(self.modality).rows

        return {
            "root": self.root,
            "modality": self.modality,
            "classes": list(self.classes),
            "train": rows(self.train),
            "val": rows(self.val),
            "test": rows(self.test),
        }

    @classmethod
    def from_dict(cls, data: dict) -> RunData:
        modality = data.get("modality", "image")
        kind = modality_of(modality)

        def samples(split: str) -> tuple[AnySample, ...]:
            return kind.samples(data.get(split, []), split)

        return cls(
            root=data["root"],
            classes=tuple(data["classes"]),
            train=samples("train"),
            val=samples("val"),
            test=samples("test"),
            modality=modality,
        )

    @classmethod
    def read(cls, run: RunDir) -> RunData | None:
        """The split saved in the run's splits.json; None before training started, RunFileError
        when the file is damaged."""
        data = run.splits()
        if not data:
            return None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunFileError(
                f"The run file {run.splits_path} does not hold the run's split "
                f"({type(exc).__name__}: {exc}); {REMEDY}."
            ) from exc


def prepare_data(
    config: RunConfig,
    *,
    task: Task | None = None,
) -> RunData:
    """Scan the dataset folder and split it; raises DatasetError with one sentence if unusable.
    ``task`` gets the scan's progress."""
    if not config.data.path:
        raise DatasetError(
            "No dataset was given; choose a folder of labeled images or texts, or a table file."
        )
    modality = modality_of(detect_modality(config.data.path))
    index = modality.scan_for_run(config, task=task)
    index.raise_if_unusable()
    what = modality.noun
    splits = split_samples(
        index,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        seed=config.data.split_seed,
    )
    if not splits.train:
        raise DatasetError(f"The dataset {config.data.path} leaves no {what} for training.")
    if not splits.val:
        groups = {s.group for s in index.samples if getattr(s, "group", None) is not None}
        if groups:  # more images of the same patients cannot help
            raise DatasetError(
                f"The dataset {config.data.path} leaves no {what} for validation: its "
                f"{len(groups)} patients (groups) are too few to keep one aside at a "
                f"{config.data.val_fraction:.0%} validation share; add images of more patients, "
                "raise the validation share, or give a split column or val/ folder."
            )
        raise DatasetError(
            f"The dataset {config.data.path} leaves no {what} for validation; add a val/ folder "
            f"or more {what} per class."
        )
    return RunData(
        root=index.root,
        classes=index.classes,
        train=splits.train,
        val=splits.val,
        test=splits.test,
        problems=index.problems + tuple(missing_class_problems(splits, index.classes)),
        modality=modality.name,
        intensity=getattr(index, "intensity", None),
        dicom_files=int(getattr(index, "dicom_files", 0)),
        dicom_deidentified=int(getattr(index, "dicom_deidentified", 0)),
        leakage=getattr(index, "leakage", None),
    )


def run_intensity(
    config: RunConfig, data: RunData, run: RunDir, *, resuming: bool
) -> tuple[str, str]:
    """The intensity stretch an image run uses ("off" or "percentile") and a log sentence.

    ``auto`` is resolved once, from the scan, when the run starts; the resolved value lives in
    state.json (not the config), so a resume, a prediction or an export uses the same pixels.
    """
    if resuming:
        resolved = stored_intensity(run.state())
        return resolved, ""
    mode = str(config.data.intensity)
    resolved = resolve_intensity(mode, data.intensity)
    return resolved, intensity_reason(mode, resolved, data.intensity)


def load_run_data(run: RunDir) -> RunData:
    """The exact split a run was started with (for resume)."""
    rd = RunData.read(run)
    if rd is None:
        raise DatasetError(f"The run {run.run_id} has no splits.json; it cannot be resumed.")
    modality_of(rd.modality).check_resumable(rd, run.run_id)
    return rd


def class_weight_tensor(data: RunData, mode: ClassWeights) -> torch.Tensor | None:
    """Inverse-frequency weights (``balanced``, as scikit-learn defines them) or None."""
    if mode is ClassWeights.NONE:
        return None
    counts = Counter(s.label for s in data.train)
    n, k = len(data.train), len(data.classes)
    return torch.tensor([n / (k * max(1, counts.get(c, 0))) for c in range(k)], dtype=torch.float32)
