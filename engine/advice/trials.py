"""Cheap trials of partial fine-tunes: only the layers after a cut train, on cached activations.

Every trial trains on an inner training part and is scored on an inner held-out part of the
*training* images (their clean view), never on the validation split. The learning rate of each
trial comes from a range test on the same cached activations.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.advice.split import Boundary, dummy_input, suffix_only
from engine.config import OptimConfig
from engine.task import Cancelled, Task
from engine.training.optim import param_groups

#: Head learning rate and backbone scale of the suffix trials (the range test moves the head's
#: rate; the pretrained layers after the cut get this share of it).
BACKBONE_SCALE = 0.1
WEIGHT_DECAY = 0.05
TRIAL_BATCH = 16


@dataclass(frozen=True)
class TrialResult:
    """One cut point tried: its inner held-out accuracy and the rate it trained at."""

    group: str  # the last frozen group
    trained_groups: int  # backbone groups after the cut
    lr: float
    accuracy: float
    loss: float
    curve: tuple[float, ...]  # held-out accuracy after each epoch
    seconds: float

    def to_dict(self) -> dict:
        return {
            "group": self.group,
            "trained_groups": self.trained_groups,
            "lr": self.lr,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "curve": list(self.curve),
            "seconds": self.seconds,
        }


class SuffixModel:
    """A copy of the classifier frozen up to ``cut`` that runs only the layers after it."""

    def __init__(
        self,
        model: Any,  # a Classifier
        cut: Boundary,
        shapes: dict,
        device: torch.device,
        channels_last: bool = False,
    ) -> None:
        from engine.models import apply_freeze

        self.model = copy.deepcopy(model).to(device)
        apply_freeze(self.model, [g.name for g in self.model.groups[: cut.index + 1]])
        self.cut, self.shapes, self.device = cut, shapes, device
        self.channels_last = channels_last

    def __call__(self, activation: torch.Tensor) -> torch.Tensor:
        act = activation.to(self.device, torch.float32)
        if self.channels_last and act.ndim == 4:
            # indexing the cache drops the layout; convolutions are several times faster in it
            act = act.contiguous(memory_format=torch.channels_last)
        with suffix_only(self.model, self.cut, act, self.shapes):
            return self.model(dummy_input(len(act), 8, self.device))

    def groups(self, lr: float) -> list[dict]:
        cfg = OptimConfig(lr=lr, backbone_lr_scale=BACKBONE_SCALE, weight_decay=WEIGHT_DECAY)
        return param_groups(self.model, self.model.head, cfg)


def view_batches(
    acts: torch.Tensor, labels: torch.Tensor, idx: np.ndarray, seed: int, batch: int
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Batches of epoch ``e``: images ``idx`` shuffled, each in one of its views at random."""
    views = acts.shape[0]

    def epoch(e: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed * 7919 + e)
        order = torch.as_tensor(idx)[torch.randperm(len(idx), generator=g)]
        view = torch.randint(views, (len(order),), generator=g)
        for i in range(0, len(order), batch):
            rows = order[i : i + batch]
            if len(rows) < 2 and len(order) > 1:
                continue  # a batch of one breaks BatchNorm in the trained layers
            yield acts[view[i : i + batch][: len(rows)], rows], labels[rows]

    return epoch


def evaluate(suffix: SuffixModel, acts: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Accuracy and loss of ``suffix`` on clean-view activations ``acts``."""
    suffix.model.eval()
    with torch.inference_mode():
        logits = torch.cat(
            [suffix(acts[i : i + 64]).float().cpu() for i in range(0, len(acts), 64)]
        )
    suffix.model.train()
    loss = nn.functional.cross_entropy(logits, labels).item()
    return (logits.argmax(1) == labels).float().mean().item(), loss


def train_suffix(
    suffix: SuffixModel,
    batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    *,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    task: Task | None = None,
    after_epoch: Callable[[int], None] | None = None,
) -> None:
    """AdamW with a one-cycle schedule over ``epochs``, as the final run would train."""
    groups = suffix.groups(lr)
    optimizer = torch.optim.AdamW(groups)
    # A few spare steps: OneCycleLR divides by zero when its warm-up ends on step 0 exactly.
    total = max(1, epochs * steps_per_epoch) + 5
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in groups], total_steps=total, pct_start=0.25
    )
    criterion = nn.CrossEntropyLoss()
    suffix.model.train()
    for e in range(epochs):
        for x, y in batches(e):
            if task is not None:
                task.wait_while_paused()
                if task.cancelled:
                    raise Cancelled()
            loss = criterion(suffix(x).float(), y.to(suffix.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if after_epoch is not None:
            after_epoch(e)


def steps_for(images: int, batch: int = TRIAL_BATCH) -> int:
    return max(1, math.ceil(images / batch))
