"""TensorBoard event files in the run folder (``<run>/tensorboard/``): the training loss and
learning rate per step, every validation metric per epoch, and the flattened config as
hyperparameters at the end, written with torch's SummaryWriter (needs the tensorboard package)."""

from __future__ import annotations

from typing import Any

from engine.events import EpochEnded, RunEnded, RunStarted, StepEnded
from engine.tracking.available import check_tensorboard
from engine.tracking.base import SafeTracker, flatten
from engine.training.context import RunContext

FOLDER = "tensorboard"


class TensorBoardTracker(SafeTracker):
    """Writes the run's curves as TensorBoard events under ``<run>/tensorboard/``."""

    label = "TensorBoard tracking"

    def __init__(self, *, primary: bool = True) -> None:
        super().__init__(primary=primary)
        self.writer: Any = None

    def start(self, event: RunStarted, ctx: RunContext) -> None:
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(ctx.run.path / FOLDER), flush_secs=10)

    def step(self, event: StepEnded, ctx: RunContext) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("train/loss", event.loss, event.step)
        self.writer.add_scalar("train/lr", event.lr, event.step)

    def epoch(self, event: EpochEnded, ctx: RunContext) -> None:
        if self.writer is None:
            return
        for name, value in event.metrics.items():
            self.writer.add_scalar(f"epoch/{name}", value, event.epoch)
        self.writer.flush()

    def end(self, event: RunEnded, ctx: RunContext) -> None:
        if self.writer is None:
            return
        params = flatten(ctx.config.to_dict())
        best = {f"best/{k}": float(v) for k, v in event.best_metrics.items()}
        self.writer.add_hparams(params, best or {"best/none": 0.0}, run_name="hparams")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
