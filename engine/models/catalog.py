"""The backbone catalog: curated entries plus 'timm:NAME', 'hf:ID' and local Hugging Face folders.

Catalog entries are plain data so that listing them imports neither torchvision nor timm; the tests
check every number here against the libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from engine.modalities import IMAGE, TEXT
from engine.models.errors import ModelError
from engine.models.hf_files import cached_hf_folder, hf_config, hf_preprocess, is_hf_convnet
from engine.preprocess import Preprocess

STARTER = IMAGE.starter
TEXT_STARTER = TEXT.starter


class _Normalisation(TypedDict):
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_IMAGENET: _Normalisation = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

NAMING_HELP = (
    "Name a model by its catalog name (for example efficientnet_lite0 or resnet50), "
    "'timm:NAME' for any timm model, 'hf:ORG/NAME' for a Hugging Face model in the local cache, "
    "or the path of a local Hugging Face model folder (one with a config.json). For text, the "
    f"offline starter is {TEXT_STARTER}."
)
_TEXT = Preprocess()  # unused by text models; kept so every entry has the same fields


@dataclass(frozen=True)
class CatalogEntry:
    """A backbone the user can pick: what it is called, where it comes from, how it sees images.

    ``params`` counts the backbone's parameters without its ImageNet classification layer (None
    when unknown without building the model).
    """

    name: str
    family: str  # "starter" | "torchvision" | "timm" | "hf"
    display_name: str
    description: str
    params: int | None
    preprocess: Preprocess
    is_convnet: bool
    modality: str = "image"


def _tv_pre(resize: int, interpolation: str = "bilinear") -> Preprocess:
    return Preprocess(
        input_size=224, crop_pct=224 / resize, interpolation=interpolation, **_IMAGENET
    )


_CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        STARTER,
        "starter",
        "EfficientNet-Lite0 (starter)",
        "Small, fast ImageNet convnet that installs with Refit Studio: works offline.",
        3_371_008,
        Preprocess(interpolation="bicubic", **_IMAGENET),
        True,
    ),
    CatalogEntry(
        "resnet18",
        "torchvision",
        "ResNet-18",
        "Classic small residual network; quick to train, a sound baseline.",
        11_176_512,
        _tv_pre(256),
        True,
    ),
    CatalogEntry(
        "resnet50",
        "torchvision",
        "ResNet-50",
        "The standard residual network; strong general features, moderate cost.",
        23_508_032,
        _tv_pre(232),
        True,
    ),
    CatalogEntry(
        "efficientnet_b0",
        "torchvision",
        "EfficientNet-B0",
        "Efficient convnet; good accuracy for its size.",
        4_007_548,
        _tv_pre(256, "bicubic"),
        True,
    ),
    CatalogEntry(
        "mobilenet_v3_large",
        "torchvision",
        "MobileNetV3-Large",
        "Very light convnet for slow computers and many images.",
        4_202_032,
        _tv_pre(232),
        True,
    ),
    CatalogEntry(
        "convnext_tiny",
        "torchvision",
        "ConvNeXt-Tiny",
        "Modern convnet; excellent transfer, needs a GPU for full fine-tuning.",
        27_820_128,
        _tv_pre(236),
        True,
    ),
    CatalogEntry(
        "vit_b_16",
        "torchvision",
        "ViT-B/16",
        "Vision transformer (base); strong with enough data, heavy on a CPU.",
        85_798_656,
        _tv_pre(256),
        False,
    ),
    CatalogEntry(
        "timm:convnext_nano",
        "timm",
        "ConvNeXt-Nano (timm)",
        "Compact ConvNeXt pretrained on ImageNet-22k, fine-tuned on ImageNet-1k.",
        14_952_560,
        Preprocess(interpolation="bicubic", crop_pct=0.95, **_IMAGENET),
        True,
    ),
    CatalogEntry(
        "timm:vit_small_patch16_224",
        "timm",
        "ViT-S/16 (timm)",
        "Small vision transformer (AugReg, ImageNet-21k); a light transformer choice.",
        21_665_664,
        Preprocess(
            interpolation="bicubic", crop_pct=0.9, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
        ),
        False,
    ),
    CatalogEntry(
        "timm:mobilenetv4_conv_small",
        "timm",
        "MobileNetV4-Small (timm)",
        "Tiny, fast convnet; for slow computers.",
        2_493_024,
        Preprocess(interpolation="bicubic", **_IMAGENET),
        True,
    ),
)


def _text(name: str, display: str, description: str, params: int | None) -> CatalogEntry:
    return CatalogEntry(name, "hf", display, description, params, _TEXT, False, "text")


_CATALOG += (
    CatalogEntry(
        TEXT_STARTER,
        "starter",
        "all-MiniLM-L6-v2 (starter, text)",
        "Small, fast English sentence encoder that installs with Refit Studio: works offline.",
        22_565_376,
        _TEXT,
        False,
        "text",
    ),
    _text(
        "hf:distilbert/distilbert-base-uncased",
        "DistilBERT base (text)",
        "Distilled BERT: 40% smaller, close to BERT's accuracy on English.",
        66_362_880,
    ),
    _text(
        "hf:google-bert/bert-base-uncased",
        "BERT base (text)",
        "The classic English encoder; a strong baseline for fine-tuning.",
        108_891_648,
    ),
    _text(
        "hf:FacebookAI/roberta-base",
        "RoBERTa base (text)",
        "BERT trained longer on more data; often better for English classification.",
        124_055_040,
    ),
    _text(
        "hf:FacebookAI/xlm-roberta-base",
        "XLM-RoBERTa base (text)",
        "Multilingual encoder (100 languages) for texts that are not in English.",
        277_453_056,
    ),
    _text(
        "hf:microsoft/MiniLM-L12-H384-uncased",
        "MiniLM-L12 (text)",
        "Small English encoder, twice as deep as the starter.",
        33_212_160,
    ),
)


def list_catalog() -> list[CatalogEntry]:
    """The curated backbones, the offline starter first."""
    return list(_CATALOG)


def listed_entry(name: str) -> CatalogEntry | None:
    """The catalog's own entry for ``name``, or None; never imports timm or torch."""
    name = name.strip()
    for entry in _CATALOG:
        if entry.name == name or (entry.family == "starter" and entry.name.lower() == name.lower()):
            return entry
    return None


def resolve_entry(name: str) -> CatalogEntry:
    """The catalog entry for a model name; raises ModelError for a name it cannot place."""
    name = name.strip()
    listed = listed_entry(name)
    if listed is not None:
        return listed
    if name.startswith("timm:"):
        return _timm_entry(name[len("timm:") :])
    if name.startswith("hf:"):
        ident = name[len("hf:") :]
        if ident and Path(ident).expanduser().is_dir():
            return _hf_folder_entry(Path(ident).expanduser())
        return _hf_hub_entry(ident)
    path = Path(name).expanduser()
    if name and path.is_dir():
        return _hf_folder_entry(path)
    hint = ""
    if (name and any(e.name == f"timm:{name}" for e in _CATALOG)) or _is_timm_model(name):
        hint = f" Did you mean 'timm:{name}'?"
    raise ModelError(f"Unknown model {name!r}.{hint} {NAMING_HELP}")


def _is_timm_model(name: str) -> bool:
    if not name or "/" in name:
        return False
    import timm

    return bool(timm.is_model(name.split(".")[0]))


def timm_preprocess(model_name: str) -> Preprocess:
    """The input geometry of a timm model's default pretrained weights."""
    import timm.models

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        return Preprocess()
    size = cfg.input_size[-1] if cfg.input_size else 224
    return Preprocess(
        input_size=int(size),
        mean=cast("tuple[float, float, float]", tuple(cfg.mean)),
        std=cast("tuple[float, float, float]", tuple(cfg.std)),
        interpolation="bicubic" if cfg.interpolation == "bicubic" else "bilinear",
        crop_pct=float(cfg.crop_pct or 0.875),
    )


def _timm_entry(model_name: str) -> CatalogEntry:
    import timm

    if not model_name or not timm.is_model(model_name.split(".")[0]):
        raise ModelError(
            f"timm has no model called {model_name!r}; see timm.list_models() for the names. "
            f"{NAMING_HELP}"
        )
    arch = model_name.split(".")[0]
    is_convnet = not any(k in arch for k in ("vit", "deit", "beit", "eva", "swin", "mixer"))
    return CatalogEntry(
        f"timm:{model_name}",
        "timm",
        f"{model_name} (timm)",
        "A timm model.",
        None,
        timm_preprocess(model_name),
        is_convnet,
    )


def _hf_folder_entry(path: Path) -> CatalogEntry:
    folder = path.resolve()
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"The folder {folder} has no config.json, so it is not a Hugging Face model folder. "
            f"{NAMING_HELP}"
        )
    config = hf_config(folder / "config.json")
    return CatalogEntry(
        str(folder),
        "hf",
        folder.name,
        f"Local Hugging Face model ({config.get('model_type')}).",
        None,
        hf_preprocess(folder, config),
        is_hf_convnet(config),
        _modality(config),
    )


def _hf_hub_entry(ident: str) -> CatalogEntry:
    if ident.count("/") != 1 or not all(ident.split("/")):
        raise ModelError(
            f"'hf:{ident}' is not a Hugging Face model id like 'hf:google/vit-base-"
            f"patch16-224'. {NAMING_HELP}"
        )
    folder = cached_hf_folder(ident)
    config = hf_config(folder / "config.json") if folder is not None else {}
    pre = hf_preprocess(folder, config) if folder is not None else Preprocess()
    known = next((e for e in _CATALOG if e.name == f"hf:{ident}"), None)
    if known is not None:
        return known
    return CatalogEntry(
        f"hf:{ident}",
        "hf",
        ident,
        "Hugging Face model.",
        None,
        pre,
        is_hf_convnet(config),
        _modality(config),
    )


def _modality(config: dict) -> str:
    if "num_channels" in config or "image_size" in config:
        return "image"
    return "text" if "vocab_size" in config else "image"
