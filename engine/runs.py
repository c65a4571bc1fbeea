"""Run folders in a workspace: config.json, state.json, metrics.jsonl, checkpoints, summary.json.

Every reader survives any bytes: a damaged file raises RunFileError, one sentence naming the
file, what is wrong and what to do; the run list marks such a run "damaged" instead of failing.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from engine import run_lock
from engine.config import ConfigError, NewerFormatError, RunConfig
from engine.files import (
    MAX_JSON_BYTES,
    JsonLines,
    UnreadableFileError,
    append_jsonl,
    read_json_object,
    scan_jsonl,
    write_json_atomic,
)

RUNS_DIR = "runs"
SMALL_FILE_BYTES = 16 * 2**20  # config, state and summary are a few kB; more is not theirs
REMEDY = "restore it from a backup, or delete the run folder if the run is no longer needed"
_CHOOSE = "choose another workspace (--workspace, or REFIT_HOME)"
T = TypeVar("T")


class RunNotFoundError(LookupError):
    """A run id or folder that does not exist in the workspace."""


class RunFileError(ValueError):
    """A file of a run folder that exists but cannot be read or used (one sentence)."""


class WorkspaceError(ValueError):
    """A workspace where runs cannot be listed or saved: a file, read-only, unwritable."""


def default_workspace() -> Path:
    """REFIT_HOME if set, else the per-user data folder (e.g. ~/.local/share/refit-studio)."""
    env = os.environ.get("REFIT_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("refit-studio", appauthor=False))


@dataclass(frozen=True)
class RunDir:
    """One run's folder and the files in it."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def splits_path(self) -> Path:
        return self.path / "splits.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def lock_path(self) -> Path:
        return self.path / run_lock.LOCK_NAME

    def config(self) -> RunConfig:
        """The settings the run was started with; RunFileError when config.json is damaged
        (NewerFormatError when a newer Refit Studio wrote it)."""
        data = self._json(self.config_path, required=True, max_bytes=SMALL_FILE_BYTES)
        try:
            return RunConfig.from_dict(data)
        except NewerFormatError:
            raise
        except ConfigError as exc:
            raise RunFileError(
                f"The run file {self.config_path} holds settings that cannot be used "
                f"({str(exc).rstrip('.')}); {REMEDY}."
            ) from exc

    def intact_config(self) -> RunConfig:
        """The config, once state.json, summary.json and splits.json are known to read (what a
        resume needs); RunFileError naming the first damaged file."""
        from engine.run_health import splits_problem

        config = self.config()
        self.state(), self.summary()
        problem = splits_problem(self)
        if problem:
            raise RunFileError(problem)
        return config

    def state(self) -> dict[str, Any]:
        """state.json ({} before it exists); RunFileError when it is damaged."""
        return self._json(self.state_path, max_bytes=SMALL_FILE_BYTES)

    def summary(self) -> dict[str, Any]:
        """summary.json ({} until the run ends); RunFileError when it is damaged."""
        return self._json(self.summary_path, max_bytes=SMALL_FILE_BYTES)

    def splits(self) -> dict[str, Any]:
        """splits.json ({} until training starts); RunFileError when it is damaged."""
        return self._json(self.splits_path)

    def metrics(self) -> list[dict[str, Any]]:
        """The readable records of metrics.jsonl; damaged lines are skipped, never fatal."""
        return self.metrics_lines().records

    def metrics_lines(self) -> JsonLines:
        """metrics.jsonl's well-formed records, and how many lines were skipped."""
        lines = scan_jsonl(self.metrics_path)
        kept = [r for r in lines.records if _is_metrics_record(r)]
        skipped = lines.unreadable + len(lines.records) - len(kept)
        return JsonLines(kept, skipped, lines.problem)

    def status(self, state: dict[str, Any] | None = None) -> str:
        """state.json's status, except that a "running" run whose training process is gone
        (killed, crashed, the computer restarted) is "interrupted"."""
        state = self.state() if state is None else state
        status = _status_word(state)
        if status != "running" or self.owner() is not None:
            return status
        try:  # the owner may have finished between reading the state and the lock
            status = _status_word(self.state())
        except RunFileError:
            return "damaged"
        return "interrupted" if status == "running" else status

    def owner(self) -> run_lock.LockOwner | None:
        """The live process training this run right now, or None."""
        return run_lock.live_owner(self.lock_path)

    @contextmanager
    def lock(self) -> Iterator[run_lock.LockOwner]:
        """Hold the run's lock while training it; RunBusyError when another live process (or
        this one) holds it, WorkspaceError when the run folder cannot be written."""
        try:
            me = run_lock.acquire(self.lock_path, self.run_id)
        except OSError as exc:
            raise WorkspaceError(_write_failure(self.path, exc)) from exc
        try:
            yield me
        finally:
            run_lock.release(self.lock_path, me)

    def _json(
        self, path: Path, *, required: bool = False, max_bytes: int = MAX_JSON_BYTES
    ) -> dict[str, Any]:
        try:
            return read_json_object(path, max_bytes=max_bytes)
        except FileNotFoundError as exc:
            if required:
                missing = f"The run folder {self.path} has no {path.name}; {REMEDY}."
                raise RunFileError(missing) from exc
            return {}
        except UnreadableFileError as exc:
            raise RunFileError(f"The run file {path} {exc}; {REMEDY}.") from exc

    def update_state(self, **changes: Any) -> dict[str, Any]:
        state = self.state()
        state.update(changes)
        write_json_atomic(self.state_path, state)
        return state

    def append_metrics(self, *records: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, list(records))


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
                return f"The workspace {folder} is a file, not a folder; move it away or {_CHOOSE}."
        blocker = next((p for p in self.root.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"The workspace {self.root} lies inside the file {blocker}; {_CHOOSE}."
        if self.runs_root.is_dir() and not os.access(self.runs_root, os.R_OK | os.X_OK):
            return f"The workspace folder {self.runs_root} cannot be read; {_CHOOSE}."
        if writing:
            target = next(p for p in (self.runs_root, self.root, *self.root.parents) if p.exists())
            if not os.access(target, os.W_OK | os.X_OK):
                return f"The workspace folder {target} is read-only; make it writable or {_CHOOSE}."
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
            raise WorkspaceError(_write_failure(self.runs_root, exc)) from exc

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
        write_json_atomic(
            run.state_path, {"status": "created", "created": datetime.now().isoformat()}
        )
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
    from engine.run_health import cached_problems

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
    state, summary = read(run.state, {}), read(run.summary, {})
    damaged, notes = cached_problems(run)
    problems += damaged
    if not isinstance(state.get("status", ""), str):
        problems.append(
            f"The run file {run.state_path} records a status that is not text; {REMEDY}."
        )
    if not problems:
        status = run.status(state)
    else:
        status = "unsupported" if newer and len(problems) == 1 else "damaged"
    best = summary.get("best")
    return RunInfo(
        run_id=run.run_id,
        path=run.path,
        name=config.name if config else "",
        backbone=config.model.backbone if config else "?",
        method=str(config.adapt.method) if config else "?",
        status=status,
        created=str(state.get("created") or ""),
        epochs_done=_whole(state.get("epochs_done")),
        best=_numbers(best),
        problems=(*problems, *notes),
    )


def _write_failure(folder: Path, exc: OSError) -> str:
    """One sentence for an OSError while writing in ``folder``."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"The workspace folder {folder} is read-only ({reason}); make it writable or {_CHOOSE}."
        )
    if exc.errno == errno.ENOSPC:
        return f"The disk holding {folder} is full; free some space or {_CHOOSE}."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"The workspace {folder} is (inside) a file, not a folder; {_CHOOSE}."
    return f"Cannot write in the workspace folder {folder} ({reason}); {_CHOOSE}."


def _status_word(state: dict[str, Any]) -> str:
    """state.json's status; "unknown" when it is missing or not text (a forged {"x": 1})."""
    status = state.get("status", "unknown")
    return status if isinstance(status, str) else "unknown"


def _is_metrics_record(record: dict[str, Any]) -> bool:
    """A line the curves and resume can use: step and epoch whole numbers, type a string."""
    for key in ("step", "epoch"):
        value = record.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            return False
    return isinstance(record.get("type", ""), str)


def _numbers(values: Any) -> dict[str, float]:
    if not isinstance(values, dict):
        return {}
    return {str(k): float(v) for k, v in values.items() if _is_number(v)}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> int:
    return int(value) if _is_number(value) and value == value and abs(value) < 2**62 else 0


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name if os.sep in text else text)
    return slug.strip("-._")[:40] or "run"
