"""Best-epoch tracking: which epoch is the run's best so far, and what it scored."""

from __future__ import annotations

from typing import Any

import torch

from engine.config import Monitor

MINIMIZE = {Monitor.VAL_LOSS}


class BestTracker:
    """The best epoch of a run by ``monitor``, its metrics and honest warnings, and the epochs
    since it; its validation logits stay in memory (saved as the run's evaluation at the end)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.value: float | None = None
        self.loss: float | None = None
        self.epoch = -1
        self.metrics: dict[str, float] = {}
        self.epochs_since = 0
        self.warnings: list[str] = []
        self.logits: torch.Tensor | None = None

    def update(self, metrics: dict[str, float], epoch: int) -> bool:
        """Record ``epoch``'s metrics; True when it is the new best."""
        value, loss = metrics[str(self.monitor)], metrics["val_loss"]
        if self.value is None:
            better = True
        elif self.monitor in MINIMIZE:
            better = value < self.value
        else:
            # Equal accuracy (common on small validation sets) counts as better only when the
            # loss improves by a meaningful margin, so noise does not reset early stopping.
            best_loss = self.loss if self.loss is not None else float("inf")
            better = value > self.value or (
                value == self.value and loss < best_loss - max(1e-4, 1e-3 * abs(best_loss))
            )
        if better:
            self.install(metrics, epoch)
        else:
            self.epochs_since += 1
        return better

    def install(self, metrics: dict[str, float], epoch: int) -> None:
        """Make ``epoch`` the best, whatever came before (the linear probe's chosen fit)."""
        self.value, self.loss, self.epoch = metrics[str(self.monitor)], metrics["val_loss"], epoch
        self.metrics = {"epoch": float(epoch), **metrics}
        self.epochs_since = 0

    def forget(self) -> None:
        """The best weights are lost: the next epoch becomes the best."""
        self.value, self.loss, self.epoch = None, None, -1
        self.metrics, self.epochs_since = {}, 0

    def state_dict(self) -> dict[str, Any]:
        """The keys a resumable checkpoint has always held for the best epoch."""
        return {
            "best_value": self.value,
            "best_loss": self.loss,
            "best_epoch": self.epoch,
            "best_metrics": dict(self.metrics),
            "epochs_since_best": self.epochs_since,
            "best_warnings": list(self.warnings),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises KeyError when a key is missing (the checkpoint does not fit the run)."""
        value, loss, epoch = state["best_value"], state["best_loss"], state["best_epoch"]
        metrics, since = state["best_metrics"], state["epochs_since_best"]
        # Checkpoints from before honest warnings have none: the next best epoch sets them.
        warnings = [str(w) for w in state.get("best_warnings", [])]
        self.value, self.loss, self.epoch = value, loss, epoch
        self.metrics, self.epochs_since, self.warnings = metrics, since, warnings
