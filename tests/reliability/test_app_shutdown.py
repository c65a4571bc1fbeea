"""Closing the main window while a background job runs ends every worker thread within 2 s.

Each job runs on a real tiny run, made slow where the real one would finish before the window
closes: jobs that check their cancel token are stopped by it, and a job busy in one long call
(an ONNX export here) is interrupted.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import functools
import shutil
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox
from trained_runs import train_image_run

from desktop.worker import running_threads

LIMIT_S = 2.0  # what the issue asks; the jobs typically stop well under 1 s


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_image_run(tmp_path_factory.mktemp("shutdown"))


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from desktop.main_window import MainWindow

    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(workspace=tmp_path / "ws", settings=settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.ctx.pool.stop_all()


def started() -> tuple[threading.Event, object]:
    """An event set the first time the returned wrapper's function is called."""
    event = threading.Event()

    def wrap(fn, delay: float):
        @functools.wraps(fn)
        def slow(*args, **kwargs):
            event.set()
            time.sleep(delay)
            return fn(*args, **kwargs)

        return slow

    return event, wrap


def close_and_time(qtbot, window, event: threading.Event) -> float:
    qtbot.waitUntil(event.is_set, timeout=60000)
    assert window.ctx.pool.busy and running_threads()
    start = time.monotonic()
    window.close()
    while running_threads() and time.monotonic() - start < 10:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    assert not window.isVisible()
    assert not running_threads(), "a worker thread is still running after the window closed"
    return elapsed


def test_closing_during_a_scan(qtbot, window, run, monkeypatch):
    import engine.data.scan as scan
    from engine.runs import RunDir

    event, wrap = started()
    monkeypatch.setattr(scan, "_check_file", wrap(scan._check_file, 0.3))
    window.open_folder(RunDir(run).config().data.path)
    assert close_and_time(qtbot, window, event) < LIMIT_S


def test_closing_during_the_time_estimate(qtbot, window, run, monkeypatch):
    import engine
    from engine.evaluation import Predictor
    from engine.runs import RunDir

    event = threading.Event()
    real = engine.estimate_epoch_seconds

    def long_estimate(*args, **kwargs):  # many passes instead of 4, as on a big model
        event.set()
        return real(*args, **{**kwargs, "repeats": 10**6})

    monkeypatch.setattr(engine, "estimate_epoch_seconds", long_estimate)
    page = window.layers_page
    # Recommended (the default) has no estimate before its run: estimate a fixed method.
    window.ctx.state.update("adapt", method="linear-probe")
    page.model = Predictor(RunDir(run), device="cpu").model
    page._estimate()
    assert close_and_time(qtbot, window, event) < LIMIT_S


def test_closing_during_an_evaluation(qtbot, window, run, monkeypatch):
    import engine.data
    from desktop.results.evaluation_jobs import evaluate_job

    # Training saved the run's evaluation; without it, Evaluate predicts the images again.
    shutil.rmtree(Path(run) / "evaluation", ignore_errors=True)
    event, wrap = started()
    monkeypatch.setattr(engine.data, "load_image", wrap(engine.data.load_image, 0.1))
    window.ctx.pool.submit(evaluate_job(run, "val"))
    assert close_and_time(qtbot, window, event) < LIMIT_S


def test_closing_during_explanations(qtbot, window, run, monkeypatch):
    import engine
    from desktop.results.evaluation_jobs import heatmaps_job
    from engine.runs import RunDir

    event, wrap = started()
    monkeypatch.setattr(engine, "image_heatmaps", wrap(engine.image_heatmaps, 0.2))
    images = sorted(str(p) for p in Path(RunDir(run).config().data.path).rglob("*.png"))
    window.ctx.pool.submit(heatmaps_job(run, images, 64))
    assert close_and_time(qtbot, window, event) < LIMIT_S


def test_closing_during_an_export_interrupts_it_and_writes_nothing(
    qtbot, window, run, tmp_path, monkeypatch
):
    import engine.export.traced as traced
    from desktop.results.export_dialog import ExportDialog

    event = threading.Event()

    def stuck(*_args, **_kwargs):  # one long library call that never checks a cancel token
        event.set()
        while True:
            sum(range(1000))

    monkeypatch.setattr(traced, "_torch_onnx_export", stuck)
    dialog = ExportDialog(run, window, pool=window.ctx.pool)
    qtbot.waitUntil(lambda: dialog.facts is not None, timeout=30000)
    out = tmp_path / "export"
    dialog.folder_edit.setText(str(out))
    dialog.set_formats(["onnx"])
    dialog.start_export()
    assert close_and_time(qtbot, window, event) < LIMIT_S
    assert not out.exists() and not list(tmp_path.glob(".export.refit-export-*"))
