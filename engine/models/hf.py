"""Hugging Face backbones: local folders and cached hub models, loaded without the network."""

from __future__ import annotations

import os
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import torch
from torch import nn

from engine.config import ModelConfig
from engine.models.catalog import TEXT_STARTER, CatalogEntry, read_json
from engine.models.errors import ModelError
from engine.models.weights import (
    _ALTERNATIVES,
    USE_SAFE_WEIGHTS,
    _unavailable,
    hf_cache_dir,
    hf_cached_file,
)
from engine.pickles import is_refused_pickle, refusal
from engine.preprocess import Preprocess

TEXT_ALTERNATIVES = f"use the offline starter text backbone {TEXT_STARTER}"

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_CONVNETS = {
    "convnext",
    "convnextv2",
    "resnet",
    "efficientnet",
    "mobilenet_v1",
    "mobilenet_v2",
    "regnet",
    "bit",
    "van",
    "mobilevit",
    "mobilevitv2",
    "levit",
    "poolformer",
}


def hf_config(path: Path) -> dict[str, Any]:
    """A model's config.json as a dict."""
    return read_json(path)


def cached_hf_folder(repo_id: str) -> Path | None:
    """The snapshot folder of a hub model in the local cache (it has a config.json), or None."""
    found = hf_cached_file(repo_id, "config.json")
    return found.parent if found is not None else None


def hf_folder(name: str, *, need_weights: bool, modality: str = "image") -> Path:
    """The local folder of an 'hf:' or folder entry; raises when it or its weights are missing."""
    alternatives = _ALTERNATIVES if modality == "image" else TEXT_ALTERNATIVES
    if name.startswith("hf:"):
        repo = name[len("hf:") :]
        folder = cached_hf_folder(repo)
        where = hf_cache_dir() / f"models--{repo.replace('/', '--')}"
        how = (
            f"On a computer with internet run 'hf download {repo}' and copy its cache folder to "
            f"{where} (or copy the downloaded model folder here and choose it), or "
            f"{alternatives}."
        )
        if folder is None:
            raise _unavailable(
                f"The model {repo} is not on this computer. {how}", f"https://huggingface.co/{repo}"
            )
    else:
        folder = Path(name)
        how = f"Copy the model's weights (model.safetensors) into {folder}, or {alternatives}."
        if not (folder / "config.json").is_file():
            raise _unavailable(f"The model folder {folder} has no config.json. {how}", str(folder))
    if need_weights and not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise _unavailable(f"The model folder {folder} has no weights file. {how}", str(folder))
    return folder


def is_hf_convnet(config: dict[str, Any]) -> bool:
    """Whether a Hugging Face config describes a convolutional network."""
    return config.get("model_type") in _CONVNETS


def hf_preprocess(folder: Path | None, config: dict[str, Any]) -> Preprocess:
    """Input geometry from preprocessor_config.json, else from config.json's image_size."""
    pre: dict[str, Any] = {}
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        pre = read_json(folder / "preprocessor_config.json")
    image_size = config.get("image_size")
    if isinstance(image_size, list | tuple):
        image_size = image_size[-1]
    resize = _edge(pre.get("size"))
    crop = _edge(pre.get("crop_size")) if pre.get("do_center_crop") else None
    size = crop or resize or image_size or 224
    if pre.get("crop_pct"):
        crop_pct = float(pre["crop_pct"])
    elif crop and resize and resize > crop:
        crop_pct = crop / resize
    else:
        crop_pct = 1.0 if pre else 0.875
    default = Preprocess()
    mean, std = pre.get("image_mean"), pre.get("image_std")
    return Preprocess(
        input_size=int(size),
        mean=tuple(float(v) for v in mean) if _triple(mean) else default.mean,
        std=tuple(float(v) for v in std) if _triple(std) else default.std,
        interpolation="bicubic" if pre.get("resample") == 3 else "bilinear",
        crop_pct=crop_pct,
    )


def _edge(size: Any) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        for key in ("shortest_edge", "height", "width"):
            if isinstance(size.get(key), int):
                return size[key]
    return None


def _triple(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3


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
            model.pooler = None
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
    if entry.modality != "image":
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

    remote = remote_code_kwargs(folder, entry.display_name, asked=cfg.allow_remote_code)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: files are local anyway
    from transformers import AutoConfig, AutoModel

    from engine.models.text import first_line, quiet_transformers

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
