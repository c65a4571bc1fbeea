"""What a run's parts share: the RunContext handed to pipelines and callbacks.

The Trainer makes one per run and fills it as it sets up (data, placement, model); pipelines,
callbacks and the probe read and update it, and never see the Trainer itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch

from engine.config import RunConfig
from engine.events import Event, LogMessage
from engine.models.classifier import Classifier
from engine.runs import RunDir, Workspace
from engine.task import Task
from engine.training.best import BestTracker
from engine.training.devices import Placement
from engine.training.divergence import DivergenceGuard
from engine.training.inputs import RunData
from engine.training.oom import MicroBatcher
from engine.training.provenance import error_sentence, storage_sentence

_POSITION = ("epoch", "step_in_epoch", "global_step", "last_metrics", "train_sums")


def _no_sums() -> dict[str, float]:
    return {"loss": 0.0, "correct": 0.0, "seen": 0.0}


@dataclasses.dataclass
class LoopState:
    """Where the loop stands: epochs and steps done, the last epoch's metrics, the training sums
    of the epoch under way, and why the run stops early ("" while it does not)."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    train_sums: dict[str, float] = dataclasses.field(default_factory=_no_sums)
    stop_reason: str = ""

    def end_epoch(self, metrics: dict[str, float]) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        self.train_sums = _no_sums()
        self.last_metrics = metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in ((k, getattr(self, k)) for k in _POSITION)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises KeyError when a key is missing (the checkpoint does not fit the run)."""
        values = {key: state[key] for key in _POSITION}
        for key, value in values.items():
            setattr(self, key, value)


@dataclasses.dataclass
class Optimization:
    """The optimizer, its schedule and the fp16 gradient scaler (None when not needed)."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None = None

    @property
    def lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])


class RunContext:
    """One run's config, folder, placement, task and events, and the state its parts share.

    ``data``, ``placement``, ``model`` and ``optimization`` exist once the Trainer's set-up has
    made them (reading one before raises RuntimeError; ``has_model`` says whether it exists).
    """

    def __init__(
        self,
        config: RunConfig,
        run: RunDir,
        workspace: Workspace,
        task: Task,
        *,
        sink: Callable[[Event, RunContext], Any],
        resuming: bool = False,
    ) -> None:
        self.config = config
        self.run = run
        self.workspace = workspace
        self.task = task
        self.resuming = resuming
        self._sink = sink
        self.loop = LoopState()
        self.best = BestTracker(config.schedule.monitor)
        self.divergence = DivergenceGuard(2)
        self.micro = MicroBatcher(torch.device("cpu"))  # replaced in set-up for the run's device
        self._data: RunData | None = None
        self._placement: Placement | None = None
        self._model: Classifier | None = None
        self._optimization: Optimization | None = None
        self.channels_last = False
        self.workers = 0
        self.max_length = 0  # text runs: tokens per text after the model's own limit
        self.intensity = "off"  # the resolved data.intensity of an image run
        self.feature_cache = False  # the backbone is frozen and its features are cached
        self.pipeline: Any = None  # the Pipeline feeding the model, once set up (for callbacks)
        self.advice_recording: Any = None  # the recipe advisor's recorded activations
        # Several processes (engine/distributed): who this one is, and rank 0's pause/stop.
        from engine.distributed import SINGLE

        self.dist = SINGLE
        self.control: Any = None  # an engine.distributed.Control under torchrun, else None
        # Set once this run's files start changing; a resume that fails before must not
        # record anything but the error.
        self.touched_files = False
        self.started_at = time.monotonic()

    # -- events ---------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Send ``event`` (stamped with the run's id) to the run's callbacks, in order."""
        if not event.run_id:
            event = dataclasses.replace(event, run_id=self.run.run_id)
        self._sink(event, self)

    def log(self, text: str, level: str = "info") -> None:
        self.emit(LogMessage(level=level, text=text))

    def request_stop(self, reason: str) -> None:
        """Stop after the epoch under way; ``reason`` is logged and kept in the summary."""
        self.loop.stop_reason = reason

    def failure_sentence(self, exc: BaseException) -> str:
        """One sentence for ``exc``; a failed write names the disk and says how to resume; in a
        job of several processes, a collective that failed says so (not the backend's text)."""
        if self.dist.active:
            from engine.distributed.failure import contact_sentence, is_lost_contact

            if is_lost_contact(exc):
                dist = self.dist
                return contact_sentence(exc, dist.rank, dist.world, self.run.run_id)
        return storage_sentence(exc, self.workspace.root, self.run.run_id) or error_sentence(exc)

    def rank_failure(self, exc: BaseException) -> str:
        """The sentence of ``exc`` naming this process of the job (for every rank to read)."""
        from engine.distributed.failure import rank_sentence

        sentence = self.failure_sentence(exc)
        return rank_sentence(self.dist.rank, self.dist.world, sentence, self.run.run_id)

    # -- what the set-up makes ------------------------------------------------------------------

    @property
    def data(self) -> RunData:
        return _made(self._data, "data")

    @data.setter
    def data(self, data: RunData) -> None:
        self._data = data

    @property
    def has_data(self) -> bool:
        return self._data is not None

    @property
    def placement(self) -> Placement:
        return _made(self._placement, "placement")

    @placement.setter
    def placement(self, placement: Placement) -> None:
        self._placement = placement

    @property
    def model(self) -> Classifier:
        return _made(self._model, "model")

    @model.setter
    def model(self, model: Classifier | None) -> None:
        self._model = model

    @property
    def has_model(self) -> bool:
        return self._model is not None

    @property
    def optimization(self) -> Optimization:
        return _made(self._optimization, "optimization")

    @optimization.setter
    def optimization(self, optimization: Optimization) -> None:
        self._optimization = optimization


def _made(value: Any, what: str) -> Any:
    if value is None:
        raise RuntimeError(f"The run's {what} is not set up yet.")
    return value
