"""The base of a run: a linear probe on the same backbone, data, split and seed.

Comparing a fine-tuned run against its base answers "did training more than the head pay off?".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.config import (
    AdaptConfig,
    AugmentConfig,
    ConfigError,
    Method,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.runs import RunDir, RunFileError, Workspace
from engine.task import Task

BASE_SUFFIX = " · base"


def base_config(config: RunConfig) -> RunConfig:
    """The linear probe to compare ``config`` against: the same data (path, columns, split
    fractions and seed), backbone and seed, with the default head schedule and no augmentation
    beyond the defaults. Class weighting is kept: it answers the data's imbalance."""
    return RunConfig(
        name=f"{config.name or config.model.backbone}{BASE_SUFFIX}",
        seed=config.seed,
        data=config.data,
        model=config.model,
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        optim=OptimConfig(class_weights=config.optim.class_weights),
        schedule=ScheduleConfig(),
        augment=AugmentConfig(),
        device=config.device,
    )


def is_linear_probe(config: RunConfig) -> bool:
    """A linear probe is its own base."""
    return Method(config.adapt.method) is Method.LINEAR_PROBE


def _key(config: RunConfig) -> dict[str, Any]:
    """What must be equal for two configs to describe the same base (names and the number of
    loader processes do not change results)."""
    d = config.to_dict()
    d.pop("name", None)
    d.get("data", {}).pop("num_workers", None)
    return d


def _val_digests(run: RunDir) -> list[str]:
    return run.read_splits().digests("val")


def find_base_run(workspace: Workspace, run: RunDir) -> RunDir | None:
    """The newest completed run of the workspace with ``run``'s base config and the same
    validation examples; ``run`` itself when it is a linear probe."""
    config = run.config()
    if is_linear_probe(config):
        return run
    from engine.training.checkpoint_files import has_weights

    wanted = _key(base_config(config))
    digests = _val_digests(run)
    for info in workspace.list_runs():
        if info.status != "completed" or info.path == run.path:
            continue
        candidate = RunDir(info.path)
        try:  # another run's damaged files must not stop the search
            if _key(candidate.config()) != wanted:
                continue
            same_val = _val_digests(candidate) == digests
        except (ConfigError, RunFileError, TypeError, IndexError):
            continue
        if has_weights(candidate) and same_val:
            return candidate
    return None


def train_base(
    workspace: Workspace,
    run: RunDir,
    *,
    on_event: Callable[[Any], Any] | None = None,
    task: Task | None = None,
) -> RunDir:
    """Train ``run``'s base in ``workspace`` and return its folder (``run`` itself for a linear
    probe). Raises engine.task.Cancelled when the user stops it."""
    config = run.config()
    if is_linear_probe(config):
        return run
    from engine.task import Cancelled
    from engine.training.trainer import train

    result = train(base_config(config), workspace=workspace.root, on_event=on_event, task=task)
    if str(result.status) != "completed":
        raise Cancelled()
    return RunDir(result.run_dir)


def find_or_train_base(
    workspace: Workspace,
    run: RunDir,
    *,
    on_event: Callable[[Any], Any] | None = None,
    task: Task | None = None,
) -> tuple[RunDir, bool]:
    """(the base run, whether it had to be trained now)."""
    found = find_base_run(workspace, run)
    if found is not None:
        return found, False
    return train_base(workspace, run, on_event=on_event, task=task), True


__all__ = [
    "base_config",
    "find_base_run",
    "find_or_train_base",
    "is_linear_probe",
    "train_base",
]
