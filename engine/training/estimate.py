"""A quick measurement of how long an epoch will take, for the Layers page."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from engine.config import RunConfig
from engine.modalities import modality_of
from engine.task import Task, as_task
from engine.training.devices import resolve_placement

if TYPE_CHECKING:
    from engine.models.classifier import Classifier


@dataclass(frozen=True)
class EpochEstimate:
    """Seconds of compute per epoch, measured on random input on the chosen device."""

    device: str
    seconds_per_image: float  # per example: an image or a text
    first_epoch_s: float
    later_epoch_s: float
    cached: bool

    def sentence(self) -> str:
        dev = self.device
        if self.cached:
            return (
                f"About {_duration(self.first_epoch_s)} to compute the features once on "
                f"{dev}, then well under a second per epoch."
            )
        return f"About {_duration(self.later_epoch_s)} per epoch on {dev} (compute only)."


def estimate_epoch_seconds(
    model: Classifier,
    config: RunConfig,
    frozen: list[str],
    train_size: int,
    *,
    repeats: int = 2,
    text_tokens: int | None = None,
    task: Task | None = None,
) -> EpochEstimate:
    """Time a few forward (and, when something in the backbone trains, backward) passes.

    Images are random pixels of the model's input size; texts are ``text_tokens`` random tokens
    (default: the smaller of ``data.max_length`` and 48, a typical short message). With method
    lora the adapters are inserted and ``frozen`` is ignored. Cancelling ``task`` (checked
    between passes) raises engine.task.Cancelled.
    """
    from engine.config import Method
    from engine.models import apply_freeze, backbone_is_frozen

    task = as_task(task)
    model = copy.deepcopy(model)
    if Method(config.adapt.method) is Method.LORA:
        from engine.models.lora import apply_lora

        apply_lora(model, config.adapt)
    else:
        apply_freeze(model, frozen)
    cached = backbone_is_frozen(model)
    placement = resolve_placement(config.device)
    model.to(placement.device)
    batch = max(1, min(config.schedule.batch_size, 8))
    channels_last = config.device.channels_last and model.entry.is_convnet
    if channels_last:
        model.to(memory_format=torch.channels_last)
    x: Any = modality_of(model).random_batch(
        model,
        batch,
        tokens=text_tokens or min(config.data.max_length, 48),
        device=placement.device,
        channels_last=channels_last,
    )

    def once() -> None:
        if cached:
            model.eval()
            with torch.inference_mode(), placement.autocast():
                model.forward_features(x)
        else:
            model.train()
            with placement.autocast():
                loss = model(x).float().logsumexp(dim=1).mean()
            loss.backward()
            model.zero_grad(set_to_none=True)
        if placement.device.type == "cuda":
            torch.cuda.synchronize()

    # The first few passes on a CPU are several times slower than the rest (allocator and
    # oneDNN warm-up), so time a few and take the fastest; stop early when passes are slow.
    times: list[float] = []
    budget = time.perf_counter() + 20.0
    for _ in range(2 + repeats):
        task.check_cancelled()
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
        if len(times) > 1 and time.perf_counter() > budget:
            break
    per_image = min(times[1:] or times) / batch
    epoch = per_image * train_size
    return EpochEstimate(
        device=placement.description,
        seconds_per_image=per_image,
        first_epoch_s=epoch,
        later_epoch_s=0.05 if cached else epoch,
        cached=cached,
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
