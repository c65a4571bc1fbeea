"""One MLflow run per Refit run, through mlflow-skinny's MlflowClient with the tracking URI
passed explicitly (no process-wide ``mlflow.set_tracking_uri``): the flattened config as params,
the training loss and learning rate per step, the validation metrics per epoch, and the run's
summary, config and evaluation files as artifacts at the end. A resumed run goes on in the MLflow
run it started (found by its ``refit.run_id`` tag)."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
from collections.abc import Callable
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
# Not splits.json: it names every file of the dataset, which stays on this machine.
ARTIFACTS = ("summary.json", "config.json")
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
    """Logs the run to the MLflow tracking server or store at ``uri``.

    Every MLflow call runs on one background thread, so a slow or hung server never holds a
    training step back: the callbacks queue work, and a failure there is reported (once) at the
    next event. At the end the tracker waits up to ``end_wait`` seconds for the queue."""

    label = "MLflow tracking"

    def __init__(
        self, uri: str, *, primary: bool = True, experiment: str = "", end_wait: float = 60.0
    ) -> None:
        super().__init__(primary=primary)
        self.uri = uri
        self.experiment = experiment
        self.end_wait = end_wait
        self.client: Any = None
        self.mlflow_run_id = ""
        self._sender = _Sender()
        self._pending: list[tuple[str, float, int, int]] = []
        self._last_flush = time.monotonic()

    def describe(self, exc: Exception) -> str:
        return f"{mask_uri(self.uri)}: {super().describe(exc)}"

    # -- the trainer's thread: queue work, report a failure of the sender once -----------------

    def start(self, event: RunStarted, ctx: RunContext) -> None:
        check_mlflow(self.uri)
        name = self.experiment or ctx.workspace.root.name or DEFAULT_EXPERIMENT
        run_id, resuming = ctx.run.run_id, ctx.resuming
        tags = {
            "refit.run_id": run_id,
            "refit.backbone": ctx.config.model.backbone,
            "refit.method": str(ctx.config.adapt.method),
            "refit.device": event.device,
        }
        params = flatten(ctx.config.to_dict())
        self._sender.submit(lambda: self._open(name, run_id, resuming, tags, params))

    def step(self, event: StepEnded, ctx: RunContext) -> None:
        self._sender.check()
        stamp = int(time.time() * 1000)
        self._pending.append(("train/loss", event.loss, stamp, event.step))
        self._pending.append(("train/lr", event.lr, stamp, event.step))
        if time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self._flush()

    def epoch(self, event: EpochEnded, ctx: RunContext) -> None:
        self._sender.check()
        stamp = int(time.time() * 1000)
        for name, value in event.metrics.items():
            self._pending.append((f"epoch/{name}", value, stamp, event.epoch))
        self._flush()

    def end(self, event: RunEnded, ctx: RunContext) -> None:
        self._sender.check()
        stamp = int(time.time() * 1000)
        for name, value in event.best_metrics.items():
            self._pending.append((f"best/{name}", value, stamp, 0))
        self._flush()
        files = artifacts(ctx.run.path)
        status = _STATUS.get(event.status, "FAILED")
        self._sender.submit(lambda: self._close_run(files, status))
        if not self._sender.drain(self.end_wait):
            raise TrackingUnavailable(
                f"the server did not finish within {self.end_wait:.0f} s; the last metrics and "
                "the artifacts may be missing there"
            )
        self._sender.check()

    def close(self) -> None:
        self._sender.stop()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        if pending:
            self._sender.submit(lambda: self._send_metrics(pending))

    # -- the sender's thread: the MLflow calls ---------------------------------------------------

    def _open(
        self,
        experiment: str,
        run_id: str,
        resuming: bool,
        tags: dict[str, str],
        params: dict[str, str],
    ) -> None:
        _check_reachable(self.uri)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        if resuming:
            previous = self.client.search_runs(
                [experiment_id], f"tags.`refit.run_id` = '{_quoted(run_id)}'", max_results=1
            )
            if previous:
                self.mlflow_run_id = previous[0].info.run_id
                self.client.update_run(self.mlflow_run_id, status="RUNNING")
                return
        run = self.client.create_run(experiment_id, run_name=run_id, tags=tags)
        self.mlflow_run_id = run.info.run_id
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in list(params.items())[:MAX_PARAMS]]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.mlflow_run_id, params=items[i : i + PARAMS_PER_BATCH])

    def _send_metrics(self, pending: list[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(metric_name(n), float(v), t, int(s)) for n, v, t, s in pending]
        for i in range(0, len(metrics), METRICS_PER_BATCH):
            self.client.log_batch(self.mlflow_run_id, metrics=metrics[i : i + METRICS_PER_BATCH])

    def _close_run(self, files: list[tuple[Path, str | None]], status: str) -> None:
        for path, folder in files:
            self.client.log_artifact(self.mlflow_run_id, str(path), folder)
        self.client.set_terminated(self.mlflow_run_id, status=status)


class _Sender:
    """One daemon thread that runs queued calls in order; after the first failure it skips the
    rest and keeps the error for :meth:`check` to raise on the caller's thread."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Callable[[], None], bool] | None] = queue.Queue()
        self.error: Exception | None = None
        self.reported = False
        self.thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], None], *, always: bool = False) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="mlflow-tracking", daemon=True)
            self.thread.start()
        self.queue.put((fn, always))

    def check(self) -> None:
        """Raise the sender's failure on the calling thread, once."""
        if self.error is not None and not self.reported:
            self.reported = True
            raise self.error

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for what is queued; False when it did not finish."""
        if self.thread is None:
            return True
        done = threading.Event()
        self.submit(done.set, always=True)
        return done.wait(timeout)

    def stop(self) -> None:
        if self.thread is not None:
            self.queue.put(None)

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            fn, always = item
            if self.error is None or always:
                try:
                    fn()
                except Exception as exc:
                    self.error = exc


def artifacts(run_path: Path) -> list[tuple[Path, str | None]]:
    """The run's files worth keeping beside its MLflow run: summary and config, and the
    evaluation, report and export files when the run folder has them (no checkpoints, no
    per-example predictions, no list of the dataset's files)."""
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
