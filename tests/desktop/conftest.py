"""Desktop tests: offscreen Qt, a minimal AppContext, and no QThread left running."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import pytest
from PySide6.QtCore import QSettings
from qt_threads import _no_thread_left_running  # noqa: F401 (an autouse fixture)


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def ctx(tmp_path, settings):
    """The context every page gets, without a main window."""
    from desktop.context import AppContext, AppSignals
    from desktop.state import ConfigState
    from desktop.worker import WorkerPool

    pool = WorkerPool()
    context = AppContext(
        state=ConfigState(),
        pool=pool,
        settings=settings,
        signals=AppSignals(),
        workspace=tmp_path / "ws",
    )
    yield context
    # A test must wait for its own workers; one still running here is a leak.
    leaked = pool.busy and not _wait(lambda: not pool.busy, 10000)
    pool.stop_all()
    if leaked:
        pytest.fail("the test left a worker thread running")


def _wait(predicate, timeout_ms: int) -> bool:
    from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QThread

    deadline = QDeadlineTimer(timeout_ms)
    while not predicate():
        if deadline.hasExpired():
            return False
        QCoreApplication.processEvents()
        QThread.msleep(10)
    return True
