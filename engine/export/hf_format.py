"""The Hugging Face format: the backbone's own save_pretrained folder plus the head, and for
LoRA runs the adapter in peft's format."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.export.checks import CheckBatch, compare, reference_probs
from engine.modalities import modality_of

HEAD_FILE = "head.safetensors"
HEAD_INFO = "refit_head.json"
ADAPTER_DIR = "adapter"
_PREPROCESSOR = "preprocessor_config.json"


def hf_refusal(entry: Any) -> str:
    """Empty when the backbone comes from transformers; else one sentence saying what works."""
    if modality_of(entry).hf_backbones_only or entry.family == "hf":
        return ""
    library = {"torchvision": "torchvision", "timm": "timm", "starter": "timm"}.get(
        entry.family, entry.family
    )
    return (
        f"{entry.display_name} is a {library} model, not a Hugging Face transformers model, so "
        "it cannot be exported in the hf format; export it as safetensors, torchscript or onnx."
    )


def source_folder(entry: Any) -> Path | None:
    """The Hugging Face folder the backbone was built from (for its preprocessor config)."""
    from engine.models.errors import ModelError

    try:
        return modality_of(entry).hf_source_folder(entry)
    except ModelError:
        return None


def save_backbone_files(model: Any, folder: Path, *, weights: bool) -> list[Path]:
    """The backbone's config.json (and weights when ``weights``), its tokenizer or image
    processor config; ``model`` is a Classifier without adapters."""
    inner = model.backbone.model
    folder.mkdir(parents=True, exist_ok=True)
    if weights:
        inner.save_pretrained(str(folder))
    else:
        inner.config.save_pretrained(str(folder))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(folder))
    source = source_folder(model.entry)
    copies = modality_of(model).copies_preprocessor()
    if copies and source is not None and (source / _PREPROCESSOR).is_file():
        shutil.copyfile(source / _PREPROCESSOR, folder / _PREPROCESSOR)
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _pooling(model: Any) -> str:
    pooling = modality_of(model).hf_pooling(model)
    if pooling is not None:
        return pooling
    if getattr(model.backbone, "use_pooler", False):
        return "pooler_output"
    if model.entry.is_convnet:
        return "mean of last_hidden_state over height and width"
    return "first (CLS) token of last_hidden_state"


def export_hf(
    run_model: Any, model: Any, classes: list[str], batch: CheckBatch, out: Path, config: Any
) -> tuple[list[Path], float, str]:
    """Write out/hf: the (merged) backbone, its tokenizer or image processor, the head, and for
    LoRA runs the peft adapter; reload it and check. Returns (files, max diff, sentence)."""
    from safetensors.torch import save_file

    from engine.models.lora import is_lora, save_adapter

    final = out / "hf"
    staging = out / f".hf.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        save_backbone_files(model, staging, weights=True)
        head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
        save_file(head, str(staging / HEAD_FILE))
        lora = is_lora(run_model)
        info = {
            "backbone": config.model.backbone,
            "classes": list(classes),
            "num_features": int(model.num_features),
            "pooling": _pooling(model),
            "head": "torch.nn.Linear(num_features, len(classes)) in head.safetensors as 1.weight "
            "and 1.bias; softmax of its output gives the class probabilities",
            "lora": {"merged_into_weights": True, "adapter": ADAPTER_DIR} if lora else None,
        }
        (staging / HEAD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if lora:
            save_adapter(run_model, staging / ADAPTER_DIR, list(classes))
        diff, sentence = _check(staging, model, batch, config)
        if lora:
            sentence = sentence[:-1] + "; " + _check_adapter(staging, batch, config, len(classes))
        _swap(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(p for p in final.rglob("*") if p.is_file()), diff, sentence


class _Reloaded(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Any) -> torch.Tensor:
        return self.head(self.backbone(x))


def _check(folder: Path, model: Any, batch: CheckBatch, config: Any) -> tuple[float, str]:
    """Reload the folder with transformers.AutoModel plus the head and compare."""
    import dataclasses

    from safetensors.torch import load_file

    from engine.models.hf import load_hf_model

    cfg = dataclasses.replace(config.model, backbone=str(folder))
    inner, _ = load_hf_model(folder, model.entry, cfg, need_weights=True)
    wrap = modality_of(model).hf_backbone_class()
    head = nn.Sequential(nn.Dropout(0.0), nn.Linear(model.num_features, len(batch.reference[0])))
    head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    reloaded = _Reloaded(wrap(inner), head).eval()
    return compare(reference_probs(reloaded, batch.inputs), batch, "Hugging Face folder")


def _check_adapter(folder: Path, batch: CheckBatch, config: Any, num_classes: int) -> str:
    """The adapter put onto the pretrained backbone, compared with the run."""
    from engine.models import build_model
    from engine.models.errors import WeightsUnavailableError
    from engine.models.lora import load_adapter

    try:
        base = build_model(config.model, num_classes)
    except WeightsUnavailableError:
        return "the adapter was not checked: the pretrained backbone is not on this computer."
    model = load_adapter(base, folder / ADAPTER_DIR).eval()
    diff, _ = compare(reference_probs(model, batch.inputs), batch, "LoRA adapter")
    return f"the adapter on the pretrained backbone differs by at most {diff:.1e}."


def _swap(staging: Path, final: Path) -> None:
    """Replace ``final`` with ``staging`` with two renames (an earlier export is set aside
    first, then deleted)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
