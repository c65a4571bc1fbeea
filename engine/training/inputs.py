"""What a run trains on: the scanned, split dataset, saved in the run folder for resume."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config import ClassWeights, RunConfig
from engine.data import DatasetError, Problem, Sample, ScanCancelled, scan_folder, split_samples
from engine.runs import RunDir
from engine.training.control import Cancelled, RunControl


@dataclass(frozen=True)
class RunData:
    """Classes and split samples of one run."""

    root: str
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict:
        def rows(samples: tuple[Sample, ...]) -> list[list]:
            return [[s.path, s.label, s.digest] for s in samples]

        return {
            "root": self.root,
            "classes": list(self.classes),
            "train": rows(self.train),
            "val": rows(self.val),
            "test": rows(self.test),
        }

    @classmethod
    def from_dict(cls, data: dict) -> RunData:
        def samples(split: str) -> tuple[Sample, ...]:
            return tuple(
                Sample(path=p, label=int(label), split=split, digest=d)
                for p, label, d in data.get(split, [])
            )

        return cls(
            root=data["root"],
            classes=tuple(data["classes"]),
            train=samples("train"),
            val=samples("val"),
            test=samples("test"),
        )


def prepare_data(
    config: RunConfig,
    *,
    control: RunControl | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunData:
    """Scan the dataset folder and split it; raises DatasetError with one sentence if unusable."""
    if not config.data.path:
        raise DatasetError("No dataset folder was given; choose a folder of labeled images.")
    try:
        index = scan_folder(
            config.data.path,
            min_per_class=config.data.min_per_class,
            progress=on_progress,
            cancel=control.cancel_event if control else None,
        )
    except ScanCancelled:
        raise Cancelled() from None
    index.raise_if_unusable()
    splits = split_samples(
        index,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        seed=config.data.split_seed,
    )
    if not splits.train:
        raise DatasetError(f"The folder {config.data.path} leaves no images for training.")
    if not splits.val:
        raise DatasetError(
            f"The folder {config.data.path} leaves no images for validation; add a val/ folder "
            "or more images per class."
        )
    return RunData(
        root=index.root,
        classes=index.classes,
        train=splits.train,
        val=splits.val,
        test=splits.test,
        problems=index.problems,
    )


def load_run_data(run: RunDir) -> RunData:
    """The exact split a run was started with (for resume)."""
    data = run.splits()
    if not data:
        raise DatasetError(f"The run {run.run_id} has no splits.json; it cannot be resumed.")
    rd = RunData.from_dict(data)
    missing = [s.path for s in rd.train + rd.val if not Path(s.path).is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} images of this run are gone (first: {missing[0]}); the run cannot "
            "be resumed on the same data."
        )
    return rd


def class_weight_tensor(data: RunData, mode: ClassWeights) -> torch.Tensor | None:
    """Inverse-frequency weights (``balanced``, as scikit-learn defines them) or None."""
    if mode is ClassWeights.NONE:
        return None
    counts = Counter(s.label for s in data.train)
    n, k = len(data.train), len(data.classes)
    return torch.tensor([n / (k * max(1, counts.get(c, 0))) for c in range(k)], dtype=torch.float32)
