"""Python's cyclic garbage collection in the GUI thread only.

Python collects reference cycles in whichever thread allocates past its threshold. In the app
that is most often a worker thread (building a model, training, decoding images), and the cycles
it frees include the Qt objects of closed pages and dialogs, which live in the GUI thread: their
C++ destructors then run in the worker thread, which Qt does not allow (a crash, or a hang on
one of Qt's locks). :class:`GuiCollector` turns automatic collection off and collects on a timer
in the GUI thread, with Python's own thresholds, so every destructor of a collected object runs
there, at a moment the GUI chose. That also makes lifetime bugs show every time instead of once in
a while: the first run of the tests with it aborted on one (a closed page's pool collected while
a job it had started late still ran: "QThread: Destroyed while thread is still running"), where
CI had hung once (desktop/worker.py now keeps a busy pool alive).

pyqtgraph has the same idea (``pyqtgraph.util.garbage_collector``); it is not used because its
module imports all of pyqtgraph (the app loads it only once the window is up) and it runs a full
collection every tenth middle one, where Python waits until the long-lived objects have grown by a
quarter: a full collection takes about 0.3 s once torch and transformers are loaded.

The engine's own ``gc.collect()`` calls (after an out-of-memory, before a retry) still run in
the worker; they are rare, and freeing the device's memory then cannot wait for the GUI.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 250  # a tick that finds nothing to do costs a microsecond
GROWTH = 0.25  # as Python: a full collection once the long-lived objects grew by a quarter


class GuiCollector(QObject):
    """Collects cycles on a timer in the thread that made it (the GUI thread); while started,
    Python's automatic collection is off."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._long_lived = 0  # objects in the oldest generation after the last full collection
        self._was_enabled = True  # whether Python collected by itself before start()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._long_lived = _oldest()
        self._timer.start()

    def stop(self) -> None:
        """Collect everything now (in this thread), and give collection back to Python."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def collect(self) -> int:
        """What Python would have collected by now, here; the number of objects freed."""
        if gc.isenabled():  # a library switched it back on (gc.enable() after its own work)
            gc.disable()
        young, middle, old = gc.get_count()
        first, second, third = self._thresholds
        if first <= 0:  # collection switched off by the threshold (gc.set_threshold(0))
            return 0
        if old > third and self._grown():
            freed = gc.collect(2)
            self._long_lived = _oldest()
            return freed
        if middle > second:
            return gc.collect(1)
        if young > first:
            return gc.collect(0)
        return 0

    def _grown(self) -> bool:
        return _oldest() - self._long_lived > GROWTH * self._long_lived


def _oldest() -> int:
    """How many objects the oldest generation holds."""
    return len(gc.get_objects(2))
