"""The workspace: the folder holding every run of one user, and the run list.

A run whose files cannot be read is listed as "damaged" with its problems, never an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from engine.config import ConfigError, NewerFormatError, RunConfig
from engine.files import write_json_atomic
from engine.runs.errors import CHOOSE, REMEDY, RunFileError, RunNotFoundError, WorkspaceError
from engine.runs.folder import RUNS_DIR, RunDir, write_failure
from engine.runs.health import cached_problems
from engine.runs.records import RunState, RunSummary, stamped

T = TypeVar("T")


def default_workspace() -> Path:
    """REFIT_HOME if set, else the per-user data folder (e.g. ~/.local/share/refit-studio)."""
    env = os.environ.get("REFIT_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("refit-studio", appauthor=False))


@dataclass(frozen=True)
class RunInfo:
    """A line of the run list; ``problems`` are sentences about damaged files (a run whose
    config, state, summary or splits cannot be read has status "damaged")."""

    run_id: str
    path: Path
    name: str
    backbone: str
    method: str
    status: str
    created: str
    epochs_done: int
    best: dict[str, float]
    problems: tuple[str, ...] = ()


class Workspace:
    """The folder that holds every run (and caches) of one user."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_workspace()

    @property
    def runs_root(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def cache_root(self) -> Path:
        return self.root / "cache"

    def problem(self, *, writing: bool = False) -> str:
        """ "" when runs can be listed here (and saved, with ``writing``); else one sentence
        naming the folder and what to do."""
        for folder in (self.root, self.runs_root):
            if folder.exists() and not folder.is_dir():
                return f"The workspace {folder} is a file, not a folder; move it away or {CHOOSE}."
        blocker = next((p for p in self.root.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"The workspace {self.root} lies inside the file {blocker}; {CHOOSE}."
        if self.runs_root.is_dir() and not os.access(self.runs_root, os.R_OK | os.X_OK):
            return f"The workspace folder {self.runs_root} cannot be read; {CHOOSE}."
        if writing:
            target = next(p for p in (self.runs_root, self.root, *self.root.parents) if p.exists())
            if not os.access(target, os.W_OK | os.X_OK):
                return f"The workspace folder {target} is read-only; make it writable or {CHOOSE}."
        return ""

    def create_run(self, config: RunConfig) -> RunDir:
        """Make a new run folder and write its config.json first; WorkspaceError (one sentence)
        when the workspace is a file, read-only or full."""
        problem = self.problem(writing=True)
        if problem:
            raise WorkspaceError(problem)
        try:
            return self._create_run(config)
        except OSError as exc:
            raise WorkspaceError(write_failure(self.runs_root, exc)) from exc

    def _create_run(self, config: RunConfig) -> RunDir:
        self.runs_root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(config.name or config.model.backbone)}"
        for n in range(1000):
            path = self.runs_root / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand runs in one second
            raise RuntimeError("Could not create a unique run folder.")
        run = RunDir(path)
        write_json_atomic(run.config_path, config.to_dict())
        state = {"status": "created", "created": datetime.now().isoformat()}
        write_json_atomic(run.state_path, stamped(state))
        return run

    def open_run(self, ref: str | Path) -> RunDir:
        """Find a run by folder path, run id, or unique id prefix."""
        path = Path(ref).expanduser()
        if (path / "config.json").exists() or (path / "state.json").exists():
            return RunDir(path.resolve())
        candidates = [p for p in self._run_folders() if p.name.startswith(str(ref))]
        exact = [p for p in candidates if p.name == str(ref)]
        if exact or len(candidates) == 1:
            return RunDir((exact or candidates)[0])
        if len(candidates) > 1:
            names = ", ".join(p.name for p in sorted(candidates)[:5])
            raise RunNotFoundError(f"'{ref}' matches several runs ({names}); give more of the id.")
        raise RunNotFoundError(
            f"No run '{ref}' in {self.runs_root}; `refit runs` lists the runs in this workspace."
        )

    def list_runs(self) -> list[RunInfo]:
        """Every run folder, newest first; damaged runs are listed with their problems."""
        return [run_info(RunDir(path)) for path in self._run_folders()]

    def _run_folders(self) -> list[Path]:
        """Folders of runs/ holding a config.json or state.json ([] when runs/ cannot be read:
        problem() says why)."""
        try:
            entries = sorted(self.runs_root.iterdir(), reverse=True)
        except OSError:
            return []
        return [
            p
            for p in entries
            if p.is_dir() and ((p / "config.json").exists() or (p / "state.json").exists())
        ]


def run_info(run: RunDir) -> RunInfo:
    """The run's line of the run list; a damaged file becomes a problem, never an error."""
    return read_run(run)[0]


def read_run(run: RunDir) -> tuple[RunInfo, RunState, RunSummary]:
    """The run's line of the run list, with the state and summary it was made of ({} for a
    damaged file): one read of each file for callers that show more than the line."""
    problems: list[str] = []
    newer = False

    def read(reader: Callable[[], T], default: T) -> T:
        nonlocal newer
        try:
            return reader()
        except (RunFileError, ConfigError) as exc:
            newer = newer or isinstance(exc, NewerFormatError)
            problems.append(str(exc))
            return default

    config = read(run.config, None)
    empty: dict[str, Any] = {}
    state = RunState.from_dict(read(run.state, empty))
    summary = RunSummary.from_dict(read(run.summary, empty))
    damaged, notes = cached_problems(run)
    problems += damaged
    if not state.status_is_text:
        problems.append(
            f"The run file {run.state_path} records a status that is not text; {REMEDY}."
        )
    if not problems:
        status = run.status(state.to_dict())
    else:
        status = "unsupported" if newer and len(problems) == 1 else "damaged"
    info = RunInfo(
        run_id=run.run_id,
        path=run.path,
        name=config.name if config else "",
        backbone=config.model.backbone if config else "?",
        method=str(config.adapt.method) if config else "?",
        status=status,
        created=state.created,
        epochs_done=state.epochs_done,
        best=summary.best,
        problems=(*problems, *notes),
    )
    return info, state, summary


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name if os.sep in text else text)
    return slug.strip("-._")[:40] or "run"
