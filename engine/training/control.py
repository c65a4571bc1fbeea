"""Thread-safe pause and cancel flags that the training loop checks between steps."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside the engine when the user cancels; the trainer turns it into RunEnded."""


class RunControl:
    """Set from any thread (the GUI, a signal handler); read by the loop after every step."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused loop must wake up to notice the cancel

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        """Block while paused; returns at once when running or cancelled."""
        while not self._running.wait(timeout=0.2):
            if self._cancel.is_set():
                return

    @property
    def cancel_event(self) -> threading.Event:
        return self._cancel
