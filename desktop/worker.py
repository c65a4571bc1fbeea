"""The QThread bridge: engine jobs run in worker threads; their events come back as signals."""

from __future__ import annotations

import ctypes
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDeadlineTimer, QObject, QThread, Signal, Slot

from engine.events import Event, StageProgressed, StepEnded
from engine.training.control import RunControl

Job = Callable[[Callable[[Event], None], RunControl], Any]

_threads: weakref.WeakSet[QThread] = weakref.WeakSet()
QUIT_WAIT_MS = 1500  # closing the app waits at most this long for its jobs, in all
TRAINING_WAIT_MS = 30000  # ...but for training to reach its next step and save its checkpoint


class JobInterrupted(BaseException):
    """Raised inside a job that did not stop at its cancel token when the app quits; a
    BaseException so that a job's ``except Exception`` cannot swallow it."""


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

    def __init__(
        self,
        job: Job,
        *,
        rate_hz: float = 15.0,
        control: RunControl | None = None,
        interruptible: bool = True,
    ):
        super().__init__()
        self.job = job
        #: False for training: it must stop at a step boundary and save its checkpoint
        self.interruptible = interruptible
        self.control = control or RunControl()
        self._interval = 1.0 / rate_hz
        self._pending: list[Event] = []
        self._last_emit = 0.0
        self._lock = threading.Lock()
        self._thread_id: int | None = None  # set while the job runs

    def interrupt(self) -> bool:
        """Raise JobInterrupted in the job's thread at its next Python instruction (a job busy
        in one long library call, e.g. an ONNX export, never reaches its cancel check). Only
        used when the app quits; True when the job was still running."""
        with self._lock:
            if self._thread_id is None or not self.interruptible:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(JobInterrupted)
            )
            return True

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
            result = self._run_job()
        except JobInterrupted:  # the app is quitting: nobody waits for a result
            pass
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

    def _run_job(self) -> Any:
        with self._lock:
            self._thread_id = threading.get_ident()
        try:
            return self.job(self._on_event, self.control)
        finally:
            with self._lock:  # from here on, interrupt() leaves this thread alone
                self._thread_id = None


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

    def stop_all(self, timeout_ms: int = QUIT_WAIT_MS) -> bool:
        """Cancel every job and wait for its thread, ``timeout_ms`` in all: jobs get their cancel
        token at once; one that has not stopped after half the time is interrupted. Training
        (not interruptible) gets up to TRAINING_WAIT_MS to save its checkpoint. True when every
        thread has ended."""
        running = list(self._running.items())
        for worker, thread in running:
            worker.control.cancel()
            thread.quit()  # the thread's loop ends as soon as the job returns
        first = QDeadlineTimer(timeout_ms // 2)
        if not all([thread.wait(first) for _, thread in running]):
            for worker, thread in running:
                if thread.isRunning():
                    worker.interrupt()
        rest = QDeadlineTimer(timeout_ms - timeout_ms // 2)
        patient = QDeadlineTimer(max(timeout_ms, TRAINING_WAIT_MS))
        ended = [t.wait(patient if not w.interruptible else rest) for w, t in running]
        return all(ended)
