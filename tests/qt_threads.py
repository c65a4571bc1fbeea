"""The fixture that fails a Qt test leaving a worker thread running; shared by the desktop and
reliability app tests (import it into a conftest or test module to use it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_thread_left_running(qtbot):
    """Fail any test that leaves a worker thread running (a crash on exit waiting to happen)."""
    yield
    from desktop.worker import running_threads

    try:
        qtbot.waitUntil(lambda: not running_threads(), timeout=20000)
    except Exception:
        pytest.fail(f"{len(running_threads())} worker thread(s) still running after the test")
