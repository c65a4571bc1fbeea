"""Layer groups: the named, ordered slices of a backbone that a user freezes or trains.

Each family has its own rule (torchvision by architecture, timm through the model's own
``group_matcher``, anything else through its longest list of repeated blocks); every rule returns
``[(group name, [parameter names])]`` in forward order, and :func:`make_groups` turns that into
:class:`LayerGroup` records over the whole classifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from engine.models.errors import ModelError

GroupSpec = list[tuple[str, list[str]]]

_NORM_NAMES = {
    "norm",
    "fc_norm",
    "ln",
    "layernorm",
    "norm_pre",
    "head_norm",
    "final_layernorm",
    "post_layernorm",
    "ln_post",
}


@dataclass(frozen=True)
class LayerGroup:
    """One freezable slice of the model, in forward order."""

    name: str
    param_names: tuple[str, ...]
    module_names: tuple[str, ...]
    num_params: int


def make_groups(model: nn.Module, spec: GroupSpec) -> tuple[LayerGroup, ...]:
    """LayerGroups over ``model`` from a spec; every parameter must sit in exactly one group."""
    params = dict(model.named_parameters())
    owner: dict[str, str] = {}
    for name, names in spec:
        for p in names:
            if p in owner:
                raise ModelError(f"Parameter {p} is in both layer groups {owner[p]} and {name}.")
            if p not in params:
                raise ModelError(f"Layer group {name} names an unknown parameter {p}.")
            owner[p] = name
    missing = [p for p in params if p not in owner]
    if missing:
        raise ModelError(f"Parameters outside every layer group: {', '.join(missing[:5])}.")
    modules = _module_owners(model, owner)
    return tuple(
        LayerGroup(
            name=name,
            param_names=tuple(names),
            module_names=tuple(m for m, g in modules.items() if g == name),
            num_params=sum(params[p].numel() for p in names),
        )
        for name, names in spec
    )


def _module_owners(model: nn.Module, owner: dict[str, str]) -> dict[str, str]:
    """Modules wholly inside one group; parameterless ones follow their parent."""
    result: dict[str, str] = {}
    for name, module in model.named_modules():
        if not name:
            continue
        groups = {owner[f"{name}.{p}"] for p, _ in module.named_parameters()}
        if len(groups) == 1:
            result[name] = groups.pop()
        elif not groups:
            parent = name.rpartition(".")[0]
            if parent in result:
                result[name] = result[parent]
    return result


def by_prefix(module: nn.Module, rules: list[tuple[str, list[str]]]) -> GroupSpec:
    """Assign each parameter to the first rule with a matching module prefix (spec order kept)."""
    out: dict[str, list[str]] = {name: [] for name, _ in rules}
    for pname, _ in module.named_parameters():
        for name, prefixes in rules:
            if any(pname == p or pname.startswith(p + ".") for p in prefixes):
                out[name].append(pname)
                break
        else:
            raise ModelError(f"No layer group for parameter {pname}.")
    return [(name, names) for name, names in out.items() if names]


# -- torchvision --------------------------------------------------------------------------------


def torchvision_groups(model: nn.Module) -> GroupSpec:
    """Groups for torchvision's ResNet, EfficientNet, MobileNetV3, ConvNeXt and ViT families."""
    kind = type(model).__name__
    parts: Any = model  # each family's own submodules (features, encoder)
    if kind == "ResNet":
        return by_prefix(
            model,
            [("stem", ["conv1", "bn1"])] + [(f"layer{i}", [f"layer{i}"]) for i in range(1, 5)],
        )
    if kind == "EfficientNet":
        n = len(parts.features)
        rules = [("stem", ["features.0"])]
        rules += [(f"stage{i}", [f"features.{i}"]) for i in range(1, n - 1)]
        return by_prefix(model, [*rules, ("head_conv", [f"features.{n - 1}"])])
    if kind == "MobileNetV3":
        n = len(parts.features)
        rules = [("stem", ["features.0"])]
        rules += [(f"block{i}", [f"features.{i}"]) for i in range(1, n - 1)]
        rules += [("head_conv", [f"features.{n - 1}"]), ("pre_logits", ["classifier"])]
        return by_prefix(model, rules)
    if kind == "ConvNeXt":
        n = len(parts.features)
        rules = [("stem", ["features.0"]), ("stage1", ["features.1"])]
        rules += [
            (f"stage{i // 2 + 1}", [f"features.{i}", f"features.{i + 1}"]) for i in range(2, n, 2)
        ]
        return by_prefix(model, [*rules, ("final_norm", ["classifier"])])
    if kind == "VisionTransformer":
        layers = [name for name, _ in parts.encoder.layers.named_children()]
        rules = [("embeddings", ["conv_proj", "class_token", "encoder.pos_embedding"])]
        rules += [(f"block{i}", [f"encoder.layers.{n}"]) for i, n in enumerate(layers)]
        return by_prefix(model, [*rules, ("final_norm", ["encoder.ln"])])
    return repeated_block_groups(model)


# -- timm ---------------------------------------------------------------------------------------


def timm_groups(model: nn.Module) -> GroupSpec:
    """Groups from timm's own group_matcher: coarse (stages), finer when coarse gives too few."""
    if not hasattr(model, "group_matcher"):
        return repeated_block_groups(model)
    grouped = _timm_grouping(model, coarse=True)
    if len(grouped) < 4:
        fine = _timm_grouping(model, coarse=False)
        if len(fine) <= 30:
            grouped = fine
    return _named(model, grouped)


def _timm_grouping(model: nn.Module, *, coarse: bool) -> list[list[str]]:
    from timm.models import group_parameters
    from timm.models._manipulate import MATCH_PREV_GROUP

    timm_model: Any = model  # has group_matcher (timm_groups checked)
    matcher = timm_model.group_matcher(coarse=coarse)
    if isinstance(matcher, dict):
        # timm merges "previous group" matches (a final norm, a last conv) into the last block;
        # a user choosing what to freeze wants them as a group of their own.
        own = (MATCH_PREV_GROUP[0] - 1,)
        matcher = {
            key: [(rx, own if suffix == MATCH_PREV_GROUP else suffix) for rx, suffix in spec]
            if isinstance(spec, list | tuple)
            else spec
            for key, spec in matcher.items()
        }
    grouped = group_parameters(model, matcher)
    return [names for _, names in sorted(grouped.items()) if names]


def _named(model: nn.Module, lists: list[list[str]]) -> GroupSpec:
    spec: GroupSpec = []
    used: set[str] = {"head"}
    for index, names in enumerate(lists):
        name = _friendly(model, _common_prefix(names), index, len(lists), names)
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        spec.append((name, names))
    return spec


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".")[:-1] for n in names]
    common: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    return ".".join(common)


def _friendly(model: nn.Module, prefix: str, index: int, total: int, names: list[str]) -> str:
    match = re.match(r"(?:(.*?)\.)?(stages|blocks|layers|layer|features)\.(\d+)(?:\.|$)", prefix)
    if match:
        parent, kind, i = match.group(1), match.group(2), int(match.group(3))
        container_name = f"{parent}.{kind}" if parent else kind
        item = f"{container_name}.{i}"
        inside = {f"{item}.{p}" for p, _ in model.get_submodule(item).named_parameters()}
        if inside <= set(names):  # the group is the whole stage or block
            container = model.get_submodule(container_name)
            return f"stage{i + 1}" if _is_stage_list(kind, container) else f"block{i}"
    regnet = re.match(r"s(\d+)(?:\.|$)", prefix)  # timm RegNet names its stages s1..s4
    if regnet and hasattr(model, f"s{regnet.group(1)}"):
        return f"stage{regnet.group(1)}"
    last = prefix.rpartition(".")[2]
    if prefix in ("", "stem", "patch_embed") and index == 0:
        return "stem"
    if last in _NORM_NAMES:
        return "final_norm" if index == total - 1 else last
    if prefix.startswith("head") or prefix == "conv_head":
        return "head_conv" if any("conv" in n for n in names) else "pre_logits"
    if not prefix:
        has_conv = any(".conv" in n or n.startswith("conv") for n in names)
        return "head_conv" if has_conv and index == total - 1 else f"group{index}"
    return prefix.replace(".", "_")


def _is_stage_list(kind: str, container: nn.Module) -> bool:
    if kind == "stages":
        return True
    return any(
        (isinstance(c, nn.Sequential) and len(c) > 1) or "stage" in type(c).__name__.lower()
        for c in container.children()
    )


# -- anything else (Hugging Face) ---------------------------------------------------------------


def repeated_block_groups(module: nn.Module) -> GroupSpec:
    """Generic groups: what comes before the main list of repeated blocks, each block, the rest.

    The main list is the ``nn.ModuleList`` holding the most parameters (the outer one on a tie),
    so ViT- and BERT-like encoders give their layers and hierarchical models give their stages.
    """
    best_name, best_size = "", -1
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and len(child) > 1:
            size = sum(p.numel() for p in child.parameters())
            if size > best_size:
                best_name, best_size = name, size
    if not best_name:
        return [("backbone", [n for n, _ in module.named_parameters()])]
    container = module.get_submodule(best_name)
    stage = "stage" in best_name.rpartition(".")[2] or _is_stage_list("", container)
    pre: list[str] = []
    blocks: dict[str, list[str]] = {}
    post: list[str] = []
    for pname, _ in module.named_parameters():
        if pname.startswith(best_name + "."):
            index = pname[len(best_name) + 1 :].split(".")[0]
            blocks.setdefault(index, []).append(pname)
        elif blocks:
            post.append(pname)
        else:
            pre.append(pname)
    spec: GroupSpec = []
    if pre:
        embed = "embed" in _common_prefix(pre) or any("embed" in n for n in pre)
        spec.append(("embeddings" if embed else "stem", pre))
    for i, names in enumerate(blocks.values()):
        spec.append((f"stage{i + 1}" if stage else f"block{i}", names))
    if post:
        norms = all(
            "norm" in n.rpartition(".")[0].rpartition(".")[2]
            or n.rpartition(".")[0].rpartition(".")[2] in _NORM_NAMES
            for n in post
        )
        spec.append(("final_norm" if norms else "final", post))
    return spec
