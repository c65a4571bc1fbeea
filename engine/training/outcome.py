"""What a run leaves when it ends: summary.json, then state.json, each written best effort."""

from __future__ import annotations

import time
from typing import Any

from engine.events import RunStatus
from engine.modalities import modality_of
from engine.training.checkpoint_files import has_last_checkpoint
from engine.training.context import RunContext
from engine.training.patients import dicom_record, split_patients
from engine.training.provenance import error_sentence


def write_outcome(ctx: RunContext, status: RunStatus, error: str) -> tuple[RunStatus, str]:
    """Write summary.json and state.json; a write that fails makes the run failed (and says so).

    When state.json cannot be written either it still says "running", and the run list infers
    "interrupted" from the run's dead owner; the checkpoint before is intact, so it resumes.
    """
    for write in (_write_summary, _write_state):
        try:
            write(ctx, status, error)
        except OSError as exc:
            sentence = ctx.failure_sentence(exc)
            if status is not RunStatus.FAILED:
                status, error = RunStatus.FAILED, sentence
            ctx.log(sentence, level="error")
    return status, error


def summary(ctx: RunContext, status: RunStatus, error: str) -> dict[str, Any]:
    """summary.json's fields: how the run ended, its best and last epochs, its data."""
    loop, best = ctx.loop, ctx.best
    result: dict[str, Any] = {
        "status": str(status),
        "error": error,
        "stop_reason": loop.stop_reason,
        "best_epoch": best.epoch,
        "best": best.metrics,
        "last": loop.last_metrics,
        "epochs_done": loop.epoch,
        "global_step": loop.global_step,
        "seconds": round(time.monotonic() - ctx.started_at, 2),
        "warnings": list(best.warnings),
    }
    if ctx.has_data:
        data = ctx.data
        result.update(
            classes=list(data.classes),
            train_size=len(data.train),
            val_size=len(data.val),
            test_size=len(data.test),
        )
        if modality_of(data).has_intensity:
            result["intensity"] = ctx.intensity
        patients = split_patients(data)
        if patients is not None:  # split by patient: counts per split, never a key or hash
            result["patients"] = patients
        dicom = dicom_record(data) or _earlier_record(ctx, "dicom", DICOM_KEYS)
        if dicom is not None:  # whether the sources declared themselves de-identified
            result["dicom"] = dicom
        leakage = getattr(data, "leakage", None) or _earlier_record(ctx, "leakage", LEAKAGE_KEYS)
        if leakage is not None:  # what the scan's leakage checks found (counts only)
            result["leakage"] = {k: int(leakage.get(k, 0)) for k in LEAKAGE_KEYS}
        review = _label_review(ctx)
        if review is not None:  # the newest label review of the folder, and what it covered
            result["label_review"] = review
    return result


def _label_review(ctx: RunContext) -> dict[str, Any] | None:
    """What engine/evaluation/review_record.py finds for the run's images; the workspace is
    only read (a damaged or foreign record is no review)."""
    from engine.evaluation.review_record import review_of

    data = ctx.data
    samples = (*data.train, *data.val, *data.test)
    if not samples or not all(isinstance(getattr(s, "digest", None), str) for s in samples):
        return None  # texts: a label review is for images
    try:
        return review_of(ctx.workspace.root, data.root, samples, data.classes)
    except (OSError, ValueError):
        return None


DICOM_KEYS = ("files", "declare_deidentified")
LEAKAGE_KEYS = (
    "split_folders",
    "patients_across",
    "near_duplicates_across",
    "near_duplicates_kept_together",
    "copies_left_out",
)


def _earlier_record(ctx: RunContext, name: str, keys: tuple[str, ...]) -> dict[str, int] | None:
    """A resumed run scans nothing: the record ``name`` its first part wrote, if any (whole
    numbers under ``keys``, else none)."""
    try:
        record = ctx.run.summary().get(name)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    try:
        values = {k: int(record[k]) for k in keys}
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return values if all(0 <= v < 10**12 for v in values.values()) else None


def _write_summary(ctx: RunContext, status: RunStatus, error: str) -> None:
    ctx.run.write_summary(summary(ctx, status, error))


def _write_state(ctx: RunContext, status: RunStatus, error: str) -> None:
    resumable = status in (RunStatus.CANCELLED, RunStatus.FAILED) and has_last_checkpoint(
        ctx.run.checkpoints
    )
    ctx.run.update_state(
        status=str(status),
        error=error,
        resumable=resumable,
        epochs_done=ctx.loop.epoch,
        ended=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


def save_evaluation(ctx: RunContext) -> str:
    """The best epoch's validation predictions become the run's evaluation, tied to the best
    checkpoint file (a later best rewrites that file, which makes them stale). Returns the
    evaluation file's path ("" when none was saved)."""
    if ctx.best.logits is None:
        return ""
    from engine.evaluation.in_training import save_best_evaluation

    try:
        result = save_best_evaluation(ctx.run, ctx.best.logits)
    except Exception as exc:  # the run itself is fine; Evaluate on the Results page remains
        why = error_sentence(exc).rstrip(".")
        ctx.log(
            f"The validation evaluation was not saved ({why}); Evaluate on the Results page "
            f"(or `refit evaluate {ctx.run.run_id}`) makes it.",
            level="warning",
        )
        return ""
    if result is None:
        return ""
    from engine.evaluation.report import evaluation_path

    return str(evaluation_path(ctx.run, result.split))
