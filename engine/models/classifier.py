"""The model a run trains: a pretrained backbone, a new linear head, and its layer groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.models.catalog import CatalogEntry
from engine.models.groups import GroupSpec, LayerGroup, make_groups
from engine.preprocess import Preprocess


@dataclass(frozen=True)
class ParamCount:
    """How many parameters train, out of how many."""

    trainable: int
    total: int


def count_parameters(model: nn.Module) -> ParamCount:
    """Trainable and total parameter counts of any module."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return ParamCount(trainable=trainable, total=total)


class Classifier(nn.Module):
    """``head(backbone(images))``: pooled backbone features into a dropout + linear head.

    ``groups`` lists every parameter exactly once, in forward order, ending with ``head``. In
    train mode the modules of fully frozen groups stay in eval mode, so frozen BatchNorm keeps its
    running statistics and frozen dropout stays off.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        num_classes: int,
        *,
        entry: CatalogEntry,
        preprocess: Preprocess,
        backbone_groups: GroupSpec,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(num_features, num_classes))
        self.num_features = num_features
        self.num_classes = num_classes
        self.preprocess = preprocess
        self.entry = entry
        self.tokenizer: Any = None  # text models: the backbone's Hugging Face tokenizer
        spec = [(name, [f"backbone.{p}" for p in names]) for name, names in backbone_groups]
        spec.append(("head", [n for n, _ in self.named_parameters() if n.startswith("head.")]))
        self.groups: tuple[LayerGroup, ...] = make_groups(self, spec)

    @property
    def modality(self) -> str:
        """ "image" or "text": what the backbone reads."""
        return self.entry.modality

    def forward(self, x: Any) -> torch.Tensor:
        """Class logits for a batch of images [B, 3, H, W] or of tokenized texts (a dict)."""
        return self.head(self.backbone(x))

    def forward_features(self, x: Any) -> torch.Tensor:
        """Pooled backbone features [B, num_features]."""
        return self.backbone(x)

    def train(self, mode: bool = True) -> Classifier:
        """Set train/eval mode; modules of frozen groups always stay in eval mode."""
        super().train(mode)
        if mode:
            frozen = set(self.frozen_group_names())
            modules = dict(self.named_modules())
            for group in self.groups:
                if group.name in frozen:
                    for name in group.module_names:
                        modules[name].training = False
        return self

    def frozen_group_names(self) -> list[str]:
        """Groups whose parameters are all frozen (requires_grad False), in order."""
        params = dict(self.named_parameters())
        return [
            g.name
            for g in self.groups
            if g.param_names and not any(params[p].requires_grad for p in g.param_names)
        ]
