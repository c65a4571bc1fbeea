"""Class probabilities of every example of a run's validation (or unlocked test) split."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.problems import DatasetError
from engine.files import write_bytes_atomic
from engine.modalities import modality_of
from engine.runs import RunDir
from engine.task import Task, as_task

SPLITS = ("val", "test")
_FORMAT = 1


class TestSplitLocked(PermissionError):
    """The test split is evaluated only when the user unlocks it (allow_test / --test)."""

    __test__ = False  # not a pytest test class, despite its name


class PredictionError(DatasetError):
    """Predictions that cannot be made or read; the message is one sentence for the user."""


@dataclass(frozen=True, eq=False)
class SplitPredictions:
    """Softmax probabilities of one run on every example of one split, in splits.json order."""

    run_id: str
    split: str
    classes: tuple[str, ...]
    refs: tuple[str, ...]
    digests: tuple[str, ...]
    labels: np.ndarray
    probs: np.ndarray
    checkpoint: str
    modality: str
    #: training examples per class (from splits.json): picks a two-class problem's positive class
    train_counts: tuple[int, ...] = ()
    #: size and mtime of the checkpoint file predicted with: tells whether saved ones are stale
    checkpoint_stamp: str = ""

    def __post_init__(self) -> None:
        n = len(self.refs)
        if not (len(self.digests) == n == len(self.labels) == len(self.probs)):
            raise PredictionError("Predictions need one ref, digest, label and row per example.")
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.classes):
            raise PredictionError("Predictions need one probability column per class.")
        if n and not np.all((self.labels >= 0) & (self.labels < len(self.classes))):
            raise PredictionError("Predictions need labels that are class numbers.")

    @property
    def n(self) -> int:
        """Number of examples."""
        return len(self.refs)

    @property
    def preds(self) -> np.ndarray:
        """Predicted class index of each example (int64 [N])."""
        return self.probs.argmax(axis=1).astype(np.int64)

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class (float32 [N])."""
        return self.probs.max(axis=1) if self.n else np.zeros(0, np.float32)

    @property
    def correct(self) -> np.ndarray:
        """Whether each prediction is right (bool [N])."""
        return self.preds == self.labels

    def save(self, path: str | Path) -> Path:
        """Write one .npz atomically: the arrays, plus the rest as a JSON byte array (no pickle)."""
        meta = {
            "format": _FORMAT,
            "run_id": self.run_id,
            "split": self.split,
            "classes": list(self.classes),
            "refs": list(self.refs),
            "digests": list(self.digests),
            "checkpoint": self.checkpoint,
            "modality": self.modality,
            "train_counts": list(self.train_counts),
            "checkpoint_stamp": self.checkpoint_stamp,
        }
        buf = io.BytesIO()
        np.savez(
            buf,
            labels=np.asarray(self.labels, np.int64),
            probs=np.asarray(self.probs, np.float32),
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        )
        return write_bytes_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> SplitPredictions:
        """Read a file written by :meth:`save`; PredictionError names a damaged file."""
        from engine.npz_read import NpzError, read_npz

        try:
            arrays = read_npz(path, ("meta", "labels", "probs"))
        except NpzError as exc:
            raise PredictionError(
                f"The saved predictions file {path} {exc}; evaluate the run again."
            ) from exc
        try:
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
            labels = arrays["labels"].astype(np.int64)
            probs = arrays["probs"].astype(np.float32)
            return cls(
                run_id=meta["run_id"],
                split=meta["split"],
                classes=tuple(meta["classes"]),
                refs=tuple(meta["refs"]),
                digests=tuple(meta["digests"]),
                labels=labels,
                probs=probs,
                checkpoint=meta["checkpoint"],
                modality=meta["modality"],
                train_counts=tuple(meta.get("train_counts", ())),
                checkpoint_stamp=meta.get("checkpoint_stamp", ""),
            )
        except (
            OSError,
            ValueError,  # also not UTF-8, not JSON
            KeyError,
            TypeError,
            AttributeError,
            EOFError,
            RecursionError,
            MemoryError,
            PredictionError,  # arrays that do not fit together
        ) as exc:
            raise PredictionError(
                f"The saved predictions {path} cannot be read ({str(exc).rstrip('.')}); "
                "evaluate the run again."
            ) from exc


def predict_split(
    run: RunDir,
    split: str = "val",
    *,
    allow_test: bool = False,
    checkpoint: str = "best",
    device: str = "cpu",
    batch_size: int = 32,
    task: Task | None = None,
    runtime: str = "auto",
    notes: list[str] | None = None,
) -> SplitPredictions:
    """Predict every example of ``split`` ("val" or "test") with the run's checkpoint; images
    and text probes run where ``runtime`` says (engine.frozen.predicting), and ``notes`` gets
    the sentences that say where they ran.

    The test split stays locked unless ``allow_test``: TestSplitLocked is raised before any test
    file is opened. An example that cannot be read any more raises PredictionError naming it;
    ``task`` gets the count of examples done; cancelling it (checked between batches) raises
    engine.task.Cancelled.
    """
    check_split(run, split, allow_test=allow_test)
    data = split_data(run)
    samples = getattr(data, split)
    if not samples:
        raise PredictionError(f"The run {run.run_id} has no {split} examples to evaluate.")
    from engine.evaluation.predict import Predictor

    predictor = Predictor(run, checkpoint=checkpoint, device=device, runtime=runtime)
    if tuple(predictor.classes) != tuple(data.classes):
        raise PredictionError(
            f"The run {run.run_id} records different classes in summary.json and splits.json; "
            "its folder was changed by hand."
        )
    modality = modality_of(data)
    refs = modality.refs(data.root, samples)
    probs = modality.split_probs(predictor, run, refs, batch_size, as_task(task))
    if notes is not None:
        notes.extend(predictor.runtime_notes)
    return split_predictions(run, data, split, probs, predictor.checkpoint)


def split_predictions(
    run: RunDir, data: Any, split: str, probs: np.ndarray, weights: Path
) -> SplitPredictions:
    """The SplitPredictions of ``probs`` (rows in ``data``'s order of ``split``), tied to the
    checkpoint file ``weights`` as it is now."""
    samples = getattr(data, split)
    refs = modality_of(data).refs(data.root, samples)
    counts = Counter(s.label for s in data.train)
    return SplitPredictions(
        run_id=run.run_id,
        split=split,
        classes=tuple(data.classes),
        refs=tuple(refs),
        digests=tuple(s.digest for s in samples),
        labels=np.array([s.label for s in samples], dtype=np.int64),
        probs=np.asarray(probs, np.float32),
        checkpoint=weights.stem,
        modality=data.modality,
        train_counts=tuple(counts.get(i, 0) for i in range(len(data.classes))),
        checkpoint_stamp=checkpoint_stamp(weights),
    )


def split_groups(run: RunDir, preds: SplitPredictions) -> list[str] | None:
    """The salted group (patient) hash of each example of ``preds``, in its order, from the
    run's splits.json; None when the run has no groups (or its split no longer matches the
    predictions). An example without a group is a group of its own. Only hashes: raw keys never
    reach a run folder."""
    try:
        samples = getattr(split_data(run), preds.split, ())
    except (PredictionError, OSError, ValueError):
        return None
    groups = [getattr(s, "group", None) for s in samples]
    if not any(g is not None for g in groups):
        return None
    if tuple(s.digest for s in samples) != tuple(preds.digests):
        return None
    return [g if g is not None else f"image {i}" for i, g in enumerate(groups)]


def check_split(run: RunDir, split: str, *, allow_test: bool) -> None:
    """Raise for an unknown split, TestSplitLocked for a locked test split, and RunFileError for
    a run with a damaged file (saved predictions could otherwise hide it)."""
    if split not in SPLITS:
        raise PredictionError(f"'{split}' is not a split that can be evaluated; use val or test.")
    if split == "test" and not allow_test:
        raise TestSplitLocked(
            f"The test split of run {run.run_id} stays locked so that it gives an honest final "
            "score; evaluate it with allow_test (refit evaluate --test) once you are done "
            "choosing models."
        )
    run.intact_config()


def split_data(run: RunDir) -> Any:
    """The run's RunData from splits.json, without checking that its files still exist."""
    from engine.training.inputs import RunData

    data = RunData.read(run)
    if data is None:
        raise PredictionError(
            f"The run {run.run_id} has no splits.json; it never started training, so there is "
            "nothing to evaluate."
        )
    return data


def checkpoint_stamp(path: Path) -> str:
    """ "<size>:<mtime_ns>" of a checkpoint file: changes whenever the file is rewritten."""
    from engine.files import file_stamp

    return file_stamp(path)


# -- saved predictions --------------------------------------------------------------------------


def predictions_path(run: RunDir, split: str = "val") -> Path:
    """runs/<id>/evaluation/<split>-predictions.npz"""
    return run.path / "evaluation" / f"{split}-predictions.npz"


def load_predictions(run: RunDir, split: str = "val") -> SplitPredictions | None:
    """The predictions saved by the last evaluation of ``split``, or None (none, or unreadable)."""
    path = predictions_path(run, split)
    if not path.is_file():
        return None
    try:
        return SplitPredictions.load(path)
    except PredictionError:
        return None


def checkpoint_file(run: RunDir, checkpoint: str = "best") -> Path | None:
    """The weights a Predictor loads for ``checkpoint``, or None when it has none."""
    from engine.training.checkpoint_files import CheckpointError, weights_file

    try:
        return weights_file(run, checkpoint)
    except CheckpointError:
        return None


def saved_predictions(run: RunDir, split: str, checkpoint: str = "best") -> SplitPredictions | None:
    """Saved predictions of ``split`` when they come from the checkpoint file as it is now."""
    saved = load_predictions(run, split)
    weights = checkpoint_file(run, checkpoint)
    if saved is None or weights is None or saved.checkpoint != weights.stem:
        return None
    stamp = checkpoint_stamp(weights)
    return saved if stamp and saved.checkpoint_stamp == stamp else None
