"""Hugging Face backbones: local folders and cached hub models, loaded without the network."""

from __future__ import annotations

import os
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import torch
from torch import nn

from engine.config import ModelConfig
from engine.modalities import IMAGE, modality_of
from engine.models.catalog import CatalogEntry
from engine.models.errors import ModelError, first_line
from engine.models.hf_files import WEIGHT_FILES
from engine.models.weights import USE_SAFE_WEIGHTS, hf_folder
from engine.pickles import is_refused_pickle, refusal


def quiet_transformers() -> None:
    """No download progress bars or deprecation chatter from transformers in the app's output:
    every file is local, and the user cannot act on library warnings."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", category=FutureWarning, module="peft")


class HFBackbone(nn.Module):
    """A Hugging Face vision model as ``images -> pooled features``.

    Poolers with parameters (ViT, BERT) are dropped because image classification checkpoints do
    not train them; the first (CLS) token of the final hidden state is used instead, as
    ViTForImageClassification does. Parameter-free poolers (ConvNeXt, ResNet) are kept.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        pooler = getattr(model, "pooler", None)
        if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
            model.pooler = None  # type: ignore[assignment]  # Module.__setattr__ takes None
            pooler = None
        self.model = model
        self.use_pooler = pooler is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None) if self.use_pooler else None
        if pooled is not None:
            return pooled.flatten(1)
        hidden = out.last_hidden_state
        if hidden.dim() == 4:
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0]


def build_hf_backbone(
    entry: CatalogEntry,
    cfg: ModelConfig,
    *,
    load_weights: bool,
) -> tuple[HFBackbone, int]:
    """The backbone of an 'hf:' or folder entry and its feature width; never downloads."""
    need_weights = load_weights and cfg.pretrained and not cfg.weights
    folder = hf_folder(entry.name, need_weights=need_weights)
    if modality_of(entry) is not IMAGE:
        raise ModelError(f"{entry.display_name} reads {entry.modality}, not images.")
    model, _ = load_hf_model(folder, entry, cfg, need_weights=need_weights)
    backbone = HFBackbone(model.float())
    size = entry.preprocess.input_size
    with torch.no_grad():
        backbone.eval()
        num_features = int(backbone(torch.zeros(1, 3, size, size)).shape[-1])
        backbone.train()
    return backbone, num_features


def load_hf_model(
    folder: Path, entry: CatalogEntry, cfg: ModelConfig, *, need_weights: bool
) -> tuple[nn.Module, Any]:
    """(AutoModel in float32, its config) from a local folder; never downloads. Code shipped
    with the model runs only when engine.trust says the user allowed it (``cfg`` only records
    whether it was asked for)."""
    from engine.trust import remote_code_kwargs

    remote: dict[str, Any] = remote_code_kwargs(
        folder, entry.display_name, asked=cfg.allow_remote_code
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: files are local anyway
    from transformers import AutoConfig, AutoModel

    quiet_transformers()
    try:
        hf_cfg = AutoConfig.from_pretrained(str(folder), local_files_only=True, **remote)
        if need_weights:
            model = AutoModel.from_pretrained(
                str(folder),
                config=hf_cfg,
                local_files_only=True,
                dtype=torch.float32,
                **remote,
            )
        else:
            model = AutoModel.from_config(hf_cfg, **remote)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError, UnpicklingError) as exc:
        if is_refused_pickle(exc):
            raise ModelError(refusal(_weights_file(folder), USE_SAFE_WEIGHTS)) from exc
        raise ModelError(
            f"Cannot load the Hugging Face model {entry.display_name}: {first_line(exc)}"
        ) from exc
    return model.float(), hf_cfg


def _weights_file(folder: Path) -> Path:
    """The weights file transformers reads from ``folder`` (for naming it in a sentence)."""
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), folder)
