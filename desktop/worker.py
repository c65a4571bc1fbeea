"""The QThread bridge: engine jobs run in worker threads; their events come back as signals."""

from __future__ import annotations

import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.events import Event, StageProgressed, StepEnded
from engine.training.control import RunControl

Job = Callable[[Callable[[Event], None], RunControl], Any]

_threads: weakref.WeakSet[QThread] = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """Worker threads that are still running (tests assert none is left behind)."""
    alive = []
    for thread in list(_threads):
        try:
            if thread.isRunning():
                alive.append(thread)
        except RuntimeError:  # the C++ object is already deleted
            continue
    return alive


class EngineWorker(QObject):
    """Runs ``job(on_event, control)`` in its thread.

    Events reach the GUI thread in batches (``events``, a list) through one queued signal: step
    and progress events are coalesced to about ``rate_hz`` batches a second, anything else is sent
    at once, so a fast loop cannot flood the GUI's event queue.
    """

    events = Signal(list)
    succeeded = Signal(object)
    failed = Signal(str)
    done = Signal()

    def __init__(self, job: Job, *, rate_hz: float = 15.0, control: RunControl | None = None):
        super().__init__()
        self.job = job
        self.control = control or RunControl()
        self._interval = 1.0 / rate_hz
        self._pending: list[Event] = []
        self._last_emit = 0.0

    def _on_event(self, event: Event) -> None:
        self._pending.append(event)
        thin = isinstance(event, StepEnded | StageProgressed)
        now = time.monotonic()
        if not thin or now - self._last_emit >= self._interval:
            self._flush(now)

    def _flush(self, now: float | None = None) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self.events.emit(batch)
        self._last_emit = now if now is not None else time.monotonic()

    @Slot()
    def run(self) -> None:
        try:
            result = self.job(self._on_event, self.control)
        except Exception as exc:  # the GUI shows the sentence; the app keeps working
            from engine.training.provenance import error_sentence

            self._flush()
            traceback.print_exc()
            self.failed.emit(error_sentence(exc))
        else:
            self._flush()
            self.succeeded.emit(result)
        finally:
            self.done.emit()


class WorkerPool(QObject):
    """Owns the threads of running workers: starts them, and stops them all on quit."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[EngineWorker, QThread] = {}

    def start(self, worker: EngineWorker) -> EngineWorker:
        thread = QThread(self)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(thread.quit)
        # A bound method of this GUI-thread object: the call is queued to the GUI thread (a
        # lambda here would run in the worker thread).
        thread.finished.connect(self._on_thread_finished)
        thread.finished.connect(thread.deleteLater)
        # No worker.deleteLater: Python owns the worker, and a deferred delete processed by the
        # finishing thread raced with Python's own deletion (a crash). The worker is released in
        # _on_thread_finished, in the GUI thread, once its thread has ended.
        self._running[worker] = thread
        _threads.add(thread)
        thread.start()
        return worker

    def _on_thread_finished(self) -> None:
        thread = self.sender()
        for worker, t in list(self._running.items()):
            if t is thread:
                del self._running[worker]

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def stop_all(self, timeout_ms: int = 30000) -> bool:
        """Cancel every job and wait for its thread; True when all have ended."""
        for worker in list(self._running):
            worker.control.cancel()
        ok = True
        for thread in list(self._running.values()):
            thread.quit()
            ok = thread.wait(timeout_ms) and ok
        return ok
