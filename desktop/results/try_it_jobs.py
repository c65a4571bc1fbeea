"""Worker jobs of the Try-it widget: load a run's Predictor once, classify, explain.

The Predictor lives in a ``PredictorCache`` that only worker threads touch; the GUI gets plain
results (class names, probabilities, QImages, word scores), never the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from desktop.modalities import views_of
from engine import Cancelled

DISPLAY_SIZE = 480  # pixels: the longest side of the picture the widget shows
TOP_K = 5
NO_EXPLAIN_MODULE = "Explanations are not part of this version of Refit Studio."


@dataclass(frozen=True)
class RunFacts:
    """What the widget needs to know about a loaded run."""

    run_dir: Path
    modality: str  # "image" or "text"
    classes: tuple[str, ...]
    explain_reason: str  # "" when explanations work, else one sentence why not


@dataclass(frozen=True)
class Request:
    """One thing to compute for the current input: the top classes and, optionally, why."""

    run_dir: Path
    source: str  # an image path or the text itself
    explain: bool = False
    target: str | None = None  # class to explain; None: the top class
    token: int = 0
    new_input: bool = True  # False: the same input again, to explain another class


@dataclass(frozen=True)
class Analysis:
    """The answer to a Request. ``error`` replaces everything else when the input is bad."""

    request: Request
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""
    picture: QImage | None = None  # image runs: the input, fitted for display
    overlay: QImage | None = None  # image runs: the Grad-CAM overlay (what the model saw)
    scale: QImage | None = None  # image runs: the overlay's colours from low to high
    words: list[tuple[str, float]] = field(default_factory=list)  # text runs: word influence
    explained: str = ""  # the class explained
    probability: float = 0.0  # its probability
    method: str = ""
    explain_error: str = ""


class PredictorCache:
    """One run's Predictor, loaded on first use; used by one worker job at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: Path | None = None
        self._predictor: Any = None
        self._explain_reason = ""

    def get(self, run_dir: Path) -> tuple[Any, str]:
        """The Predictor of ``run_dir`` and why it cannot be explained ("" when it can)."""
        with self._lock:
            if self._run != run_dir or self._predictor is None:
                from engine import Predictor, RunDir

                self._predictor = None
                self._predictor = Predictor(RunDir(run_dir))
                self._run = run_dir
                self._explain_reason = _explain_reason(self._predictor)
            return self._predictor, self._explain_reason


def _explain_reason(predictor: Any) -> str:
    try:
        from engine import can_explain
    except ImportError:
        return NO_EXPLAIN_MODULE
    try:
        return can_explain(predictor)
    except Exception as exc:  # a broken check must not stop predictions
        return f"Explanations do not work for this run ({type(exc).__name__}: {exc})."


TaskJob = Callable[[Any], Any]  # job(task): only an explanation stops at a cancel (app quit)


def load_job(cache: PredictorCache, run_dir: Path) -> TaskJob:
    """A worker job that loads the run's Predictor into ``cache`` and returns RunFacts."""

    def job(_task: Any) -> RunFacts:
        predictor, reason = cache.get(run_dir)
        return RunFacts(run_dir, predictor.modality, tuple(predictor.classes), reason)

    return job


def analyse_job(cache: PredictorCache, request: Request, *, modality: str) -> TaskJob:
    """A worker job that classifies (and explains) ``request.source`` with the cached run."""

    def job(task: Any) -> Analysis:
        predictor, reason = cache.get(request.run_dir)
        if views_of(modality).text_views:
            return _analyse_text(predictor, request, reason, task)
        return _analyse_image(predictor, request, reason, task)

    return job


def _top_k(predictor: Any) -> int:
    return min(TOP_K, len(predictor.classes))


def _target_index(predictor: Any, request: Request, top: list[tuple[str, float]]) -> int:
    name = request.target if request.target in predictor.classes else top[0][0]
    return list(predictor.classes).index(name)


def _analyse_image(predictor: Any, request: Request, reason: str, task: Any = None) -> Analysis:
    from desktop.widgets.image_loader import decode_for_display

    prediction = predictor.predict([request.source], top_k=_top_k(predictor))[0]
    if prediction.error:
        return Analysis(request, error=prediction.error)
    try:
        picture = decode_for_display(request.source, DISPLAY_SIZE)
    except Exception as exc:  # the model read it, so this is rare; say so and go on
        return Analysis(request, error=f"The picture cannot be shown: {exc}")
    result = Analysis(request, top=prediction.top, picture=picture)
    if not request.explain:
        return result
    if reason:
        return _with(result, explain_error=reason)
    try:
        from engine import image_heatmaps, overlay

        target = _target_index(predictor, request, prediction.top)
        heatmap = image_heatmaps(predictor, [request.source], target=target, task=task)[0]
        shown = overlay(heatmap)
    except Cancelled:
        raise
    except Exception as exc:
        return _with(result, explain_error=_sentence("The heatmap failed", exc))
    return _with(
        result,
        overlay=_qimage(shown),
        scale=_colour_scale(heatmap),
        explained=heatmap.target,
        probability=float(heatmap.probability),
        method=heatmap.method,
    )


def _analyse_text(predictor: Any, request: Request, reason: str, task: Any = None) -> Analysis:
    prediction = predictor.predict_texts([("text", request.source)], top_k=_top_k(predictor))[0]
    if prediction.error:
        return Analysis(request, error=prediction.error)
    result = Analysis(request, top=prediction.top)
    if not request.explain:
        return result
    if reason:
        return _with(result, explain_error=reason)
    try:
        from engine import token_influence

        target = _target_index(predictor, request, prediction.top)
        influence = token_influence(predictor, request.source, target=target, task=task)
    except Cancelled:
        raise
    except Exception as exc:
        return _with(result, explain_error=_sentence("Finding the influential words failed", exc))
    return _with(
        result,
        words=[(str(w), float(s)) for w, s in influence.words],
        explained=influence.target,
        probability=float(influence.probability),
        method=influence.method,
    )


def _with(result: Analysis, **changes: Any) -> Analysis:
    from dataclasses import replace

    return replace(result, **changes)


def _sentence(what: str, exc: Exception) -> str:
    from engine import error_sentence

    return f"{what}: {error_sentence(exc)}"


def _colour_scale(like: Any) -> QImage | None:
    """The overlay's colour map as a strip, low on the left (made by overlay() itself, so it
    always matches the heatmap)."""
    from dataclasses import replace

    import numpy as np
    from PIL import Image

    from engine import overlay

    cam = np.tile(np.linspace(0.0, 1.0, 256, dtype=np.float32), (12, 1))
    try:
        strip = overlay(replace(like, image=Image.new("RGB", (256, 12)), cam=cam), alpha=1.0)
    except Exception:  # only a legend: the heatmap itself is shown anyway
        return None
    return _qimage(strip)


def _qimage(picture: Any) -> QImage:
    """A PIL image as a QImage that owns its pixels (painting a QImage is fine off the GUI
    thread; a QPixmap is not)."""
    rgb = picture.convert("RGB")
    width, height = rgb.size
    data = rgb.tobytes("raw", "RGB")
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
