"""What LoRA would do to a model the Layers page built: worked out in worker threads, since
finding the targets walks the model and counting the adapters copies it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NEEDS_TRANSFORMER = "LoRA needs a transformer backbone"


@dataclass(frozen=True)
class BuiltModel:
    """A model built for the Layers page, with the layers that can take an adapter."""

    model: Any  # engine.models.Classifier
    lora_candidates: tuple[str, ...]
    lora_defaults: tuple[str, ...]


def build_for_layers(model_config: Any, num_classes: int) -> BuiltModel:
    """Build the architecture (no weights) and find its LoRA targets; call in a worker."""
    from engine import build_model, default_lora_targets, lora_candidates

    model = build_model(model_config, num_classes, load_weights=False)
    candidates = tuple(lora_candidates(model))
    defaults = tuple(default_lora_targets(model)) if candidates else ()
    return BuiltModel(model=model, lora_candidates=candidates, lora_defaults=defaults)


def lora_count(model: Any, adapt: Any) -> tuple[int, int]:
    """(trainable, total) parameters with the adapters of ``adapt``; the model is unchanged.
    Cheap (counted from the layer shapes), but it walks the model: call in a worker."""
    from engine import lora_param_count

    count = lora_param_count(model, adapt)
    return int(count.trainable), int(count.total)
