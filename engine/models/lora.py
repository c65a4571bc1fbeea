"""LoRA through peft: low-rank adapters in a frozen transformer backbone, saved in peft's format.

The adapters go into the backbone's own model (the Hugging Face model inside a wrapper, or the
timm / torchvision network itself), so the saved adapter loads onto the same base model with
``peft.PeftModel.from_pretrained`` anywhere. The head is a new layer and trains in full.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from engine.config import AdaptConfig, Method
from engine.modalities import modality_of
from engine.models.classifier import Classifier, ParamCount, count_parameters
from engine.models.errors import ModelError
from engine.models.groups import make_groups
from engine.pickles import is_refused_pickle, refusal

ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"

# Defaults by the layer names an architecture uses for its attention projections: query and
# value, as in the LoRA paper and peft's own table; fused qkv layers (timm ViT) and
# torchvision's nn.MultiheadAttention take the adapter on the fused projection.
_PREFERRED: tuple[tuple[str, ...], ...] = (
    ("query", "value"),
    ("q_lin", "v_lin"),
    ("query_proj", "value_proj"),
    ("q_proj", "v_proj"),
    ("q", "v"),
    ("qkv",),
    ("Wqkv",),
    ("self_attention",),
    ("in_proj",),
)
_ADAPTABLE = (nn.Linear, nn.MultiheadAttention)


def lora_host(model: Classifier) -> tuple[nn.Module, str]:
    """(parent, attribute) of the module that gets the adapters: the HF model in a wrapper, or
    the backbone itself."""
    backbone = model.backbone
    inner = getattr(backbone, "model", None)
    if isinstance(inner, nn.Module) and hasattr(inner, "config"):
        return backbone, "model"
    return model, "backbone"


def lora_candidates(model: Classifier) -> list[str]:
    """Leaf names of the layers inside the backbone's blocks that can take an adapter, in order.

    Empty for networks without linear or attention layers in their blocks (convnets).
    """
    parent, attr = lora_host(model)
    host = getattr(parent, attr)
    names: dict[str, None] = {}
    for name, module in host.named_modules():
        if not isinstance(module, _ADAPTABLE) or not _in_block(name):
            continue
        if any(name.startswith(f"{p}.") for p in _mha_names(host)):
            continue  # the out_proj inside nn.MultiheadAttention belongs to the attention layer
        leaf = _leaf(name)
        names[leaf] = None
    return list(names)


def default_lora_targets(model: Classifier) -> list[str]:
    """The automatic choice of target layers: attention query/value projections, else all."""
    candidates = lora_candidates(model)
    for group in _PREFERRED:
        if all(name in candidates for name in group):
            return list(group)
    return candidates


def resolve_lora_targets(model: Classifier, adapt: AdaptConfig) -> list[str]:
    """The configured targets checked against the model, or the automatic choice."""
    candidates = lora_candidates(model)
    if not candidates:
        raise ModelError(
            f"{model.entry.display_name} has no attention or linear layers in its blocks, so LoRA "
            "cannot adapt it; LoRA needs a transformer backbone. Choose last-n or full instead."
        )
    targets = list(adapt.lora_targets) or default_lora_targets(model)
    unknown = [t for t in targets if t not in candidates]
    if unknown:
        raise ModelError(
            f"{model.entry.display_name} has no layer called {unknown[0]!r} that LoRA can adapt; "
            f"choose among: {', '.join(candidates)}."
        )
    return targets


def apply_lora(model: Classifier, adapt: AdaptConfig) -> ParamCount:
    """Freeze the backbone and insert LoRA adapters; the head trains. Returns the counts."""
    from peft import LoraConfig, get_peft_model

    targets = resolve_lora_targets(model, adapt)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    parent, attr = lora_host(model)
    config = LoraConfig(
        r=adapt.lora_rank,
        lora_alpha=adapt.lora_alpha,  # type: ignore[arg-type]  # peft scales by alpha / r
        lora_dropout=adapt.lora_dropout,
        target_modules=_target_names(getattr(parent, attr), targets),
        bias="none",
    )
    setattr(parent, attr, get_peft_model(getattr(parent, attr), config))
    _regroup(model)
    for p in model.head.parameters():
        p.requires_grad_(True)
    model.train(model.training)
    return count_parameters(model)


def lora_param_count(model: Classifier, adapt: AdaptConfig) -> ParamCount:
    """The counts :func:`apply_lora` would give, worked out without changing or copying
    ``model``: rank × (inputs + outputs) per adapted linear layer; an nn.MultiheadAttention
    gets one adapter on its packed input projection and one on its output projection."""
    targets = resolve_lora_targets(model, adapt)
    parent, attr = lora_host(model)
    host = getattr(parent, attr)
    modules = dict(host.named_modules())
    r, added = adapt.lora_rank, 0
    for name in _target_names(host, targets):
        module = modules[name]
        if isinstance(module, nn.MultiheadAttention):
            e = module.embed_dim
            added += r * (e + 3 * e) + r * (e + e)
        else:
            added += r * (module.in_features + module.out_features)
    head = sum(p.numel() for p in model.head.parameters())
    total = sum(p.numel() for p in model.parameters())
    return ParamCount(trainable=added + head, total=total + added)


def is_lora(model: Classifier) -> bool:
    """Whether ``model`` carries LoRA adapters."""
    parent, attr = lora_host(model)
    return _is_peft(getattr(parent, attr))


def save_adapter(model: Classifier, folder: Path, classes: list[str]) -> Path:
    """Write the adapter in peft's format plus the head, and what rebuilds the classifier."""
    from safetensors.torch import save_file

    parent, attr = lora_host(model)
    peft_model = getattr(parent, attr)
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(folder))
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(folder / "head.safetensors"))
    info = {"backbone": model.entry.name, "classes": list(classes), "pooling": _pooling(model)}
    (folder / "refit_head.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return folder


def load_adapter(model: Classifier, folder: Path) -> Classifier:
    """Put a saved adapter and head onto a freshly built classifier of the same backbone."""
    from peft import PeftModel
    from safetensors.torch import load_file

    from engine.models.errors import first_line
    from engine.models.weights import USE_SAFE_WEIGHTS
    from engine.safe_read import IS_MISSING, WEIGHTS_LIMIT, file_problem

    if not (folder / "adapter_config.json").exists():
        raise ModelError(f"{folder} holds no LoRA adapter (adapter_config.json is missing).")
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        # peft opens these itself: a pipe would hang it, a link to /dev/zero fill memory.
        problem = file_problem(folder / name, WEIGHTS_LIMIT, what="weights file")
        if problem and problem != IS_MISSING:
            raise ModelError(f"The LoRA adapter file {folder / name} {problem}.")
    parent, attr = lora_host(model)
    try:
        adapted = PeftModel.from_pretrained(getattr(parent, attr), str(folder))
    except Exception as exc:  # peft and torch raise many kinds for a bad adapter file
        if is_refused_pickle(exc):
            raise ModelError(refusal(folder / "adapter_model.bin", USE_SAFE_WEIGHTS)) from exc
        raise ModelError(
            f"The LoRA adapter in {folder} cannot be loaded ({first_line(exc)})."
        ) from exc
    setattr(parent, attr, adapted)
    _regroup(model)
    head = folder / "head.safetensors"
    problem = file_problem(head, WEIGHTS_LIMIT, what="weights file")
    if problem and problem != IS_MISSING:
        raise ModelError(f"The head weights {head} {problem}; export or train the run again.")
    if not problem:
        model.head.load_state_dict(load_file(str(head)))
    return model


def merged_copy(model: Classifier) -> Classifier:
    """A copy of ``model`` with its adapters merged into the weights: a plain classifier again,
    with the parameter names of a model that never had adapters."""
    merged = copy.deepcopy(model)
    parent, attr = lora_host(merged)
    setattr(parent, attr, getattr(parent, attr).merge_and_unload())
    _regroup(merged)
    return merged


def save_merged(model: Classifier, folder: Path) -> Path:
    """Write the merged model: the whole classifier as safetensors, and for Hugging Face
    backbones also a ``save_pretrained`` folder (with the tokenizer) of the merged encoder."""
    from safetensors.torch import save_file

    merged = merged_copy(model)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in merged.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    parent, attr = lora_host(merged)
    inner = getattr(parent, attr)
    if hasattr(inner, "save_pretrained") and attr == "model":
        inner.save_pretrained(str(folder / "encoder"))
        if merged.tokenizer is not None:
            merged.tokenizer.save_pretrained(str(folder / "encoder"))
    return folder


def uses_lora(adapt: AdaptConfig) -> bool:
    """Whether a run's method is LoRA."""
    return Method(adapt.method) is Method.LORA


# -- helpers ------------------------------------------------------------------------------------


def _is_peft(module: nn.Module) -> bool:
    # A model can only carry peft's adapters once peft is imported; importing it just to ask
    # costs most of a second.
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(module, peft.PeftModel)


def _regroup(model: Classifier) -> None:
    """Rebuild the layer groups after peft renamed parameters (by name: peft re-creates some
    tensors, so identity would mislead); an adapter joins the group of the layer it adapts."""
    order = [g.name for g in model.groups]
    by_name = {_plain(n): g.name for g in model.groups for n in g.param_names}
    spec: dict[str, list[str]] = {name: [] for name in order}
    for name, _ in model.named_parameters():
        group = _group_by_name(name, by_name)
        spec[group].append(name)
    model.groups = make_groups(model, [(name, spec[name]) for name in order])


def _plain(name: str) -> str:
    """A parameter name without what peft adds: 'base_model.model.', '.base_layer'."""
    return name.replace("base_model.model.", "", 1).replace(".base_layer", "")


def _group_by_name(name: str, by_name: dict[str, str]) -> str:
    plain = _plain(name)
    if plain in by_name:
        return by_name[plain]
    layer = plain.split(".lora_")[0] + "."
    for other, group in by_name.items():
        if other.startswith(layer):
            return group
    raise ModelError(f"Cannot place the adapter parameter {name} in a layer group.")


def _target_names(host: nn.Module, targets: list[str]) -> list[str]:
    """Full names of the target layers inside the repeated blocks only (not, say, a 'dense'
    layer of the embeddings or the pooler); peft matches them exactly."""
    wanted = set(targets)
    return [
        name
        for name, module in host.named_modules()
        if isinstance(module, _ADAPTABLE) and _in_block(name) and _leaf(name) in wanted
    ]


def _in_block(name: str) -> bool:
    return any(part.isdigit() or part.startswith("encoder_layer_") for part in name.split("."))


def _leaf(name: str) -> str:
    """The layer's name inside its block: 'query' for 'encoder.layer.0.attention.self.query',
    'mlp.0' for torchvision's numbered Sequential children."""
    parts = name.split(".")
    if parts[-1].isdigit() and len(parts) > 1:
        return ".".join(parts[-2:])
    return parts[-1]


def _mha_names(host: nn.Module) -> list[str]:
    return [n for n, m in host.named_modules() if isinstance(m, nn.MultiheadAttention)]


def _pooling(model: Classifier) -> str:
    return modality_of(model).lora_pooling


def describe_targets(model: Classifier) -> dict[str, Any]:
    """Candidates and the automatic choice, for the GUI and `refit backbones`."""
    return {"candidates": lora_candidates(model), "default": default_lora_targets(model)}
