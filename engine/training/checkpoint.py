"""Checkpoints: safetensors weights plus a weights-only-loadable trainer state for resume."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from engine.files import write_atomic
from engine.pickles import is_refused_pickle, load_weights_only, refusal


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read."""


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's state dict as safetensors, atomically."""
    # clone(): tied weights share storage and channels_last tensors are not contiguous; safetensors
    # accepts neither.
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights written by ``save_weights`` into ``model`` (strict)."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"The checkpoint {path} does not exist.") from None
    except Exception as exc:
        raise CheckpointError(f"The checkpoint {path} cannot be read ({exc}).") from exc
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"The checkpoint {path} does not fit this model ({len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors)."
        )


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_trainer_state(path: Path, state: dict[str, Any]) -> Path:
    """Optimizer, scheduler, RNG and loop position; plain tensors and numbers only."""
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_trainer_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"The run has no resumable checkpoint ({path.name} is missing); start a new run."
        )
    try:
        return load_weights_only(path)
    except Exception as exc:
        if is_refused_pickle(exc):
            raise CheckpointError(refusal(path, "the run cannot resume from it.")) from exc
        raise CheckpointError(f"The checkpoint {path} cannot be read ({exc}).") from exc
