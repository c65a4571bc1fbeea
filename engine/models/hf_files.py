"""Hugging Face files on this computer, read without torch: the hub cache, a model folder's
config.json and its input geometry. The catalog reads these to describe 'hf:' entries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.models.errors import ModelError
from engine.preprocess import Preprocess

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


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment on every call."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface",
    )
    return Path(home).expanduser() / "hub"


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub repository in the local cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir())
    return Path(found) if isinstance(found, str) else None


def hf_config(path: Path) -> dict[str, Any]:
    """A model's config.json as a dict."""
    return read_json(path)


def cached_hf_folder(repo_id: str) -> Path | None:
    """The snapshot folder of a hub model in the local cache (it has a config.json), or None."""
    found = hf_cached_file(repo_id, "config.json")
    return found.parent if found is not None else None


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
        mean=_triple(mean) or default.mean,
        std=_triple(std) or default.std,
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


def _triple(value: Any) -> tuple[float, float, float] | None:
    """A list of three numbers as a tuple of floats; None for anything else."""
    if not (isinstance(value, list) and len(value) == 3):
        return None
    a, b, c = value
    return (float(a), float(b), float(c))


def read_json(path: Path) -> dict:
    """A JSON object from a file, or ModelError naming the file."""
    from engine.files import UnreadableFileError, read_json_object

    try:  # a model folder may come from anyone: a pipe or /dev/zero link is not read
        return read_json_object(path, max_bytes=64 * 1024 * 1024)
    except FileNotFoundError as exc:
        raise ModelError(f"Cannot read {path}: the file is missing.") from exc
    except UnreadableFileError as exc:
        raise ModelError(f"Cannot read {path}: it {exc}.") from exc
