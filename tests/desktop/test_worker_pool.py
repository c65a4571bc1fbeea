"""WorkerPool.submit: a job with a Task, results in the GUI thread, superseded results dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.task import Cancelled

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pool(ctx):
    return ctx.pool


def test_a_result_and_progress_reach_the_gui_thread(qtbot, pool):
    gui = threading.get_ident()
    seen: list[tuple] = []

    def job(task):
        task.report(1, 2, "half")
        task.report(2, 2, "all")
        return 42

    def on_progress(p):
        seen.append(("progress", p.done, p.total, p.message, threading.get_ident() == gui))

    def on_result(value):
        seen.append(("result", value, threading.get_ident() == gui))

    pool.submit(job, on_result, on_progress=on_progress, on_done=lambda: seen.append(("done",)))
    qtbot.waitUntil(lambda: ("done",) in seen, timeout=10000)
    assert seen[-2:] == [("result", 42, True), ("done",)]
    assert ("progress", 2, 2, "all", True) in seen


def test_an_error_comes_as_a_sentence(qtbot, pool):
    errors: list[str] = []

    def job(task):
        raise ValueError("The folder is gone.")

    pool.submit(job, lambda _r: pytest.fail("no result"), on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert "The folder is gone." in errors[0]


def test_a_later_submit_with_the_same_key_supersedes_the_first(qtbot, pool):
    started = threading.Event()
    results: list[str] = []
    done: list[str] = []
    saw_cancel: list[bool] = []

    def slow(task):
        started.set()
        saw_cancel.append(task.cancel_event.wait(10))
        return "old"  # a late result, as a job that finished just as it was replaced

    first = pool.submit(slow, results.append, key="scan", on_done=lambda: done.append("old"))
    assert started.wait(10)
    pool.submit(lambda task: "new", results.append, key="scan", on_done=lambda: done.append("new"))
    qtbot.waitUntil(lambda: not pool.busy, timeout=10000)
    assert first.cancelled and saw_cancel == [True]
    assert results == ["new"] and done == ["new"]
    assert not pool.running("scan")


def test_cancelled_goes_to_on_cancelled_and_drop_silences_a_job(qtbot, pool):
    calls: list[str] = []

    def job(task):
        task.cancel_event.wait(10)
        task.check()
        return "never"

    task = pool.submit(job, calls.append, on_cancelled=lambda: calls.append("cancelled"))
    task.cancel()
    qtbot.waitUntil(lambda: not pool.busy, timeout=10000)
    assert calls == ["cancelled"]

    calls.clear()
    pool.submit(
        job, calls.append, key="k", on_error=calls.append, on_done=lambda: calls.append("d")
    )
    assert pool.running("k") and pool.drop("k") and not pool.drop("k")
    qtbot.waitUntil(lambda: not pool.busy, timeout=10000)
    assert calls == []


def test_without_on_cancelled_a_cancel_is_an_error(qtbot, pool):
    errors: list[str] = []

    def job(task):
        raise Cancelled()

    pool.submit(job, lambda _r: None, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)


def test_a_result_for_a_widget_closed_meanwhile_is_dropped(qtbot, pool):
    """As a Qt connection goes with its receiver: the Results page closed while its job ran."""
    import shiboken6
    from PySide6.QtWidgets import QCheckBox, QWidget

    class Panel(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.box = QCheckBox(self)
            self.shown: list[object] = []

        def on_result(self, value: object) -> None:
            self.box.setEnabled(bool(value))  # raises if the box is gone
            self.shown.append(value)

    release = threading.Event()
    done: list[bool] = []
    panel = Panel()
    shown = panel.shown
    pool.submit(lambda task: release.wait(10), panel.on_result, on_done=lambda: done.append(True))
    shiboken6.delete(panel)  # the C++ widget and its children are gone, the Python object stays
    release.set()
    qtbot.waitUntil(lambda: bool(done), timeout=10000)
    assert shown == []  # not called (and nothing raised in the event loop)

    alive = Panel()
    pool.submit(lambda task: True, alive.on_result, on_done=lambda: done.append(True))
    qtbot.waitUntil(lambda: len(done) == 2, timeout=10000)
    assert alive.shown == [True]


def test_after_stop_all_nothing_starts(qtbot, pool):
    """A page's debounce timer that fires once the app is closing (or its test has ended) must
    not start a job that outlives the pool."""
    from desktop.worker import EngineWorker, running_threads

    pool.stop_all()
    ran: list[str] = []
    task = pool.submit(lambda _task: ran.append("job"), ran.append, on_done=lambda: ran.append("d"))
    worker = pool.start(EngineWorker(lambda _on_event, _task: ran.append("engine job")))
    qtbot.wait(200)
    assert task.cancelled and worker.task.cancelled
    assert ran == [] and not pool.busy and running_threads() == []


def test_a_pool_nothing_refers_to_lives_until_its_jobs_end(tmp_path):
    """Dropping the last reference to a pool (a closed page's) while its job runs used to let the
    garbage collector destroy the running QThread: Qt aborts the process. In a child process, so
    that a regression fails this test and not the whole run."""
    script = tmp_path / "drop_pool.py"
    script.write_text(
        "import gc, threading\n"
        "from PySide6.QtCore import QCoreApplication, QDeadlineTimer\n"
        "from desktop.worker import WorkerPool, running_threads\n"
        "app = QCoreApplication([])\n"
        "release, results = threading.Event(), []\n"
        "pool = WorkerPool()\n"
        "pool.submit(lambda task: release.wait(10) and 'finished', results.append)\n"
        "pool.cycle = pool  # a closed page's context: only the garbage collector frees it\n"
        "del pool\n"
        "gc.collect()\n"
        "release.set()\n"
        "deadline = QDeadlineTimer(10000)\n"
        "while (running_threads() or not results) and not deadline.hasExpired():\n"
        "    app.processEvents()\n"
        "gc.collect()\n"
        "print(results, running_threads())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['finished'] []"
