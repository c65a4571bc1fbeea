"""One run as the app shows it: its run-list line, its files as read, its curves, and whether
Resume continues it; and the facts the Results page states about a trained run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.runs.folder import RunDir
from engine.runs.metrics import Curves, curves
from engine.runs.records import RunState, RunSummary
from engine.runs.resumable import is_resumable
from engine.runs.workspace import RunInfo, read_run


@dataclass(frozen=True)
class RunDetails:
    """What the Runs page shows of one run. ``config`` is config.json as stored ({} when it
    cannot be read; ``problems`` says why), shown verbatim."""

    info: RunInfo
    config: Mapping[str, Any]
    state: RunState
    summary: RunSummary
    curves: Curves
    resumable: bool

    @property
    def run_id(self) -> str:
        return self.info.run_id

    @property
    def label(self) -> str:
        name = self.config.get("name")
        return (name if isinstance(name, str) else "") or self.run_id

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def problems(self) -> tuple[str, ...]:
        return self.info.problems


def run_details(run: RunDir) -> RunDetails:
    """Read metrics, config, state and summary of ``run`` (metrics.jsonl can be long); a damaged
    file is shown as its problem, never an error."""
    from engine.files import read_json_object

    info, state, summary = read_run(run)
    config = _or_empty(lambda: read_json_object(run.config_path))  # as stored, for display
    return RunDetails(
        info=info,
        config=config,
        state=state,
        summary=summary,
        curves=curves(run.metrics()),
        resumable=is_resumable(run, status=info.status, state=state),
    )


@dataclass(frozen=True)
class RunFacts:
    """What the Results page says about a trained run: names, model, classes, split sizes."""

    path: Path
    run_id: str
    label: str
    backbone: str
    method: str
    modality: str
    status: str
    classes: tuple[str, ...]
    val_size: int
    test_size: int
    created: str = ""
    best: dict[str, float] = field(default_factory=dict)
    device: str = ""
    warnings: tuple[str, ...] = ()  # summary.json: the model learned nothing useful

    @property
    def is_linear_probe(self) -> bool:
        return self.method == "linear-probe"


def run_facts(run: RunDir) -> RunFacts:
    """Read config, state, summary and split sizes of ``run``; RunFileError when one of them
    is damaged."""
    config = run.config()
    state, summary, splits = run.read_state(), run.read_summary(), run.read_splits()
    return RunFacts(
        path=run.path,
        run_id=run.run_id,
        label=config.name or run.run_id,
        backbone=config.model.backbone,
        method=str(config.adapt.method),
        modality=splits.modality,
        status=state.status,
        classes=tuple(summary.classes or splits.classes),
        val_size=splits.size("val"),
        test_size=splits.size("test"),
        created=state.created,
        best=summary.best,
        device=state.device,
        warnings=summary.warnings,
    )


def _or_empty(reader: Any) -> dict[str, Any]:
    """What ``reader`` returns, or {} for a damaged file (the run's problems say which)."""
    try:
        return reader()
    except (OSError, ValueError):  # RunFileError and UnreadableFileError are ValueErrors
        return {}
