"""The app opens a workspace with damaged runs: the damaged ones are marked, the others work.

Also: an interrupted run (its training process is gone) is offered for Resume, a run another
live process trains is refused with a sentence, and an unusable workspace is named at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from qt_threads import _no_thread_left_running  # noqa: F401 (an autouse fixture)
from synthetic import tree_snapshot
from trained_runs import train_image_run

from desktop.runs.page import PATH_ROLE
from engine.runs import RunDir, Workspace

pytestmark = pytest.mark.slow  # one real run (a few seconds), then the window
REPO = Path(__file__).resolve().parents[2]

# (copy name, file, bytes written over it); "~" names a run the list must mark damaged
DAMAGE = {
    "~config": ("config.json", b'{"name": "\xff\xfe broken'),
    "~state": ("state.json", b'{"status": "compl'),
    "~summary": ("summary.json", bytes(range(256)) * 3),
    "~splits": ("splits.json", b"[1, 2, 3]"),
    "metrics": ("metrics.jsonl", b'\xff\xfe garbage\n[1, 2]\n{"torn": '),
    "evaluation": ("evaluation/val.json", b"\x00\x01\x02"),
}


@pytest.fixture(scope="module")
def damaged_workspace(tmp_path_factory):
    """The good run, one copy per damage, and a copy whose training process died."""
    from engine.evaluation import evaluate_run

    root = tmp_path_factory.mktemp("app")
    good = RunDir(train_image_run(root))
    evaluate_run(good, "val")
    runs = {"good": good}
    for name, (file, data) in DAMAGE.items():
        run = RunDir(good.path.parent / f"{good.run_id}-{name.strip('~')}")
        shutil.copytree(good.path, run.path)
        (run.path / file).write_bytes(data)
        runs[name] = run
    dead = RunDir(good.path.parent / f"{good.run_id}-killed")
    shutil.copytree(good.path, dead.path)
    dead.update_state(status="running", resumable=False)  # as a `kill -9` leaves it
    runs["killed"] = dead
    return good.path.parent.parent, runs


@pytest.fixture
def window(qtbot, tmp_path, damaged_workspace):
    from desktop.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(workspace=damaged_workspace[0], settings=settings)
    win.show()
    yield win
    # Not qtbot.addWidget: closing with a run training would ask a question no one answers.
    if win.train_page.is_running:
        win.train_page.stop()
    qtbot.waitUntil(lambda: not win.ctx.pool.busy, timeout=60000)
    win.ctx.pool.stop_all()
    win.close()
    win.deleteLater()


def _rows(page):
    items = [page.run_list.topLevelItem(i) for i in range(page.run_list.topLevelItemCount())]
    return {Path(item.data(0, PATH_ROLE)).name: item for item in items}


def test_refit_studio_starts_with_the_damaged_workspace(damaged_workspace, tmp_path):
    """The real entry point, in its own process: no traceback, exit code 0."""
    script = (
        "import gc, sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication(sys.argv[:1])\n"
        "QTimer.singleShot(1000, lambda: print('automatic gc:', gc.isenabled(), flush=True))\n"
        "QTimer.singleShot(1500, app.quit)\n"
        "from desktop.app import main\n"
        f"sys.exit(main(['--workspace', {str(damaged_workspace[0])!r}]))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),  # the app's settings go here, not into the real home
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "automatic gc: False" in done.stdout  # cycles are freed in the GUI thread (gc_guard)


def test_runs_page_marks_damaged_runs_and_shows_the_others(window, damaged_workspace, qtbot):
    _, runs = damaged_workspace
    before = tree_snapshot(runs["good"].path)
    page = window.runs_page
    rows = _rows(page)
    assert set(rows) == {run.run_id for run in runs.values()}
    for name, run in runs.items():
        row = rows[run.run_id]
        if name.startswith("~"):
            assert row.text(1) == "damaged", name
            assert DAMAGE[name][0] in row.toolTip(1)
            assert not row.icon(1).isNull()
        elif name in ("metrics", "evaluation"):
            assert row.text(1) == "completed" and Path(DAMAGE[name][0]).name in row.toolTip(1)
        elif name == "killed":
            assert row.text(1) == "interrupted"
        else:
            assert row.text(1) == "completed" and row.toolTip(1) == ""
    assert not page.notice.isHidden() and "6 runs have damaged files" in page.notice.text()

    page.run_list.clearSelection()
    rows[runs["~config"].run_id].setSelected(True)
    qtbot.waitUntil(lambda: "Problem:" in page.config_view.toPlainText(), timeout=10000)
    assert "config.json is not UTF-8 text" in page.config_view.toPlainText()
    assert not page.resume_button.isEnabled()

    page.run_list.clearSelection()
    rows[runs["good"].run_id].setSelected(True)
    qtbot.waitUntil(lambda: "raw" in page.loss_plot.series, timeout=10000)
    assert len(page.loss_plot.data("raw")[1]) > 0
    assert "Problem:" not in page.config_view.toPlainText()
    assert tree_snapshot(runs["good"].path) == before


def test_an_interrupted_run_is_offered_for_resume(window, damaged_workspace, qtbot):
    _, runs = damaged_workspace
    page = window.runs_page
    rows = _rows(page)
    page.run_list.clearSelection()
    rows[runs["killed"].run_id].setSelected(True)
    qtbot.waitUntil(lambda: "process training it is gone" in page.config_view.toPlainText())
    qtbot.waitUntil(page.resume_button.isEnabled, timeout=10000)


def test_results_picker_marks_damaged_runs_and_loads_the_good_one(window, damaged_workspace, qtbot):
    _, runs = damaged_workspace
    results = window.results_page
    window.show_page(results.title)
    combo = results.run_combo
    qtbot.waitUntil(lambda: combo.count() > 0, timeout=10000)
    labels = {Path(combo.itemData(i)).name: combo.itemText(i) for i in range(combo.count())}
    for name in ("~config", "~state", "~summary", "~splits"):
        assert labels[runs[name].run_id].startswith("⚠"), labels
    assert not labels[runs["good"].run_id].startswith("⚠")
    assert not combo.currentText().startswith("⚠")  # the newest run that can be shown

    combo.setCurrentIndex(combo.findData(str(runs["~state"].path)))
    qtbot.waitUntil(lambda: "state.json" in results.info.text(), timeout=20000)
    assert "restore it from a backup" in results.info.text()

    combo.setCurrentIndex(combo.findData(str(runs["good"].path)))
    qtbot.waitUntil(lambda: results.results is not None, timeout=30000)
    assert results.results.facts.run_id == runs["good"].run_id
    assert "val" in results.results.splits


def test_resume_of_a_run_another_process_trains_is_refused(window, damaged_workspace, qtbot):
    _, runs = damaged_workspace
    run = runs["killed"]
    before = tree_snapshot(run.path)
    train = window.train_page
    with run.lock():  # this test process stands in for another trainer
        train.resume_run(str(run.path))
        qtbot.waitUntil(lambda: "already being trained" in train.result_label.text(), timeout=30000)
        qtbot.waitUntil(lambda: not window.ctx.pool.busy, timeout=30000)
    assert tree_snapshot(run.path) == before


def test_a_workspace_that_is_a_file_is_named_at_once(qtbot, tmp_path, monkeypatch):
    from desktop.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    afile = tmp_path / "workspace"
    afile.write_text("a file")
    win = MainWindow(workspace=afile, settings=settings)
    qtbot.addWidget(win)
    notice = win.runs_page.notice
    assert not notice.isHidden() and f"The workspace {afile} is a file" in notice.text()

    writable = tmp_path / "ws"
    Workspace(writable).runs_root.mkdir(parents=True)
    real_access = os.access  # root ignores mode bits: the OS's refusal is injected
    monkeypatch.setattr(os, "access", lambda p, m: False if m & os.W_OK else real_access(p, m))
    second = MainWindow(workspace=writable, settings=settings)
    qtbot.addWidget(second)
    assert "is read-only; make it writable" in second.runs_page.notice.text()
