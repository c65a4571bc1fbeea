"""Which checkpoint files of a run to use: the one place that decides (no torch needed).

Layout of ``runs/<id>/checkpoints/``:

- ``best.safetensors``: the weights of the best epoch (one file, written atomically).
- ``last-<global_step>-<epoch>/``: one generation of the resumable state, a folder holding
  ``last.safetensors`` (weights), ``last_state.pt`` (optimizer, scheduler, RNG, loop position)
  and ``manifest.json`` (position, size and SHA-256 of both files). It is written whole under a
  hidden temporary name and renamed into place (engine.training.checkpoint.commit_last), so it
  exists complete or not at all; older generations are removed only after the new one is in place.
- ``last.safetensors`` + ``last_state.pt`` directly in the folder: the layout of older versions,
  still resumed and opened when no generation folder exists.

The trainer, predict, evaluate, export and the app all find their files through
``last_checkpoint``, ``weights_file`` and ``has_last_checkpoint``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from engine.files import UnreadableFileError, read_json_object
from engine.safe_read import IS_MISSING, WEIGHTS_LIMIT, file_problem, open_capped

if TYPE_CHECKING:
    from engine.runs.folder import RunDir

BEST = "best.safetensors"
WEIGHTS = "last.safetensors"
STATE = "last_state.pt"
MANIFEST = "manifest.json"
GENERATION = re.compile(r"^last-(\d+)-(\d+)$")
_MANIFEST_BYTES = 1024 * 1024  # a few lines of JSON


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read."""


class DamagedCheckpointError(CheckpointError):
    """Every last checkpoint there is fails its manifest; ``problem`` says how."""

    def __init__(self, sentence: str, problem: str) -> None:
        super().__init__(sentence)
        self.problem = problem


@dataclass(frozen=True)
class LastCheckpoint:
    """The files to resume from; ``folder`` is None for the layout of older versions."""

    weights: Path
    state: Path
    epoch: int
    global_step: int
    folder: Path | None = None


def generation_name(global_step: int, epoch: int) -> str:
    """The folder name of the generation written at this position."""
    return f"last-{global_step:09d}-{epoch:05d}"


def generations(checkpoints: Path) -> list[Path]:
    """Committed generation folders, newest first (hidden temporary folders are never listed)."""
    found = []
    if checkpoints.is_dir():
        for entry in checkpoints.iterdir():
            match = GENERATION.match(entry.name)
            if match and entry.is_dir():
                found.append(((int(match[1]), int(match[2])), entry))
    return [path for _, path in sorted(found, reverse=True)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open_capped(path, WEIGHTS_LIMIT, what="checkpoint file") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_generation(folder: Path) -> tuple[LastCheckpoint | None, str]:
    """The generation in ``folder`` if its files match its manifest, else (None, why not)."""
    try:
        manifest = read_json_object(folder / MANIFEST, max_bytes=_MANIFEST_BYTES)
    except FileNotFoundError:
        return None, f"{folder / MANIFEST} is missing"
    except UnreadableFileError as exc:
        return None, f"{folder / MANIFEST} {exc}"
    files, epoch, step = manifest.get("files"), manifest.get("epoch"), manifest.get("global_step")
    if not (isinstance(files, dict) and _whole(epoch) and _whole(step)):
        return None, f"{folder / MANIFEST} is damaged (its files, epoch or step are not valid)"
    for name in (WEIGHTS, STATE):
        path = folder / name
        want = files.get(name)
        problem = file_problem(path, WEIGHTS_LIMIT, what="checkpoint file")
        if problem:
            return None, f"{path} {problem}"
        if not isinstance(want, dict) or path.stat().st_size != want.get("size"):
            return None, f"{path} does not have the size its manifest records"
        try:
            digest = sha256_of(path)
        except OSError as exc:
            return None, f"{path} {exc}"
        if digest != want.get("sha256"):
            return None, f"{path} does not match the SHA-256 its manifest records"
    return LastCheckpoint(folder / WEIGHTS, folder / STATE, epoch, step, folder), ""


def has_last_checkpoint(checkpoints: Path) -> bool:
    """Cheap: is there a resumable checkpoint to try (its contents are not verified)?"""
    if any((g / MANIFEST).is_file() for g in generations(checkpoints)):
        return True
    return (checkpoints / WEIGHTS).is_file() and (checkpoints / STATE).is_file()


def last_checkpoint(checkpoints: Path, skipped: list[str] | None = None) -> LastCheckpoint | None:
    """The newest committed generation whose files match its manifest, else the older layout's
    files, else None. Raises CheckpointError when checkpoints exist but every one is damaged.

    Damaged generations passed over for an older one are described in ``skipped``.
    """
    problems: list[str] = []
    for folder in generations(checkpoints):
        found, problem = check_generation(folder)
        if found is not None:
            if skipped is not None:
                skipped.extend(problems)
            return found
        problems.append(problem)
    weights, state = checkpoints / WEIGHTS, checkpoints / STATE
    if weights.is_file() and state.is_file():
        if skipped is not None:
            skipped.extend(problems)
        return LastCheckpoint(weights, state, -1, -1)
    if problems:
        raise DamagedCheckpointError(
            f"The last checkpoint is damaged ({problems[0]}); the run cannot be resumed, "
            "start a new run from its config.",
            problems[0],
        )
    return None


def weights_file(run: RunDir, checkpoint: str = "best") -> Path:
    """The weights file of ``checkpoint`` ("best" or "last") of ``run``; never the other one.

    Raises CheckpointError with a sentence when it is missing, or (for last) damaged.
    """
    if checkpoint == "best":
        path = run.checkpoints / BEST
        problem = file_problem(path, WEIGHTS_LIMIT, what="checkpoint file")
        if not problem:
            return path
        if problem != IS_MISSING:
            raise CheckpointError(
                f"The best checkpoint {path} {problem}; choose the last checkpoint "
                "(--checkpoint last), or train the run again."
            )
        if has_last_checkpoint(run.checkpoints):
            raise CheckpointError(
                f"The run {run.run_id} has no best checkpoint ({path} is missing); choose the "
                "last checkpoint (--checkpoint last) to use the weights it ended with."
            )
        raise CheckpointError(
            f"The run {run.run_id} has no checkpoint yet; train it (or resume it) first."
        )
    if checkpoint != "last":
        raise CheckpointError(f"'{checkpoint}' is not a checkpoint; choose best or last.")
    try:
        last = last_checkpoint(run.checkpoints)
    except DamagedCheckpointError as exc:
        raise CheckpointError(
            f"The last checkpoint of run {run.run_id} is damaged ({exc.problem}); choose the "
            "best checkpoint (--checkpoint best) instead."
        ) from None
    if last is None:
        raise CheckpointError(
            f"The run {run.run_id} has no last checkpoint yet; train it (or resume it) first."
        )
    return last.weights


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def has_weights(run: RunDir) -> bool:
    """Does ``run`` have weights to measure (a best or a last checkpoint)?"""
    return (run.checkpoints / BEST).is_file() or has_last_checkpoint(run.checkpoints)
