"""One MLflow run per Refit run, through mlflow-skinny's MlflowClient with the tracking URI
passed explicitly (no process-wide ``mlflow.set_tracking_uri``): the flattened config as params,
the training loss and learning rate per step, the validation metrics per epoch, and the run's
summary, config and evaluation files as artifacts at the end. A resumed run goes on in the MLflow
run it started (found by its ``refit.run_id`` tag)."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.events import EpochEnded, RunEnded, RunStarted, RunStatus, StepEnded
from engine.tracking.available import check_mlflow
from engine.tracking.base import SafeTracker, TrackingUnavailable, flatten
from engine.tracking.targets import mask_uri
from engine.training.context import RunContext

DEFAULT_EXPERIMENT = "refit-studio"
PARAMS_PER_BATCH = 100  # MLflow's limits on one log_batch call
METRICS_PER_BATCH = 1000
MAX_PARAMS = 1000
FLUSH_SECONDS = 10.0
CONNECT_SECONDS = 5.0
ARTIFACTS = ("summary.json", "config.json", "splits.json")
ARTIFACT_FOLDERS = ("evaluation", "export", "exports", "report", "reports")
ARTIFACT_SUFFIXES = (".json", ".md", ".html", ".pdf", ".csv", ".onnx", ".safetensors", ".pt")
MAX_ARTIFACT_BYTES = 512 * 1024**2
_NAME = re.compile(r"[^A-Za-z0-9_\-. /:]")
_STATUS = {
    RunStatus.COMPLETED: "FINISHED",
    RunStatus.CANCELLED: "KILLED",
    RunStatus.FAILED: "FAILED",
    RunStatus.DIVERGED: "FAILED",
}


def metric_name(name: str) -> str:
    """A name MLflow accepts (letters, digits and _-. /: only)."""
    return _NAME.sub("_", name)[:250] or "metric"


class MlflowTracker(SafeTracker):
    """Logs the run to the MLflow tracking server or store at ``uri``."""

    label = "MLflow tracking"

    def __init__(self, uri: str, *, primary: bool = True, experiment: str = "") -> None:
        super().__init__(primary=primary)
        self.uri = uri
        self.experiment = experiment
        self.client: Any = None
        self.mlflow_run_id = ""
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()

    def describe(self, exc: Exception) -> str:
        return f"{mask_uri(self.uri)}: {super().describe(exc)}"

    def start(self, event: RunStarted, ctx: RunContext) -> None:
        check_mlflow(self.uri)
        _check_reachable(self.uri)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        name = self.experiment or ctx.workspace.root.name or DEFAULT_EXPERIMENT
        found = self.client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        run_id = ctx.run.run_id
        if ctx.resuming:
            previous = self.client.search_runs(
                [experiment_id], f"tags.`refit.run_id` = '{_quoted(run_id)}'", max_results=1
            )
            if previous:
                self.mlflow_run_id = previous[0].info.run_id
                self.client.update_run(self.mlflow_run_id, status="RUNNING")
                return
        config = ctx.config
        tags = {
            "refit.run_id": run_id,
            "refit.backbone": config.model.backbone,
            "refit.method": str(config.adapt.method),
            "refit.device": event.device,
        }
        run = self.client.create_run(experiment_id, run_name=run_id, tags=tags)
        self.mlflow_run_id = run.info.run_id
        self._log_params(flatten(config.to_dict()))

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in list(params.items())[:MAX_PARAMS]]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.mlflow_run_id, params=items[i : i + PARAMS_PER_BATCH])

    def _metric(self, name: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._pending.append(Metric(metric_name(name), float(value), stamp, int(step)))

    def flush(self) -> None:
        """Send the buffered metrics (a request per ~10 s, not per step)."""
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), METRICS_PER_BATCH):
            self.client.log_batch(self.mlflow_run_id, metrics=pending[i : i + METRICS_PER_BATCH])
        self._last_flush = time.monotonic()

    def step(self, event: StepEnded, ctx: RunContext) -> None:
        if not self.mlflow_run_id:
            return
        self._metric("train/loss", event.loss, event.step)
        self._metric("train/lr", event.lr, event.step)
        if time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def epoch(self, event: EpochEnded, ctx: RunContext) -> None:
        if not self.mlflow_run_id:
            return
        for name, value in event.metrics.items():
            self._metric(f"epoch/{name}", value, event.epoch)
        self.flush()

    def end(self, event: RunEnded, ctx: RunContext) -> None:
        if not self.mlflow_run_id:
            return
        self.flush()
        for name, value in event.best_metrics.items():
            self._metric(f"best/{name}", value, 0)
        self.flush()
        for path, folder in artifacts(ctx.run.path):
            self.client.log_artifact(self.mlflow_run_id, str(path), folder)
        self.client.set_terminated(self.mlflow_run_id, status=_STATUS.get(event.status, "FAILED"))


def artifacts(run_path: Path) -> list[tuple[Path, str | None]]:
    """The run's files worth keeping beside its MLflow run: summary, config and splits, and the
    evaluation, report and export files when the run folder has them (no checkpoints)."""
    found: list[tuple[Path, str | None]] = []
    for name in ARTIFACTS:
        path = run_path / name
        if path.is_file() and not path.is_symlink():
            found.append((path, None))
    for folder in ARTIFACT_FOLDERS:
        root = run_path / folder
        if not root.is_dir() or root.is_symlink():
            continue
        for path in sorted(root.rglob("*")):
            if (
                path.is_file()
                and not path.is_symlink()
                and path.suffix.lower() in ARTIFACT_SUFFIXES
                and path.stat().st_size <= MAX_ARTIFACT_BYTES
            ):
                found.append((path, str(path.parent.relative_to(run_path).as_posix())))
    return found


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _check_reachable(uri: str) -> None:
    """An http(s) server that does not accept a connection within seconds fails here, once,
    instead of after MLflow's minutes of retries."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "localhost", port), CONNECT_SECONDS).close()
    except OSError as exc:
        raise TrackingUnavailable(f"the server does not answer ({exc.strerror or exc})") from None
