"""Facts about where a run ran, and turning exceptions into one sentence for the user."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import torch

from engine.training.devices import Placement

_VERSIONED = ("torch", "torchvision", "timm", "transformers", "peft", "refit-studio")
_OWN_ERRORS = (
    "DatasetError",
    "ImageError",
    "ModelError",
    "WeightsUnavailableError",
    "ConfigError",
    "DeviceError",
    "CheckpointError",
    "RunNotFoundError",
    "RunFileError",
    "RunBusyError",
    "WorkspaceError",
    "TestSplitLocked",
)


def environment_facts(placement: Placement) -> dict[str, Any]:
    """Resolved device, precision and library versions for state.json."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "device": placement.description,
        "device_type": placement.device.type,
        "precision": str(placement.precision),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "versions": versions,
    }


def error_sentence(exc: BaseException) -> str:
    """Our own errors already read as a sentence; others get their type named."""
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted."
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "The GPU ran out of memory; lower the batch size or freeze more layers."
    if any(cls.__name__ in _OWN_ERRORS for cls in type(exc).__mro__):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory; lower the batch size or use a smaller backbone."
    return f"{type(exc).__name__}: {exc}"
