"""Crafted model folders, exports, run folders and pickles that try to run code on load.

Every payload writes a sentinel file when it runs, so a test proves it did not by the file's
absence (and, with the user's grant, that it did by its presence).
"""

from __future__ import annotations

import json
from pathlib import Path

EVIL_MODULE = "modeling_evil"

_MODULE_TEXT = """import pathlib

pathlib.Path({sentinel!r}).write_text("remote code ran")

from transformers import ViTModel


class EvilModel(ViTModel):
    pass
"""

PREPROCESS = {
    "input_size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bilinear",
    "crop_pct": 1.0,
}


def save_vit(folder: Path) -> Path:
    """A random 1-layer ViT (hidden size 32, 32x32 images) as a Hugging Face folder."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config).save_pretrained(str(folder))
    return folder


def add_code(folder: Path, sentinel: Path, *, into: str = "config.json") -> Path:
    """Make ``folder`` ship a module that writes ``sentinel`` on import, named by an auto_map in
    the file ``into`` (config.json or tokenizer_config.json)."""
    (folder / f"{EVIL_MODULE}.py").write_text(_MODULE_TEXT.format(sentinel=str(sentinel)))
    path = folder / into
    data = json.loads(path.read_text()) if path.is_file() else {}
    if into == "tokenizer_config.json":
        data["auto_map"] = {"AutoTokenizer": [f"{EVIL_MODULE}.EvilTokenizer", None]}
    else:
        data["auto_map"] = {"AutoModel": f"{EVIL_MODULE}.EvilModel"}
    path.write_text(json.dumps(data))
    return folder


def classifier_weights(backbone: Path, out: Path) -> Path:
    """model.safetensors of a 2-class classifier on the (clean) ViT folder ``backbone``."""
    from engine.config import ModelConfig
    from engine.models import build_model
    from engine.training.checkpoint import save_weights

    model = build_model(ModelConfig(backbone=str(backbone), pretrained=False), 2)
    return save_weights(model, out)


def crafted_export(root: Path, sentinel: Path) -> Path:
    """An export folder whose refit_model.json asks for remote code and whose backbone/ ships a
    module that writes ``sentinel``; everything else is a working export."""
    export = root / "export"
    backbone = save_vit(export / "backbone")
    classifier_weights(backbone, export / "model.safetensors")
    (backbone / "model.safetensors").unlink()  # exports keep the backbone's config only
    add_code(backbone, sentinel)
    manifest = {
        "format_version": 1,
        "run_id": "crafted",
        "classes": ["cat", "dog"],
        "modality": "image",
        "backbone": "someone/vit",
        "backbone_name": "someone/vit",
        "backbone_folder": "backbone",
        "formats": ["safetensors"],
        "preprocess": PREPROCESS,
        "config": {"model": {"allow_remote_code": True, "head_dropout": 0.0}},
    }
    (export / "refit_model.json").write_text(json.dumps(manifest))
    return export


def crafted_run(root: Path, sentinel: Path, data: Path) -> Path:
    """A run folder whose config.json asks for remote code from a model folder that ships a
    module writing ``sentinel``; it has classes and a best checkpoint, like a finished run."""
    from engine.config import DataConfig, ModelConfig, RunConfig

    backbone = save_vit(root / "someone-vit")
    run = root / "ws" / "runs" / "20240101-000000-crafted"
    classifier_weights(backbone, run / "checkpoints" / "best.safetensors")
    add_code(backbone, sentinel)
    config = RunConfig(
        data=DataConfig(path=str(data), num_workers=0),
        model=ModelConfig(backbone=str(backbone), pretrained=False, allow_remote_code=True),
    )
    (run / "config.json").write_text(config.to_json())
    (run / "summary.json").write_text(json.dumps({"classes": ["circle", "square"]}))
    (run / "state.json").write_text(json.dumps({"status": "completed"}))
    return run


class _Payload:
    """Unpickling this runs ``exec`` of code that writes the sentinel file."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        code = f"open({str(self.sentinel)!r}, 'w').write('pickle ran')"
        return (exec, (code,))


def evil_torch_pickle(path: Path, sentinel: Path) -> Path:
    """A torch.save file holding a state dict with a payload next to a real tensor."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2), "extra": _Payload(sentinel)}, path)
    return path


def evil_legacy_torch_pickle(path: Path, sentinel: Path) -> Path:
    """The same in torch's legacy (pre-zip) format: a bare sequence of pickles."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"weight": torch.zeros(2), "extra": _Payload(sentinel)}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def evil_npy(path: Path, sentinel: Path) -> Path:
    """A .npy file of an object array whose loading (with pickles allowed) runs the payload."""
    import numpy as np

    array = np.empty(1, dtype=object)
    array[0] = _Payload(sentinel)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=True)
    return path
