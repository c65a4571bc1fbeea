"""Worker jobs of the Results page: reading, evaluating, comparing and explaining trained runs.

Each function returns a job for ``WorkerPool.submit`` (``job(task)``: counts on the task, a
cancelled task raises engine.task.Cancelled); the engine (and with it torch) is imported inside
the job, in the worker thread, so the window never waits for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import Event, RunFacts, StageProgressed, StepEnded

if TYPE_CHECKING:
    from PySide6.QtGui import QImage

    from engine import Comparison, Evaluation, Predictor, SplitPredictions, Task, TokenInfluence

TaskJob = Callable[["Task"], Any]
SPLITS = ("val", "test")


@dataclass(frozen=True)
class SplitResults:
    """A saved evaluation of one split and the predictions behind it."""

    evaluation: Evaluation
    predictions: SplitPredictions | None


@dataclass(frozen=True)
class RunResults:
    """A run's facts and whatever evaluations it has saved, by split ("val", "test")."""

    facts: RunFacts
    splits: dict[str, SplitResults]


@dataclass(frozen=True)
class BaseResult:
    """The run's base linear probe (None when not trained yet) and the comparison with it."""

    base: Path | None
    is_self: bool
    comparison: Comparison | None


@dataclass(frozen=True)
class HeatmapImage:
    """A Grad-CAM overlay ready to show (a QImage built in the worker) or why there is none."""

    ref: str
    image: QImage | None
    method: str = ""
    error: str = ""


@dataclass(frozen=True)
class ReportMaterial:
    """What a report needs that reads files, made in a worker before it is written: the
    reviewer's sections (engine.reviewer_report) and a picture of each of their confident
    mistakes, by file (a Grad-CAM overlay where the run can explain, else a thumbnail)."""

    review: Any
    pictures: dict[str, QImage]
    heatmaps: int  # how many of the pictures are heatmaps


def report_material_job(
    path: Path, evaluation: Evaluation, size: int, *, heatmaps: bool
) -> TaskJob:
    """A job that reads what ``evaluation``'s report of the run at ``path`` shows: the reviewer's
    sections, then a ``size``-pixel picture of each confident mistake (``heatmaps``: Grad-CAM
    overlays where the run can explain). A cancelled task keeps the pictures made so far."""

    def job(task: Task) -> ReportMaterial:
        from engine import RunDir, reviewer_report

        run = RunDir(path)
        review = reviewer_report(run, evaluation)
        refs = [f.path for f in review.failures if f.path]
        overlays: dict[str, QImage] = {}
        if heatmaps and refs:  # a cancelled task keeps the overlays made so far
            made = heatmaps_job(path, refs, size)(task)
            overlays = {h.ref: h.image for h in made if h.image is not None}
        pictures = dict(overlays)
        window = _dicom_window(run)
        for ref in refs:
            if ref not in pictures and not task.cancelled:
                thumbnail = _thumbnail(ref, window, size)
                if thumbnail is not None:
                    pictures[ref] = thumbnail
        return ReportMaterial(review, pictures, len(overlays))

    return job


def _dicom_window(run: Any) -> str | None:
    """The run's DICOM window; None (each file's own) when its config cannot be read."""
    try:
        return str(run.config().data.dicom_window.value)
    except Exception:
        return None


def _thumbnail(ref: str, window: str | None, size: int) -> QImage | None:
    """A ``size``-pixel thumbnail of the image ``ref`` in DICOM ``window``, or None when it is
    gone, moved or unreadable (the report's table still lists it)."""
    from engine import load_image

    try:
        picture = load_image(ref, window=window)
    except Exception:
        return None
    image = pil_to_qimage(picture, size)
    return None if image.isNull() else image


def load_results(path: Path) -> RunResults:
    """Facts of a run and its saved evaluations (no prediction is computed here)."""
    from engine import RunDir, load_evaluation, load_predictions, run_facts

    run = RunDir(Path(path))
    splits = {}
    for split in SPLITS:
        evaluation = load_evaluation(run, split)
        if evaluation is not None:
            splits[split] = SplitResults(evaluation, load_predictions(run, split))
    return RunResults(run_facts(run), splits)


def load_results_job(path: Path) -> TaskJob:
    """A job that reads a run's facts and saved evaluations."""
    return lambda _task: load_results(path)


def evaluate_job(path: Path, split: str, *, allow_test: bool = False) -> TaskJob:
    """A job that predicts ``split`` of the run, evaluates and saves it (Cancelled if stopped,
    also when the cancel came just after the last batch)."""

    def job(task: Task) -> SplitResults:
        from engine import RunDir, evaluate_run, load_predictions

        run = RunDir(Path(path))
        evaluation = evaluate_run(run, split, allow_test=allow_test, device=_device(), task=task)
        task.check_cancelled()
        return SplitResults(evaluation, load_predictions(run, split))

    return job


def reevaluate_job(
    predictions: SplitPredictions, positive: str, run_path: Path | None = None
) -> TaskJob:
    """A job that recomputes an evaluation with another positive class (curves change); the
    intervals resample the run's patients (groups) when it has them."""

    def job(_task: Task) -> Evaluation:
        from engine import RunDir, evaluate, split_groups

        groups = split_groups(RunDir(run_path), predictions) if run_path else None
        return evaluate(predictions, positive=positive, groups=groups)

    return job


def base_job(workspace: Path, path: Path, split: str, *, allow_test: bool = False) -> TaskJob:
    """A job that finds the run's base linear probe and, when there is one, compares with it."""

    def job(task: Task) -> BaseResult:
        from engine import RunDir, Workspace, compare_runs, find_base_run

        run = RunDir(Path(path))
        base = find_base_run(Workspace(workspace), run)
        if base is None:
            return BaseResult(None, False, None)
        if Path(base.path).resolve() == run.path.resolve():
            return BaseResult(base.path, True, None)
        comparison = compare_runs(
            run,
            base,
            split,
            allow_test=allow_test,
            device=_device(),
            task=task,
            names=("this run", "the base"),
        )
        return BaseResult(base.path, False, comparison)

    return job


def train_base_job(workspace: Path, path: Path) -> TaskJob:
    """A job that trains the run's base linear probe; its stage and step counts are reported on
    the task (a stopped training raises Cancelled)."""

    def job(task: Task) -> Path:
        from engine import RunDir, Workspace, train_base

        def on_event(event: Event) -> None:
            if isinstance(event, StageProgressed):
                task.report(event.done, event.total)
            elif isinstance(event, StepEnded):
                task.report(event.step, event.total_steps)

        base = train_base(Workspace(workspace), RunDir(Path(path)), on_event=on_event, task=task)
        return Path(base.path)

    return job


def compare_job(
    path_a: Path, path_b: Path, split: str, *, name_b: str = "B", allow_test: bool = False
) -> TaskJob:
    """A job that compares two runs on the examples both predicted (McNemar); the sentence calls
    them "this run" and ``name_b``."""

    def job(task: Task) -> Comparison:
        from engine import RunDir, compare_runs

        return compare_runs(
            RunDir(Path(path_a)),
            RunDir(Path(path_b)),
            split,
            allow_test=allow_test,
            device=_device(),
            task=task,
            names=("this run", name_b),
        )

    return job


def heatmaps_job(path: Path, refs: Sequence[str], size: int) -> TaskJob:
    """A job that computes Grad-CAM overlays of a few images (predicted class), as QImages; a
    cancelled task keeps the ones already made."""

    def job(task: Task) -> list[HeatmapImage]:
        from engine import Cancelled, can_explain, image_heatmaps, overlay

        predictor = cached_predictor(path)
        reason = can_explain(predictor)
        if reason:
            return [HeatmapImage(ref, None, error=reason) for ref in refs]
        out = []
        for ref in refs:
            try:
                (heatmap,) = image_heatmaps(predictor, [ref], task=task)
            except Cancelled:
                break
            except Exception as exc:  # one unreadable image must not stop the others
                out.append(HeatmapImage(ref, None, error=_sentence(exc)))
                continue
            out.append(HeatmapImage(ref, pil_to_qimage(overlay(heatmap), size), heatmap.method))
        return out

    return job


def influence_job(path: Path, texts: Sequence[str]) -> TaskJob:
    """A job that finds the influential words of a few texts (towards the predicted class); a
    cancelled task keeps the ones already found."""

    def job(task: Task) -> list[TokenInfluence | str]:
        from engine import Cancelled, can_explain, token_influence

        predictor = cached_predictor(path)
        reason = can_explain(predictor)
        if reason:
            return [reason for _ in texts]
        out: list[TokenInfluence | str] = []
        for text in texts:
            try:
                out.append(token_influence(predictor, text, task=task))
            except Cancelled:
                break
            except Exception as exc:
                out.append(_sentence(exc))
        return out

    return job


_predictors: OrderedDict[tuple[str, int], Predictor] = OrderedDict()
_predictors_lock = threading.Lock()


def cached_predictor(path: Path) -> Predictor:
    """The run's best checkpoint, loaded once and kept for the next explanation jobs (a new
    checkpoint file, after a resume, is loaded afresh)."""
    from engine import Predictor, RunDir, weights_file

    run = RunDir(Path(path).resolve())
    stamp = weights_file(run, "best").stat().st_mtime_ns  # a sentence when it is missing
    key = (str(run.path), stamp)
    with _predictors_lock:
        predictor = _predictors.get(key)
        if predictor is None:
            predictor = Predictor(run, device=_device())
            _predictors[key] = predictor
            while len(_predictors) > 2:
                _predictors.popitem(last=False)
        _predictors.move_to_end(key)
        return predictor


def pil_to_qimage(picture: Any, size: int) -> QImage:
    """A PIL image fitted into ``size`` x ``size`` as a QImage that owns its pixels."""
    from PIL import ImageOps
    from PySide6.QtGui import QImage

    picture = ImageOps.contain(picture.convert("RGB"), (size, size))
    width, height = picture.size
    data = picture.tobytes("raw", "RGB")
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sentence(exc: BaseException) -> str:
    from engine import error_sentence

    return error_sentence(exc)
