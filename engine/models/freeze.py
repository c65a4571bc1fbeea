"""Freeze plans: which layer groups keep their pretrained weights."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.config import AdaptConfig, Method
from engine.models.classifier import Classifier, ParamCount, count_parameters
from engine.models.errors import ModelError


def resolve_frozen_groups(model: Classifier, adapt: AdaptConfig) -> list[str]:
    """Names of the groups to freeze for a method, in forward order; the head always trains."""
    body = [g.name for g in model.groups if g.name != "head"]
    method = Method(adapt.method)
    if method in (Method.LINEAR_PROBE, Method.AUTO):
        return body  # auto is resolved when the run starts; until then nothing is chosen
    if method is Method.FULL:
        return []
    if method is Method.LORA:
        return body  # the backbone's own weights; the adapters are added by apply_lora
    if method is Method.LAST_N:
        keep = max(0, adapt.last_n)
        return body[: max(0, len(body) - keep)]
    return _checked(model, adapt.frozen_groups)


def _checked(model: Classifier, names: Iterable[str]) -> list[str]:
    valid = [g.name for g in model.groups]
    wanted = set(names)
    unknown = sorted(wanted - set(valid))
    if unknown:
        raise ModelError(
            f"{model.entry.name} has no layer group {unknown[0]!r}; its groups are: "
            f"{', '.join(valid)}."
        )
    if "head" in wanted:
        raise ModelError("The head cannot be frozen: it is the new layer that learns your classes.")
    return [name for name in valid if name in wanted]


def apply_freeze(model: Classifier, frozen: Iterable[str]) -> ParamCount:
    """Freeze exactly the named groups (unfreeze the rest); returns the parameter counts."""
    names = set(_checked(model, frozen))
    params = dict(model.named_parameters())
    for group in model.groups:
        for p in group.param_names:
            params[p].requires_grad_(group.name not in names)
    model.train(model.training)  # re-apply: frozen groups' BatchNorm and dropout to eval
    return count_parameters(model)


def backbone_is_frozen(model: Classifier) -> bool:
    """True when no backbone parameter trains, so backbone features can be computed once."""
    return not any(p.requires_grad for p in model.backbone.parameters())


def adapt_model(model: Classifier, adapt: AdaptConfig) -> tuple[list[str], ParamCount]:
    """Apply a run's method: a freeze plan, or LoRA adapters in a frozen backbone.

    Returns the frozen groups and the parameter counts.
    """
    if Method(adapt.method) is Method.LORA:
        from engine.models.lora import apply_lora

        count = apply_lora(model, adapt)
        return model.frozen_group_names(), count
    frozen = resolve_frozen_groups(model, adapt)
    return frozen, apply_freeze(model, frozen)


def trained_architecture(config: Any, num_classes: int) -> Classifier:
    """The architecture a run trained (adapters included), ready for its checkpoint's weights;
    reads no pretrained weights."""
    from engine.models.build import build_model

    model = build_model(config.model, num_classes, load_weights=False)
    if Method(config.adapt.method) is Method.LORA:
        from engine.models.lora import apply_lora

        apply_lora(model, config.adapt)
    return model
