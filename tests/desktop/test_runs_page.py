"""Runs page: the run list, one run's curves and config, two runs overlaid, Resume hand-over."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PySide6.QtGui import QDesktopServices

from desktop.runs.page import RunsPage
from engine.config import ModelConfig, OptimConfig, RunConfig
from engine.files import write_json_atomic
from engine.runs import RunDir, Workspace


def fake_run(
    workspace, name: str, *, lr: float, epochs: int = 3, status: str = "completed"
) -> RunDir:
    """A run folder as the engine leaves it, written through the engine's own run store."""
    config = RunConfig(name=name, model=ModelConfig(backbone="resnet18"), optim=OptimConfig(lr=lr))
    run = Workspace(workspace).create_run(config)
    records = []
    for epoch in range(epochs):
        for i in range(5):
            step = epoch * 5 + i + 1
            loss = math.nan if step == 7 else 1.0 / step
            records.append({"type": "step", "step": step, "epoch": epoch, "loss": loss, "lr": lr})
        acc = 0.5 + 0.1 * epoch
        records.append(
            {"type": "epoch", "epoch": epoch, "step": (epoch + 1) * 5, "is_best": True,
             "val_loss": 1.0 - 0.2 * epoch, "val_accuracy": acc, "train_loss": 0.9 - 0.2 * epoch}
        )  # fmt: skip
    run.append_metrics(*records)
    resumable = status == "cancelled"
    run.update_state(status=status, resumable=resumable, epochs_done=epochs, device="CPU")
    best = {"epoch": float(epochs - 1), "val_accuracy": acc, "val_loss": 0.6}
    write_json_atomic(run.summary_path, {"status": status, "best": best})
    if resumable:
        (run.checkpoints).mkdir()
        (run.checkpoints / "last_state.pt").write_bytes(b"")
    return run


@pytest.fixture
def two_runs(ctx):
    first = fake_run(ctx.workspace, "baseline", lr=1e-3)
    second = fake_run(ctx.workspace, "lower-lr", lr=1e-4, epochs=2, status="cancelled")
    return first, second


@pytest.fixture
def page(qtbot, ctx, two_runs):
    widget = RunsPage(ctx)
    qtbot.addWidget(widget)
    return widget


def _items(page):
    return [page.run_list.topLevelItem(i) for i in range(page.run_list.topLevelItemCount())]


def _select(page, *names):
    page.run_list.clearSelection()
    for item in _items(page):
        if item.text(0) in names:
            item.setSelected(True)


def test_lists_runs_with_status_and_best_accuracy(page):
    rows = {item.text(0): item for item in _items(page)}
    assert set(rows) == {"baseline", "lower-lr"}
    assert rows["baseline"].text(1) == "completed"
    assert rows["baseline"].text(2) == "resnet18"
    assert rows["baseline"].text(5) == "70.0%"
    assert rows["lower-lr"].text(1) == "cancelled"


def test_one_run_shows_curves_config_and_resume(page, ctx, qtbot):
    _select(page, "lower-lr")
    qtbot.waitUntil(lambda: "raw" in page.loss_plot.series, timeout=10000)
    _, losses = page.loss_plot.data("raw")
    assert len(losses) == 10 and math.isnan(losses[6])
    assert list(page.val_plot.data("val_accuracy")[1]) == pytest.approx([50.0, 60.0])
    text = page.config_view.toPlainText()
    assert '"lr": 0.0001' in text and "Resume continues it" in text
    assert page.resume_button.isEnabled()
    with qtbot.waitSignal(ctx.signals.resume_requested) as requested:
        page.resume_button.click()
    assert RunDir(Path(requested.args[0])).run_id.endswith("lower-lr")
    _select(page, "baseline")
    qtbot.waitUntil(lambda: 'lr": 0.001' in page.config_view.toPlainText(), timeout=10000)
    assert not page.resume_button.isEnabled()


def test_two_runs_overlay_in_two_colours(page, two_runs, qtbot):
    first, second = two_runs
    _select(page, "baseline", "lower-lr")
    keys = {f"{first.run_id}:loss", f"{second.run_id}:loss"}
    qtbot.waitUntil(lambda: keys <= set(page.loss_plot.series), timeout=10000)
    curves = [page.loss_plot.curve(k) for k in sorted(keys)]
    assert all(len(c.yData) > 0 for c in curves)
    assert curves[0].opts["pen"].color() != curves[1].opts["pen"].color()
    assert len(page.loss_plot.legend.items) == 2
    differences = page.config_view.toPlainText().split("\n\n")[0]
    assert differences.startswith("Settings that differ:")
    assert "optim.lr: 0.0001  vs  0.001" in differences and "name" not in differences
    assert not page.resume_button.isEnabled() and not page.open_button.isEnabled()


def test_refresh_keeps_selection_and_open_folder(page, ctx, qtbot, monkeypatch):
    _select(page, "baseline")
    fake_run(ctx.workspace, "third", lr=1e-2)
    page.refresh_button.click()
    assert len(_items(page)) == 3
    assert [i.text(0) for i in _items(page) if i.isSelected()] == ["baseline"]
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    page.open_button.click()
    assert opened and opened[0].toLocalFile().endswith("baseline")
    qtbot.waitUntil(lambda: "baseline" in page.config_view.toPlainText(), timeout=10000)


def test_a_run_without_metrics_or_json_still_lists(ctx, qtbot):
    run = Workspace(ctx.workspace).create_run(RunConfig(name="empty"))
    page = RunsPage(ctx)
    qtbot.addWidget(page)
    page.refresh()  # selects the newest run
    qtbot.waitUntil(lambda: "empty" in page.config_view.toPlainText(), timeout=10000)
    assert json.loads(run.config_path.read_text())["name"] == "empty"
    assert page.loss_plot.data("raw")[0].size == 0
