"""Hugging Face text encoders as backbones: tokenized texts in, one feature vector out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import ModelConfig
from engine.models.catalog import CatalogEntry
from engine.models.errors import ModelError, first_line

TokenBatch = dict[str, torch.Tensor]


class HFTextBackbone(nn.Module):
    """A transformer encoder as ``{"input_ids", "attention_mask"} -> pooled features``.

    Features are the mean of the last hidden states over the real (unpadded) tokens, as
    sentence-transformers pool all-MiniLM-L6-v2; unlike the [CLS] token it needs no pretrained
    pooler, so it is a good feature for a linear probe and fine-tunes as well. The model's own
    pooler (trained for next-sentence prediction, if at all) is dropped.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if isinstance(getattr(model, "pooler", None), nn.Module):
            model.pooler = None  # type: ignore[assignment]  # Module.__setattr__ takes None
        self.model = model

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        mask = batch["attention_mask"]
        out = self.model(input_ids=batch["input_ids"], attention_mask=mask)
        hidden = out.last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def text_folder(entry: CatalogEntry, *, need_weights: bool) -> Path:
    """The local folder of a text backbone (the starter's package folder or a HF folder)."""
    if entry.family == "starter":
        from engine.models.weights import text_starter_folder

        return text_starter_folder()
    from engine.models.weights import hf_folder

    return hf_folder(entry.name, need_weights=need_weights, modality="text")


def load_tokenizer(folder: Path, *, model: str | None = None, asked: bool = False) -> Any:
    """The fast tokenizer saved with a model, from local files only; code shipped with it runs
    only when engine.trust says the user allowed it (``asked``: a config's record only)."""
    from engine.trust import remote_code_kwargs

    remote = remote_code_kwargs(folder, model or str(folder), asked=asked)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, use_fast=True, **remote
        )
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelError(
            f"The model folder {folder} has no usable tokenizer ({first_line(exc)}); copy the "
            "tokenizer files (tokenizer.json or vocab.txt and tokenizer_config.json) into it."
        ) from exc


def build_text_backbone(
    entry: CatalogEntry, cfg: ModelConfig, *, load_weights: bool
) -> tuple[HFTextBackbone, int, Any]:
    """Backbone, feature width and tokenizer of a text entry; never downloads."""
    from engine.models.hf import load_hf_model

    need_weights = load_weights and cfg.pretrained and not cfg.weights
    folder = text_folder(entry, need_weights=need_weights)
    model, hf_cfg = load_hf_model(folder, entry, cfg, need_weights=need_weights)
    tokenizer = load_tokenizer(folder, model=entry.display_name, asked=cfg.allow_remote_code)
    width = getattr(hf_cfg, "hidden_size", None) or getattr(hf_cfg, "dim", None)
    if not isinstance(width, int):
        raise ModelError(f"{entry.display_name} does not say its hidden size in config.json.")
    return HFTextBackbone(model), width, tokenizer


def token_limit(tokenizer: Any, backbone: nn.Module, wanted: int) -> int:
    """``wanted`` capped by the tokenizer's and the position embeddings' limits."""
    limits = [wanted]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        limits.append(model_max)
    config = getattr(getattr(backbone, "model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve two positions for the padding offset.
        offset = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta") else 0
        limits.append(positions - offset)
    return min(limits)
