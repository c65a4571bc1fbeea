"""Backbones: the catalog, offline weight resolution, the classifier, layer groups and freezing.

The names below are imported on first use, so ``from engine.models.catalog import ...`` stays
free of torch (the command line reads the catalog before torch has finished importing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_getattr

if TYPE_CHECKING:
    from engine.models.build import build_model
    from engine.models.catalog import CatalogEntry, list_catalog, resolve_entry
    from engine.models.classifier import Classifier, ParamCount, count_parameters
    from engine.models.errors import ModelError, WeightsUnavailableError
    from engine.models.freeze import (
        adapt_model,
        apply_freeze,
        backbone_is_frozen,
        resolve_frozen_groups,
        trained_architecture,
    )
    from engine.models.groups import LayerGroup
    from engine.models.weights import WeightsStatus, weights_status

_LAZY = {
    "build_model": "engine.models.build",
    "CatalogEntry": "engine.models.catalog",
    "list_catalog": "engine.models.catalog",
    "resolve_entry": "engine.models.catalog",
    "Classifier": "engine.models.classifier",
    "ParamCount": "engine.models.classifier",
    "count_parameters": "engine.models.classifier",
    "ModelError": "engine.models.errors",
    "WeightsUnavailableError": "engine.models.errors",
    "adapt_model": "engine.models.freeze",
    "apply_freeze": "engine.models.freeze",
    "backbone_is_frozen": "engine.models.freeze",
    "resolve_frozen_groups": "engine.models.freeze",
    "trained_architecture": "engine.models.freeze",
    "LayerGroup": "engine.models.groups",
    "WeightsStatus": "engine.models.weights",
    "weights_status": "engine.models.weights",
}

__all__ = [
    "CatalogEntry",
    "Classifier",
    "LayerGroup",
    "ModelError",
    "ParamCount",
    "WeightsStatus",
    "WeightsUnavailableError",
    "adapt_model",
    "apply_freeze",
    "backbone_is_frozen",
    "build_model",
    "count_parameters",
    "list_catalog",
    "resolve_entry",
    "resolve_frozen_groups",
    "trained_architecture",
    "weights_status",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
