"""Facts about where a run ran, and turning exceptions into one sentence for the user."""

from __future__ import annotations

import errno
import platform
import sys
from importlib import metadata
from pathlib import Path
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
    "Diverged",
    "StorageError",
    "MemoryExhausted",
    "ProcessFailed",
    "LostContact",
)
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class StorageError(OSError):
    """Writing a run's files failed (disk full, read-only, I/O error); str() is the sentence."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def environment_facts(placement: Placement) -> dict[str, Any]:
    """Resolved device, precision and library versions for state.json."""
    versions: dict[str, str | None] = {}
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
    if isinstance(exc, MemoryError) or _cpu_allocation_failed(exc):
        return "The computer ran out of memory; lower the batch size or use a smaller backbone."
    return f"{type(exc).__name__}: {exc}"


def _cpu_allocation_failed(exc: BaseException) -> bool:
    """torch's CPU allocator raises a RuntimeError, not MemoryError, when RAM runs out."""
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate" in str(exc)


def storage_sentence(exc: BaseException, workspace: Path, run_id: str) -> str:
    """One sentence for a failed write under ``workspace`` (disk full, read-only, I/O error);
    "" when ``exc`` is not such an error. The run keeps its previous checkpoint."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return ""
    resume = f"`refit resume {run_id}` (or Resume in the app) continues it from its last checkpoint"
    if exc.errno in _FULL:
        return f"The disk holding {workspace} is full; free some space, then {resume}."
    if exc.errno == errno.EROFS:
        return f"The workspace {workspace} is on a read-only disk; {resume} once it is writable."
    if exc.errno == errno.EIO:
        return f"The disk holding {workspace} reported an I/O error; check it, then {resume}."
    name = str(exc.filename or "")
    denied = exc.errno in (errno.EACCES, errno.EPERM) and name
    if denied and Path(name).resolve().is_relative_to(workspace.resolve()):
        return f"{name} cannot be written (permission denied); make it writable, then {resume}."
    return ""
