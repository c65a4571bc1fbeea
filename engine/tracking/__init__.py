"""Tracking a run where a team already looks: TensorBoard event files in the run folder
(``--track tensorboard``) and an MLflow run (``--track mlflow:URI``).

Each tracker is an ordinary engine Callback that runs after the run's own files are written:
the run folder stays the source of truth, and a tracker that fails says so once and stops
while training goes on. Both libraries are optional (the ``tracking`` extra) and imported only
when a run is tracked; this package's own import loads neither, nor torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.tracking.targets import (
    TrackError,
    TrackTarget,
    add_track_option,
    is_primary_rank,
    mask_uri,
    parse_track,
    track_argument,
)

if TYPE_CHECKING:
    from engine.training.callbacks import Callback

__all__ = [
    "TrackError",
    "TrackTarget",
    "add_track_option",
    "check_targets",
    "mask_uri",
    "parse_track",
    "track_argument",
    "tracking_callbacks",
]


def check_targets(targets: Iterable[TrackTarget]) -> None:
    """Raise TrackError with one sentence when a tracker cannot work here (its package is not
    installed, a local MLflow file store is switched off): before a run folder exists."""
    from engine.tracking.available import check_mlflow, check_tensorboard

    for target in targets:
        try:
            if target.kind == "tensorboard":
                check_tensorboard()
            else:
                check_mlflow(target.uri)
        except (ImportError, ValueError) as exc:
            raise TrackError(str(exc)) from None


def tracking_callbacks(targets: Iterable[TrackTarget], *, experiment: str = "") -> list[Callback]:
    """One callback per target, for ``train(..., callbacks=...)``; they do nothing outside rank
    0 of a distributed run. ``experiment`` names the MLflow experiment (default: the workspace's
    folder name)."""
    from engine.tracking.mlflow_tracker import MlflowTracker
    from engine.tracking.tensorboard_tracker import TensorBoardTracker

    primary = is_primary_rank()
    out: list[Callback] = []
    for target in dict.fromkeys(targets):  # the same target twice tracks once
        if target.kind == "tensorboard":
            out.append(TensorBoardTracker(primary=primary))
        else:
            out.append(MlflowTracker(target.uri, primary=primary, experiment=experiment))
    return out
