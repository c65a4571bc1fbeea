"""What a frozen network's output depends on: the key of its cached ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.files import file_stamp
from engine.runs import RUNS_DIR, RunDir


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
