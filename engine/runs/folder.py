"""One run's folder: config.json, state.json, metrics.jsonl, checkpoints, summary.json, and
splits.json, each with one reader and one writer here.

Every reader survives any bytes: a damaged file raises RunFileError, one sentence naming the
file, what is wrong and what to do; the run list marks such a run "damaged" instead of failing.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import run_lock
from engine.config import ConfigError, NewerFormatError, RunConfig
from engine.files import (
    MAX_JSON_BYTES,
    JsonLines,
    UnreadableFileError,
    append_jsonl,
    jsonl_bytes,
    read_json_object,
    scan_jsonl,
    write_bytes_atomic,
    write_json_atomic,
)
from engine.runs.errors import CHOOSE, REMEDY, RunFileError, WorkspaceError
from engine.runs.health import splits_problem
from engine.runs.metrics import is_metrics_record, records_until
from engine.runs.records import RunSplits, RunState, RunSummary, schema_problem, stamped

RUNS_DIR = "runs"
SMALL_FILE_BYTES = 16 * 2**20  # config, state and summary are a few kB; more is not theirs


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
        config = self.config()
        self.state(), self.summary()
        problem = splits_problem(self)
        if problem:
            raise RunFileError(problem)
        return config

    def state(self) -> dict[str, Any]:
        """state.json ({} before it exists); RunFileError when it is damaged."""
        return self._record(self.state_path, max_bytes=SMALL_FILE_BYTES)

    def summary(self) -> dict[str, Any]:
        """summary.json ({} until the run ends); RunFileError when it is damaged."""
        return self._record(self.summary_path, max_bytes=SMALL_FILE_BYTES)

    def splits(self) -> dict[str, Any]:
        """splits.json ({} until training starts); RunFileError when it is damaged."""
        return self._record(self.splits_path)

    def read_state(self) -> RunState:
        """state.json as a typed record (empty before it exists); RunFileError when damaged."""
        return RunState.from_dict(self.state())

    def read_summary(self) -> RunSummary:
        """summary.json as a typed record (empty until the run ends); RunFileError when damaged."""
        return RunSummary.from_dict(self.summary())

    def read_splits(self) -> RunSplits:
        """splits.json as a typed record (empty until training starts); RunFileError when
        damaged."""
        return RunSplits.from_dict(self.splits())

    def metrics(self) -> list[dict[str, Any]]:
        """The readable records of metrics.jsonl; damaged lines are skipped, never fatal."""
        return self.metrics_lines().records

    def metrics_lines(self) -> JsonLines:
        """metrics.jsonl's well-formed records, and how many lines were skipped."""
        lines = scan_jsonl(self.metrics_path)
        kept = [r for r in lines.records if is_metrics_record(r)]
        skipped = lines.unreadable + len(lines.records) - len(kept)
        return JsonLines(kept, skipped, lines.problem)

    def status(self, state: dict[str, Any] | None = None) -> str:
        """state.json's status, except that a "running" run whose training process is gone
        (killed, crashed, the computer restarted) is "interrupted"."""
        state = self.state() if state is None else state
        status = RunState.from_dict(state).status
        if status != "running" or self.owner() is not None:
            return status
        try:  # the owner may have finished between reading the state and the lock
            status = self.read_state().status
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
            raise WorkspaceError(write_failure(self.path, exc)) from exc
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

    def _record(self, path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
        """A schema-versioned run file's object; RunFileError when damaged or newer."""
        data = self._json(path, max_bytes=max_bytes)
        problem = schema_problem(data, path)
        if problem:
            newer = "newer Refit Studio" in problem
            raise RunFileError(f"{problem}." if newer else f"{problem}; {REMEDY}.")
        return data

    def update_state(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into state.json (written whole, atomically); the state written."""
        state = stamped({**self.state(), **changes})
        write_json_atomic(self.state_path, state)
        return state

    def write_summary(self, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into summary.json (written whole, atomically)."""
        write_json_atomic(self.summary_path, stamped({**self.summary(), **changes}))

    def write_splits(self, data: Mapping[str, Any]) -> None:
        """Write splits.json (the run's classes and examples), atomically."""
        write_json_atomic(self.splits_path, stamped(data))

    def append_metrics(self, *records: dict[str, Any]) -> None:
        """Append records (metrics.step_record / epoch_record) to metrics.jsonl."""
        append_jsonl(self.metrics_path, list(records))

    def keep_metrics_until(self, global_step: int, epoch: int) -> None:
        """Rewrite metrics.jsonl without the lines written after the checkpoint a resume
        continues from (``global_step``, ``epoch``)."""
        kept = records_until(self.metrics(), global_step, epoch)
        write_bytes_atomic(self.metrics_path, jsonl_bytes(kept))


def write_failure(folder: Path, exc: OSError) -> str:
    """One sentence for an OSError while writing in ``folder``."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"The workspace folder {folder} is read-only ({reason}); make it writable or {CHOOSE}."
        )
    if exc.errno == errno.ENOSPC:
        return f"The disk holding {folder} is full; free some space or {CHOOSE}."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"The workspace {folder} is (inside) a file, not a folder; {CHOOSE}."
    return f"Cannot write in the workspace folder {folder} ({reason}); {CHOOSE}."
