"""Backbones: the catalog, offline weight resolution, the classifier, layer groups and freezing."""

from __future__ import annotations

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
