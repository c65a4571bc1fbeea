"""The whole window: open a folder, drop one, Ctrl+Return trains, closing mid-run is clean."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox
from synthetic import make_shapes_folder

from engine.config import DataConfig, ModelConfig, RunConfig, ScheduleConfig
from engine.runs import RunDir, Workspace
from engine.training.checkpoint_files import has_last_checkpoint
from engine.training.logistic import C_GRID


@pytest.fixture
def window(qtbot, tmp_path, settings):
    from desktop.main_window import MainWindow

    win = MainWindow(workspace=tmp_path / "ws", settings=settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.ctx.pool.stop_all()


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=10)


def tiny_run_config(path) -> RunConfig:
    return RunConfig(
        data=DataConfig(path=str(path), num_workers=0, val_fraction=0.25),
        model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
        schedule=ScheduleConfig(epochs=2, batch_size=8),
    )


def wait_idle(qtbot, win, timeout=60000):
    qtbot.waitUntil(lambda: not win.ctx.pool.busy, timeout=timeout)


def test_opening_a_folder_scans_it_and_remembers_it(window, shapes, qtbot, settings):
    window.open_folder(str(shapes))
    wait_idle(qtbot, window)
    assert window.stack.currentWidget() is window.data_page
    assert window.data_page.class_table.rowCount() == 2
    assert window.ctx.state.config.data.path == str(shapes.resolve())
    assert settings.value("recent_folders")[0] == str(shapes.resolve())
    assert [a.text() for a in window.recent_menu.actions()] == [str(shapes.resolve())]


def test_dropping_a_folder_on_the_window_opens_it(window, shapes, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(shapes))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    wait_idle(qtbot, window)
    assert window.ctx.state.config.data.path == str(shapes.resolve())


def test_sample_dataset_opens_in_one_click(window, qtbot):
    window.findChild(type(window.menuBar().actions()[0]), "actionOpenSample").trigger()
    wait_idle(qtbot, window)
    path = window.ctx.state.config.data.path
    assert path.startswith(str(window.ctx.workspace))
    assert window.data_page.class_table.rowCount() == 10


@pytest.mark.slow  # a whole run in the window
def test_ctrl_return_trains_and_the_run_shows_in_the_run_list(window, shapes, qtbot):
    window.ctx.state.set_config(tiny_run_config(shapes))
    window.show_page("Data")
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.train_page.is_running, timeout=5000)
    assert window.stack.currentWidget() is window.train_page, "the run is shown where it trains"
    qtbot.waitUntil(lambda: not window.train_page.is_running, timeout=120000)
    wait_idle(qtbot, window)
    (run,) = Workspace(window.ctx.workspace).list_runs()
    assert run.status == "completed"
    epochs = [r for r in RunDir(run.path).metrics() if r["type"] == "epoch"]
    # The default method is the linear probe: one epoch per L2 strength tried, then the fit.
    assert len(epochs) == len(C_GRID) + 1 and epochs[-1]["is_best"]
    window.show_page("Runs")
    qtbot.waitUntil(lambda: window.runs_page.run_list.topLevelItemCount() == 1, timeout=10000)


@pytest.mark.slow  # a run in the window, closed
def test_closing_mid_run_asks_then_stops_cleanly_and_leaves_a_resumable_run(
    window, shapes, qtbot, monkeypatch
):
    cfg = tiny_run_config(shapes)
    window.ctx.state.set_config(cfg.replace(schedule=ScheduleConfig(epochs=50, batch_size=4)))
    window.train_page.start()
    qtbot.waitUntil(
        lambda: bool(list((window.ctx.workspace / "runs").glob("*/metrics.jsonl"))), timeout=60000
    )
    asked = []

    def answer(*args, **kwargs):
        asked.append(args)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    assert window.close()
    assert asked, "closing during training must ask first"
    from desktop.worker import running_threads

    assert running_threads() == []
    (run,) = Workspace(window.ctx.workspace).list_runs()
    state = json.loads((run.path / "state.json").read_text())
    assert state["status"] == "cancelled" and state["resumable"] is True
    assert has_last_checkpoint(run.path / "checkpoints")


def test_closing_mid_run_can_be_refused(window, shapes, qtbot, monkeypatch):
    cfg = tiny_run_config(shapes)
    window.ctx.state.set_config(cfg.replace(schedule=ScheduleConfig(epochs=50, batch_size=4)))
    window.train_page.start()
    qtbot.waitUntil(lambda: window.train_page.is_running, timeout=5000)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    assert not window.close()
    assert window.train_page.is_running
    window.train_page.stop()
    qtbot.waitUntil(lambda: not window.train_page.is_running, timeout=60000)
    wait_idle(qtbot, window)


def test_window_geometry_persists(qtbot, tmp_path, settings):
    from desktop.main_window import MainWindow

    first = MainWindow(workspace=tmp_path / "ws", settings=settings)
    qtbot.addWidget(first)
    first.show()
    first.resize(700, 520)
    first.move(QPoint(40, 30))
    first.close()
    second = MainWindow(workspace=tmp_path / "ws", settings=settings)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (first.width(), first.height()) == (700, 520)


def test_dropping_a_csv_file_opens_it_as_texts(window, qtbot, tmp_path):
    data = tmp_path / "notes.csv"
    data.write_text("message,category\n" + "".join(f"note {i},{'ab'[i % 2]}\n" for i in range(8)))
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.pdf")), QUrl.fromLocalFile(str(data))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    wait_idle(qtbot, window)
    page = window.data_page
    assert window.ctx.state.config.data.path == str(data.resolve())
    assert page.modality == "text" and page.class_table.rowCount() == 2
    assert window.findChild(type(window.menuBar().actions()[0]), "actionOpenTableFile")
