"""Telling a run that diverged from one that is merely learning slowly.

The rule: a training loss that is NaN or infinite, or that exceeds ``FACTOR`` times a reference
loss, means the run diverged. The reference is the larger of the run's first step loss and
ln(number of classes), the cross-entropy of a model that guesses uniformly. A batch's mean
cross-entropy is roughly the gap between the logit of the wrong and of the right class; a healthy
model keeps that gap within tens even when it is confidently wrong on a new domain, so a loss
1000 times the chance level (690 for two classes, 2300 for ten) only happens once the weights have
blown up. The first loss can be tiny (a head loaded from a checkpoint); ln(classes) keeps the
threshold from falling below a few hundred then.
"""

from __future__ import annotations

import math
from typing import Any

FACTOR = 1000.0


class Diverged(RuntimeError):
    """Training stopped because the loss became non-finite or exploded.

    ``what`` happened and the learning rate at that moment; ``sentence(best_epoch)`` is what the
    user reads once the trainer knows which best checkpoint it kept (-1: none).
    """

    def __init__(self, what: str, lr: float) -> None:
        self.what, self.lr = what.rstrip("."), lr
        super().__init__(self.sentence())

    def sentence(self, best_epoch: int = -1) -> str:
        kept = (
            f"its best checkpoint (epoch {best_epoch + 1}) is kept"
            if best_epoch >= 0
            else "no epoch finished before, so it has no best checkpoint"
        )
        return (
            f"Training diverged: {self.what}; the run stopped and {kept}. Start a new run with "
            f"a lower learning rate (now {self.lr:.3g}), for example a tenth of it."
        )


class DivergenceGuard:
    """Checks every step's loss (and each epoch's validation loss) against the rule above."""

    def __init__(self, num_classes: int) -> None:
        self.chance = math.log(max(2, num_classes))
        self.reference: float | None = None

    @property
    def limit(self) -> float:
        return FACTOR * max(self.reference or 0.0, self.chance)

    def check_step(self, loss: float, step: int, lr: float) -> None:
        """Raise Diverged when ``loss`` of ``step`` breaks the rule."""
        if self.reference is None and math.isfinite(loss):
            self.reference = loss
        if not math.isfinite(loss):
            raise Diverged(f"the training loss became {loss} at step {step}", lr)
        if loss > self.limit:
            what = (
                f"the training loss exploded to {loss:.4g} at step {step} (more than "
                f"{FACTOR:g} times its starting value)"
            )
            raise Diverged(what, lr)

    def check_validation(self, metrics: dict[str, float], epoch: int, lr: float) -> None:
        """Raise Diverged when validation gives a non-finite loss (the weights are broken)."""
        for key in ("val_loss", "train_loss"):
            value = metrics.get(key)
            if value is not None and not math.isfinite(value):
                what = f"the {key.replace('_', ' ')} became {value} in epoch {epoch + 1}"
                raise Diverged(what, lr)

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state:
            self.reference = state.get("reference")
