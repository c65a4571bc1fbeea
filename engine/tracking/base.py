"""The part every tracker shares: it never stops training. The first failure of a tracker
(a server that does not answer, a full disk, a bad URI) is one warning in the run's log, and the
tracker stays silent for the rest of the run; in a distributed run only rank 0 tracks."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from engine.events import EpochEnded, RunEnded, RunStarted, StepEnded
from engine.tracking.targets import mask_uri
from engine.training.callbacks import Callback
from engine.training.context import RunContext
from engine.training.provenance import error_sentence

MAX_PARAM_VALUE = 500  # MLflow's limit on a param value; TensorBoard's hparams share it


class TrackingUnavailable(Exception):
    """A tracker's own sentence for why it cannot go on (shown as it is)."""


class SafeTracker(Callback):
    """A callback whose ``start``, ``step``, ``epoch`` and ``end`` may fail: a failure is
    reported once, as a warning, and turns the tracker off. Runs after the run's own files
    (the run folder stays the source of truth)."""

    order = 80
    label = "tracking"

    def __init__(self, *, primary: bool = True) -> None:
        self.active = primary
        self.failed = ""

    # -- what a tracker does ------------------------------------------------------------------

    def start(self, event: RunStarted, ctx: RunContext) -> None: ...
    def step(self, event: StepEnded, ctx: RunContext) -> None: ...
    def epoch(self, event: EpochEnded, ctx: RunContext) -> None: ...
    def end(self, event: RunEnded, ctx: RunContext) -> None: ...
    def close(self) -> None:
        """Release what the tracker holds (after a failure too); must not raise."""

    # -- the engine's events, guarded ---------------------------------------------------------

    def on_run_started(self, event: RunStarted, ctx: RunContext) -> None:
        self._guarded(self.start, event, ctx)

    def on_step_ended(self, event: StepEnded, ctx: RunContext) -> None:
        self._guarded(self.step, event, ctx)

    def on_epoch_ended(self, event: EpochEnded, ctx: RunContext) -> None:
        self._guarded(self.epoch, event, ctx)

    def on_run_ended(self, event: RunEnded, ctx: RunContext) -> None:
        self._guarded(self.end, event, ctx)
        self._close()

    def _guarded(self, fn: Any, event: Any, ctx: RunContext) -> None:
        if not self.active:
            return
        try:
            fn(event, ctx)
        except Exception as exc:  # tracking never stops training
            self.active = False
            self.failed = (
                f"{self.label} stopped: {self.describe(exc)} "
                "Training goes on; the run folder keeps every result."
            )
            self._close()
            with contextlib.suppress(Exception):
                ctx.log(self.failed, level="warning")

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def describe(self, exc: Exception) -> str:
        """One line for a tracker's failure: its first line, cut short, any password in a URI
        masked (a library's message may quote the URI it was given)."""
        text = str(exc) if isinstance(exc, TrackingUnavailable) else error_sentence(exc)
        lines = text.strip().splitlines() or [type(exc).__name__]
        text = mask_uri(lines[0])
        text = text if len(text) <= 300 else text[:297] + "..."
        return text if text.endswith((".", "!", "?")) else text + "."


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """A nested JSON dict as dotted keys -> text (``model.backbone`` -> ``timm:resnet18``);
    values cut to MLflow's 500 characters."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if data is None or isinstance(data, (bool, int, float, str)):
        text = str(data)
    else:  # a list: its JSON
        text = json.dumps(data, default=str)
    out[prefix] = text[:MAX_PARAM_VALUE]
    return out
