"""Run folders in a workspace: config.json, state.json, metrics.jsonl, checkpoints, summary.json."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.config import ConfigError, RunConfig
from engine.files import append_jsonl, read_jsonl, write_json_atomic

RUNS_DIR = "runs"


class RunNotFoundError(LookupError):
    """A run id or folder that does not exist in the workspace."""


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

    def config(self) -> RunConfig:
        return RunConfig.load(self.config_path)

    def state(self) -> dict[str, Any]:
        return _read_json(self.state_path)

    def summary(self) -> dict[str, Any]:
        return _read_json(self.summary_path)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def splits(self) -> dict[str, Any]:
        return _read_json(self.splits_path)

    def update_state(self, **changes: Any) -> dict[str, Any]:
        state = self.state()
        state.update(changes)
        write_json_atomic(self.state_path, state)
        return state

    def append_metrics(self, *records: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, list(records))


@dataclass(frozen=True)
class RunInfo:
    """A line of the run list."""

    run_id: str
    path: Path
    name: str
    backbone: str
    method: str
    status: str
    created: str
    epochs_done: int
    best: dict[str, float]


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

    def create_run(self, config: RunConfig) -> RunDir:
        """Make a new run folder and write its config.json first."""
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
        if (path / "config.json").is_file():
            return RunDir(path.resolve())
        candidates = []
        if self.runs_root.is_dir():
            candidates = sorted(
                p for p in self.runs_root.iterdir() if p.name.startswith(str(ref)) and p.is_dir()
            )
        exact = [p for p in candidates if p.name == str(ref)]
        if exact or len(candidates) == 1:
            return RunDir((exact or candidates)[0])
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates[:5])
            raise RunNotFoundError(f"'{ref}' matches several runs ({names}); give more of the id.")
        raise RunNotFoundError(
            f"No run '{ref}' in {self.runs_root}; `refit runs` lists the runs in this workspace."
        )

    def list_runs(self) -> list[RunInfo]:
        """Every run folder with a readable config, newest first."""
        out = []
        if not self.runs_root.is_dir():
            return out
        for path in sorted(self.runs_root.iterdir(), reverse=True):
            run = RunDir(path)
            if not run.config_path.is_file():
                continue
            try:
                cfg = run.config()
            except ConfigError:
                continue
            state = run.state()
            out.append(
                RunInfo(
                    run_id=run.run_id,
                    path=path,
                    name=cfg.name,
                    backbone=cfg.model.backbone,
                    method=str(cfg.adapt.method),
                    status=str(state.get("status", "unknown")),
                    created=str(state.get("created", "")),
                    epochs_done=int(state.get("epochs_done", 0)),
                    best=dict(run.summary().get("best", {})),
                )
            )
        return out


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name if os.sep in text else text)
    return slug.strip("-._")[:40] or "run"
