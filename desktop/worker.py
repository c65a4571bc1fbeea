"""The QThread bridge: engine jobs run in worker threads; their results, progress and events come
back to the GUI thread.

Most jobs go through :meth:`WorkerPool.submit`: ``job(task)`` runs with an engine Task, its
progress and result come back to callbacks in the GUI thread, and a later submit with the same
``key`` cancels the earlier job and drops whatever it still sends. Training (and other jobs with
an engine event stream) runs in an :class:`EngineWorker` started with :meth:`WorkerPool.start`;
its task is the same Task."""

from __future__ import annotations

import ctypes
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import shiboken6
from PySide6.QtCore import QDeadlineTimer, QObject, QThread, Signal, Slot

from engine import Cancelled, Event, Progress, StageProgressed, StepEnded, Task

Job = Callable[[Callable[[Event], None], Task], Any]
TaskJob = Callable[[Task], Any]

_threads: weakref.WeakSet[QThread] = weakref.WeakSet()
# Pools with a job still running: a pool nothing else refers to any more (a closed page's) must
# not be collected before its threads end, or Qt aborts ("QThread: Destroyed while thread is
# still running"), destroying each running QThread with it.
_busy_pools: set[WorkerPool] = set()
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
    """Runs ``job(on_event, task)`` in its thread.

    Events reach the GUI thread in batches (``events``, a list) through one queued signal: step
    and progress events are coalesced to about ``rate_hz`` batches a second, anything else is sent
    at once, so a fast loop cannot flood the GUI's event queue.
    """

    events = Signal(list)
    progress = Signal(object)  # an engine.task.Progress of the task's reports
    succeeded = Signal(object)
    failed = Signal(str)
    done = Signal()

    def __init__(
        self,
        job: Job,
        *,
        rate_hz: float = 15.0,
        task: Task | None = None,
        interruptible: bool = True,
    ):
        super().__init__()
        self.job = job
        #: False for training: it must stop at a step boundary and save its checkpoint
        self.interruptible = interruptible
        self.task = task or Task(self.progress.emit)
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
            from engine import error_sentence

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
            return self.job(self._on_event, self.task)
        finally:
            with self._lock:  # from here on, interrupt() leaves this thread alone
                self._thread_id = None


class _Cancelled:
    """What a submitted job gives back when its task was cancelled (and the caller asked)."""


_CANCELLED = _Cancelled()


class _Relay(QObject):
    """The GUI-thread end of one submitted job: hands its signals to the caller's callbacks,
    unless the job was superseded or dropped."""

    def __init__(
        self,
        pool: WorkerPool,
        worker: EngineWorker,
        key: Hashable | None,
        callbacks: dict[str, Callable[..., Any] | None],
    ) -> None:
        super().__init__()  # no parent: the pool's set holds it while its job runs
        self.pool, self.worker, self.key, self.callbacks = pool, worker, key, callbacks
        self.dropped = False

    def _call(self, name: str, *args: Any) -> None:
        callback = self.callbacks.get(name)
        if callback is None or self.dropped:
            return
        # A Qt connection to a deleted receiver is gone with it; a callback that is a method of
        # a widget closed while its job ran must go the same way (its child widgets are gone).
        receiver = getattr(callback, "__self__", None)
        if isinstance(receiver, QObject) and not shiboken6.isValid(receiver):
            return
        callback(*args)

    @Slot(object)
    def on_progress(self, progress: Progress) -> None:
        self._call("on_progress", progress)

    @Slot(object)
    def on_succeeded(self, result: Any) -> None:
        if result is _CANCELLED:
            self._call("on_cancelled")
        else:
            self._call("on_result", result)

    @Slot(str)
    def on_failed(self, sentence: str) -> None:
        self._call("on_error", sentence)

    @Slot()
    def on_done(self) -> None:
        self.pool._finished(self)  # first: on_done sees the key free
        self._call("on_done")


class WorkerPool(QObject):
    """Owns the threads of running workers: starts them, and stops them all on quit.

    After :meth:`stop_all` the pool starts nothing more: a page's debounce timer that fires
    while the app closes (or after a test) does not start a job that outlives the pool."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._closed = False
        self._running: dict[EngineWorker, QThread] = {}
        self._relays: set[_Relay] = set()
        self._keyed: dict[Hashable, _Relay] = {}

    def submit(
        self,
        job: TaskJob,
        on_result: Callable[[Any], None] | None = None,
        *,
        key: Hashable | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_done: Callable[[], None] | None = None,
        interruptible: bool = True,
    ) -> Task:
        """Run ``job(task)`` in a worker thread and return its Task (cancel it to stop the job).

        The callbacks run in the GUI thread: ``on_result`` with what the job returned,
        ``on_error`` with the sentence of what it raised, ``on_progress`` with the task's
        :class:`~engine.task.Progress`, ``on_done`` last, in every case. A job that raises
        Cancelled calls ``on_cancelled`` when given (else ``on_error``, as any failure). A later
        submit with the same ``key`` (or :meth:`drop`) cancels this job's task and drops its
        callbacks: a superseded result never reaches ``on_result``."""
        self.drop(key)
        if self._closed:  # stopped for good: nothing runs, no callback comes
            refused = Task()
            refused.cancel()
            return refused
        wants_cancelled = on_cancelled is not None

        def run(_on_event: Callable[[Event], None], task: Task) -> Any:
            try:
                return job(task)
            except Cancelled:
                if not wants_cancelled:
                    raise
                return _CANCELLED

        worker = EngineWorker(run, interruptible=interruptible)
        callbacks = {
            "on_result": on_result,
            "on_error": on_error,
            "on_progress": on_progress,
            "on_cancelled": on_cancelled,
            "on_done": on_done,
        }
        relay = _Relay(self, worker, key, callbacks)
        worker.progress.connect(relay.on_progress)
        worker.succeeded.connect(relay.on_succeeded)
        worker.failed.connect(relay.on_failed)
        worker.done.connect(relay.on_done)
        self._relays.add(relay)
        if key is not None:
            self._keyed[key] = relay
        self.start(worker)
        return worker.task

    def drop(self, key: Hashable | None) -> bool:
        """Cancel the job submitted under ``key`` and drop whatever it still sends; True when
        there was one."""
        if key is None:
            return False
        relay = self._keyed.pop(key, None)
        if relay is None:
            return False
        relay.dropped = True
        relay.worker.task.cancel()
        return True

    def running(self, key: Hashable) -> bool:
        """Whether a job submitted under ``key`` is still running (and not dropped)."""
        return key in self._keyed

    def _finished(self, relay: _Relay) -> None:
        self._relays.discard(relay)
        if relay.key is not None and self._keyed.get(relay.key) is relay:
            del self._keyed[relay.key]

    def start(self, worker: EngineWorker) -> EngineWorker:
        """Run ``worker`` in a new thread; after :meth:`stop_all` its task is cancelled instead
        and it never runs (nor sends a signal)."""
        if self._closed:
            worker.task.cancel()
            return worker
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
        _busy_pools.add(self)
        thread.start()
        return worker

    def _on_thread_finished(self) -> None:
        thread = self.sender()
        for worker, t in list(self._running.items()):
            if t is thread:
                del self._running[worker]
        if not self._running:
            _busy_pools.discard(self)

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def stop_all(self, timeout_ms: int = QUIT_WAIT_MS) -> bool:
        """Cancel every job and wait for its thread, ``timeout_ms`` in all: jobs get their cancel
        token at once; one that has not stopped after half the time is interrupted. Training
        (not interruptible) gets up to TRAINING_WAIT_MS to save its checkpoint. True when every
        thread has ended. The pool starts no job after this."""
        self._closed = True
        running = list(self._running.items())
        for worker, thread in running:
            worker.task.cancel()
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
