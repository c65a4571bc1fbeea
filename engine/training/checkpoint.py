"""Writing and reading checkpoint files: safetensors weights, a weights-only trainer state, and
the last checkpoint committed as one folder. Which files to use is checkpoint_files' decision."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from engine.files import write_atomic
from engine.pickles import is_refused_pickle, load_weights_only, refusal
from engine.safe_read import IS_MISSING, WEIGHTS_LIMIT, file_problem
from engine.training.checkpoint_files import (
    GENERATION,
    MANIFEST,
    STATE,
    WEIGHTS,
    CheckpointError,
    LastCheckpoint,
    check_generation,
    generation_name,
    sha256_of,
)

__all__ = [  # CheckpointError lives with the path decisions; callers also find it here
    "CheckpointError",
    "NonFiniteWeightsError",
    "commit_last",
    "load_trainer_state",
    "load_weights",
    "read_weights",
    "rng_state",
    "save_weights",
    "set_rng_state",
]
_FORMAT = 1


class NonFiniteWeightsError(CheckpointError):
    """Weights holding NaN or infinity: never written, never loaded for predictions."""


# -- weights -------------------------------------------------------------------------------------


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's state dict as safetensors, atomically; refuse non-finite weights."""
    tensors = _cpu_tensors(model)
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(model: nn.Module, path: Path, advice: str = "") -> None:
    """Load safetensors weights written by ``save_weights`` into ``model`` (strict).

    ``advice`` ends the sentence of a CheckpointError (what the user can do instead).
    """
    model.load_state_dict(read_weights(model, path, advice))


def read_weights(model: nn.Module, path: Path, advice: str = "") -> dict[str, torch.Tensor]:
    """The tensors of ``path`` (on the CPU) once they are known to be whole, finite and to fit
    ``model``; CheckpointError with a sentence otherwise."""
    advice = advice or "train the run again"
    problem = file_problem(path, WEIGHTS_LIMIT, what="checkpoint file")
    if problem == IS_MISSING:
        raise CheckpointError(f"The checkpoint {path} does not exist; {advice}.")
    if problem:  # safetensors opens the path itself: a pipe would hang it, /dev/zero fill memory
        raise CheckpointError(f"The checkpoint {path} {problem}; {advice}.")
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"The checkpoint {path} does not exist; {advice}.") from None
    except Exception as exc:
        raise CheckpointError(
            f"The checkpoint {path} is damaged and cannot be read ({_short(exc)}); {advice}."
        ) from exc
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise NonFiniteWeightsError(
            f"The checkpoint {path} holds NaN or infinite weights (the run diverged); {advice}."
        )
    expected = model.state_dict()
    missing = expected.keys() - tensors.keys()
    unexpected = tensors.keys() - expected.keys()
    misshapen = [
        k for k in expected.keys() & tensors.keys() if expected[k].shape != tensors[k].shape
    ]
    if missing or unexpected or misshapen:
        raise CheckpointError(
            f"The checkpoint {path} does not fit this model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected and {len(misshapen)} differently shaped tensors)."
        )
    return tensors


def _cpu_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone(): tied weights share storage and channels_last tensors are not contiguous; safetensors
    # accepts neither.
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise NonFiniteWeightsError(
            f"The model's weights became NaN or infinite ({bad[0]}); they were not saved."
        )
    return tensors


# -- trainer state -------------------------------------------------------------------------------


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


def load_trainer_state(path: Path) -> dict[str, Any]:
    """Optimizer, scheduler, RNG and loop position, loaded weights-only."""
    problem = file_problem(path, WEIGHTS_LIMIT, what="checkpoint file")
    if problem == IS_MISSING:
        raise CheckpointError(
            f"The run has no resumable checkpoint ({path.name} is missing); start a new run."
        )
    if problem:
        raise CheckpointError(
            f"The checkpoint {path} {problem}; the run cannot be resumed, start a new run from "
            "its config."
        )
    try:
        state = load_weights_only(path)
    except Exception as exc:
        if is_refused_pickle(exc):
            raise CheckpointError(refusal(path, "the run cannot resume from it.")) from exc
        raise CheckpointError(
            f"The checkpoint {path} is damaged and cannot be read ({_short(exc)}); the run "
            "cannot be resumed, start a new run from its config."
        ) from exc
    if not isinstance(state, dict) or "optimizer" not in state or "epoch" not in state:
        raise CheckpointError(
            f"The checkpoint {path} is not a trainer state of this app; the run cannot be "
            "resumed, start a new run from its config."
        )
    return state


# -- committing the last checkpoint --------------------------------------------------------------


def commit_last(
    checkpoints: Path, model: nn.Module, state: dict[str, Any], *, epoch: int, global_step: int
) -> LastCheckpoint:
    """Write weights + trainer state as one generation folder and remove the older ones.

    A generation of the same position already committed is kept as it is: the weights and
    optimizer only change with a step, so it holds the same state.
    """
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / generation_name(global_step, epoch)
    existing = check_generation(final)[0] if final.is_dir() else None
    if existing is not None:
        _prune(checkpoints, keep=final)
        return existing
    tensors = _cpu_tensors(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=checkpoints))
    try:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"epoch": str(epoch), "kind": "last"})
        _fsync(tmp / WEIGHTS)
        torch.save(state, tmp / STATE)
        _fsync(tmp / STATE)
        manifest = {
            "format": _FORMAT,
            "kind": "last",
            "epoch": epoch,
            "global_step": global_step,
            "files": {name: _describe(tmp / name) for name in (WEIGHTS, STATE)},
        }
        _write_manifest(tmp / MANIFEST, manifest)
        _fsync_dir(tmp)
        if final.exists():  # a damaged leftover of the same position
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(checkpoints)
    _prune(checkpoints, keep=final)
    return LastCheckpoint(final / WEIGHTS, final / STATE, epoch, global_step, final)


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _fsync(path)


def _describe(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_of(path)}


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; not possible (nor needed) on every platform."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prune(checkpoints: Path, keep: Path) -> None:
    """Remove every other generation, the older layout's files and stale temporary files."""
    for entry in checkpoints.iterdir():
        if entry == keep:
            continue
        stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
        if entry.is_dir() and (GENERATION.match(entry.name) or stale_tmp):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name in (WEIGHTS, STATE) or stale_tmp:
            entry.unlink(missing_ok=True)


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__
