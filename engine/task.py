"""One task object for every long engine call: progress with a fraction and a message, and
cancellation that raises one :class:`Cancelled` (in the spirit of Orange's ``TaskState``).

Whoever starts the call (the app's worker thread, the CLI's Ctrl+C handler, a test) makes a
:class:`Task`, may cancel, pause or resume it from any thread, and reads its progress through the
``on_progress`` callback. The engine code reports with :meth:`Task.report` and checks with
:meth:`Task.check` between units of work (an image, a batch, a step). A stage of a longer call gets
:meth:`Task.stage`: a task whose fraction fills a slice of its parent's and that shares its
parent's cancel and pause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """The user cancelled a long engine call; raised by :meth:`Task.check`."""


@dataclass(frozen=True)
class Progress:
    """Where a task stands: ``fraction`` from 0 to 1 (None while the amount of work is not
    known yet), a sentence for the user, and the counts it came from (0, 0 when none)."""

    fraction: float | None
    message: str = ""
    done: int = 0
    total: int = 0


ProgressCallback = Callable[[Progress], None]


class _Flags:
    """The cancel and pause flags that a task and all its stages share."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.running = threading.Event()
        self.running.set()


class Task:
    """Progress and cancellation of one long engine call. Thread-safe: cancel, pause and resume
    from any thread; report and check from the thread doing the work.

    ``on_progress`` is called with a :class:`Progress` (in the working thread) at most about
    ``rate_hz`` times a second, except that the first report, the last one (``done == total``) and
    every change of message always go through."""

    def __init__(
        self, on_progress: ProgressCallback | None = None, *, rate_hz: float = 20.0
    ) -> None:
        self._flags = _Flags()
        self._on_progress = on_progress
        self._interval = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._start, self._stop = 0.0, 1.0
        self._last_sent = float("-inf")
        self._last_message: str | None = None

    # --- the caller's side --------------------------------------------------------------------

    def cancel(self) -> None:
        self._flags.cancel.set()
        self._flags.running.set()  # a paused call must wake up to notice the cancel

    def pause(self) -> None:
        self._flags.running.clear()

    def resume(self) -> None:
        self._flags.running.set()

    @property
    def cancelled(self) -> bool:
        return self._flags.cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._flags.running.is_set()

    @property
    def cancel_event(self) -> threading.Event:
        """The event set by :meth:`cancel` (for code that waits on it, a child process's pipe
        reader for example)."""
        return self._flags.cancel

    # --- the engine's side --------------------------------------------------------------------

    def check(self) -> None:
        """Wait while paused; raise :class:`Cancelled` when cancelled."""
        self.wait_while_paused()
        if self._flags.cancel.is_set():
            raise Cancelled()

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` when cancelled, without waiting while paused (for calls that
        a pause never held: scans, evaluation, export, the epoch estimate)."""
        if self._flags.cancel.is_set():
            raise Cancelled()

    def wait_while_paused(self) -> None:
        """Block while paused; returns at once when running or cancelled."""
        while not self._flags.running.wait(timeout=0.2):
            if self._flags.cancel.is_set():
                return

    def report(self, done: int, total: int, message: str = "") -> None:
        """``done`` of ``total`` units (``total`` 0: not known yet), with a sentence."""
        fraction = None if total <= 0 else min(1.0, max(0.0, done / total))
        self._send(fraction, message, done, total)

    def say(self, message: str, fraction: float | None = None) -> None:
        """A sentence on its own (a stage begins), with a fraction when one is known."""
        self._send(fraction, message, 0, 0)

    def stage(
        self,
        start: float,
        stop: float,
        on_progress: ProgressCallback | None = None,
        *,
        rate_hz: float | None = None,
    ) -> Task:
        """A task for one stage of this one: its fraction 0..1 fills ``start``..``stop`` of this
        task's; it reports through this task's callback (or ``on_progress`` when given), at this
        task's rate (or ``rate_hz``; 0: every report), and shares its cancel and pause."""
        child = Task.__new__(Task)
        child._flags = self._flags
        child._on_progress = on_progress or self._on_progress
        if rate_hz is None:
            child._interval = self._interval
        else:
            child._interval = 1.0 / rate_hz if rate_hz > 0 else 0.0
        width = self._stop - self._start
        child._start = self._start + width * start
        child._stop = self._start + width * stop
        child._last_sent = float("-inf")
        child._last_message = None
        return child

    def _send(self, fraction: float | None, message: str, done: int, total: int) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        final = total > 0 and done >= total
        if not final and message == self._last_message and now - self._last_sent < self._interval:
            return
        self._last_sent = now
        self._last_message = message
        if fraction is not None:
            fraction = self._start + (self._stop - self._start) * fraction
        self._on_progress(Progress(fraction, message, done, total))


def as_task(task: Task | None) -> Task:
    """``task``, or a task nobody cancels or watches (for callers that pass none)."""
    return task if task is not None else Task()


def counting(
    task: Task | None,
    on_counts: Callable[[int, int], None] | None,
    *,
    offset: int = 0,
    total: int | None = None,
) -> Task:
    """A stage of ``task`` (of a task nobody cancels when None) for code whose progress is counts
    (training's ``StageProgressed`` events): every report with counts goes, unthrottled, to
    ``on_counts`` as ``(offset + done, total)`` (the report's own total when ``total`` is None).
    Sentences without counts are not passed on; ``on_counts`` None: the stage reports nowhere.
    The stage shares ``task``'s cancel and pause."""

    def forward(progress: Progress) -> None:
        if on_counts is not None and progress.total > 0:
            on_counts(offset + progress.done, progress.total if total is None else total)

    # Unthrottled: whoever throttled the counts before still does.
    return as_task(task).stage(0.0, 1.0, on_progress=forward, rate_hz=0)
