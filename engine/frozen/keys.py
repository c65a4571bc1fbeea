"""What a frozen network's output depends on: the key of its cached ONNX export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.files import file_stamp
from engine.runs import RUNS_DIR, RunDir


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hash of everything that determines an output (features, an export)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def weights_stamp(config: Any) -> str:
    """Where the backbone's weights come from, with the file's size and time when it is one."""
    from engine.models import weights_status

    source = weights_status(config.model.backbone, config.model.weights).source
    stamp = file_stamp(source)
    return f"{source}:{stamp}" if stamp else str(source)


def backbone_parts(config: Any, input_size: int) -> dict[str, Any]:
    """The backbone (up to its pooled features) of a run with ``config``: its weights file, or
    for random weights the seed that drew them."""
    parts = {
        "cut": "features",
        "backbone": config.model.backbone,
        "pretrained": config.model.pretrained,
        "weights": weights_stamp(config),
        "input_size": input_size,
    }
    if not config.model.pretrained:
        parts["seed"] = config.seed
    return parts


def run_cache_dir(run: RunDir) -> Path | None:
    """The ONNX cache of the workspace that holds ``run``; None for a run folder kept elsewhere
    (nothing is written outside a workspace)."""
    if run.path.parent.name != RUNS_DIR:
        return None
    return run.path.parent.parent / "cache" / "onnx"


def early_parts(config: Any, family: str, input_size: int) -> dict[str, Any] | None:
    """:func:`backbone_parts`, when they can be known before torch is imported: a weights file
    named in the config, the starter or a Hugging Face folder; None for torchvision and timm
    weights (finding their files imports torch or timm: seconds)."""
    if family in ("torchvision", "timm") and not config.model.weights:
        return None
    return backbone_parts(config, input_size)
