"""Layers page with Recommended: the preset, the advice charts, Analyse my data, the LR finder,
and the Train page greying what Recommended chooses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QRadioButton

from engine.config import DataConfig, Method, ModelConfig, RunConfig

TINY = ModelConfig(backbone="timm:test_efficientnet", pretrained=False)

ADVICE = {
    "reason": "Your images are far from the backbone's pre-training data: the last 2 groups "
    "are fine-tuned.",
    "method": "last-n",
    "last_n": 2,
    "lr": 0.003,
    "epochs": 8,
    "depths": [
        {"group": "stem", "index": 0, "dim": 8, "cv_accuracy": 0.55},
        {"group": "blocks.0", "index": 1, "dim": 16, "cv_accuracy": 0.6},
        {"group": "blocks.1", "index": 2, "dim": 32, "cv_accuracy": 0.7},
    ],
    "probe_cv_accuracy": 0.7,
    "probe_holdout_accuracy": 0.68,
    "trials": [
        {"group": "blocks.0", "trained_groups": 2, "lr": 0.003, "accuracy": 0.85, "loss": 0.4},
        {"group": "stem", "trained_groups": 3, "lr": 0.002, "accuracy": 0.8, "loss": 0.5},
    ],
    "lr_curve": {
        "lrs": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "losses": [0.7, 0.65, 0.5, 0.6, float("nan")],
        "raw_losses": [],
        "suggestion": 0.003,
        "reason": "",
    },
    "cut": "blocks.0",
    "seconds": 12.0,
}


@pytest.fixture
def layers(qtbot, ctx, tmp_path):
    from desktop.layers.page import LayersPage

    data = tmp_path / "data"
    data.mkdir()
    ctx.state.set_config(RunConfig(model=TINY, data=DataConfig(path=str(data))))
    page = LayersPage(ctx)
    qtbot.addWidget(page)
    page.show()
    page.on_shown()
    qtbot.waitUntil(lambda: page.model is not None, timeout=30000)
    return page


def _preset(page, method: str) -> QRadioButton:
    return page.findChild(QRadioButton, f"preset_{method}")


def test_recommended_is_first_and_checked_out_of_the_box(layers, ctx, qtbot):
    assert ctx.state.config.adapt.method is Method.AUTO
    first = layers.preset_buttons.button(0)
    assert first.text() == "Recommended" and first.isChecked()
    assert "validation split plays no part" in first.toolTip()
    assert not layers.n_slider.isVisible()
    item = layers.tree.topLevelItem(0)
    assert not item.flags() & Qt.ItemFlag.ItemIsUserCheckable  # nothing to tick
    assert item.text(2) == "chosen from your data"
    assert "Recommended" in layers.trainable_label.text()


def test_one_click_to_another_preset_and_back(layers, ctx):
    _preset(layers, "last-n").click()
    assert ctx.state.config.adapt.method is Method.LAST_N
    assert layers.n_slider.isVisible()
    assert layers.tree.topLevelItem(0).checkState(0) == Qt.CheckState.Checked
    _preset(layers, "auto").click()
    assert ctx.state.config.adapt.method is Method.AUTO
    assert layers.preset_buttons.button(0).isChecked() and not layers.n_slider.isVisible()


def test_the_panel_fills_from_an_advice_given_dict(layers, ctx):
    panel = layers.advice.panel
    assert panel.is_empty and "Analyse my data" in panel.empty_label.text()
    assert panel.depth_plot.isHidden() and panel.lr_plot.isHidden()  # no empty axes
    ctx.signals.advice_given.emit(ADVICE)
    assert not panel.is_empty and not panel.depth_plot.isHidden()
    xs, ys = panel.depth_curve.getData()
    assert list(xs) == [0, 1, 2] and list(ys) == pytest.approx([55, 60, 70])
    tx, ty = panel.trial_points.getData()
    assert list(tx) == [1.5, 0.5] and list(ty) == pytest.approx([85, 80])  # at their cut
    px, py = panel.probe_point.getData()
    assert list(px) == [2.5] and list(py) == pytest.approx([68])  # the head-only probe
    assert panel.cut_line.isVisible() and panel.cut_line.value() == 1.5  # after blocks.0
    assert panel.cut_line.label.format == "train from here"
    assert panel.chance_line.value() == pytest.approx(50.0)
    lrs, losses = panel.lr_data()
    assert list(lrs) == ADVICE["lr_curve"]["lrs"] and math.isnan(losses[-1])
    assert panel.suggestion_line.value() == pytest.approx(math.log10(0.003))
    assert "3.0e-03" in panel.suggestion_line.label.format
    assert "far from the backbone" in panel.reason_label.text()
    assert "fine-tune the last 2 groups" in panel.reason_label.text()
    # Recommended sets its own rate: no "Use" button while it is the method.
    assert not layers.advice.use_lr_button.isVisible()


def test_a_linear_probe_advice_marks_the_head_and_says_no_range_test(layers, ctx):
    probe = dict(ADVICE, method="linear-probe", cut=None, lr_curve=None, trials=[])
    layers.advice.show_advice(probe)
    panel = layers.advice.panel
    assert panel.cut_line.value() == 2.5 and "head" in panel.cut_line.label.format
    assert panel.lr_data()[0].size == 0 and "not run" in panel.lr_title()


def test_analyse_my_data_runs_advise_as_a_job(layers, ctx, qtbot, monkeypatch):
    import engine
    from engine.events import StageProgressed

    seen = {}

    class FakeAdvice:
        def to_dict(self) -> dict:
            return ADVICE

    def fake_advise(config, *, workspace, on_event, task):
        seen["method"] = config.adapt.method
        on_event(StageProgressed(stage="advice", done=1, total=2))
        return FakeAdvice()

    monkeypatch.setattr(engine, "advise", fake_advise)
    button = layers.advice.analyse_button
    assert button.isEnabled()
    button.click()
    assert layers.advice.is_running and not button.isEnabled()
    qtbot.waitUntil(lambda: not layers.advice.is_running, timeout=20000)
    xs, _ = layers.advice.panel.depth_curve.getData()
    assert list(xs) == [0, 1, 2] and seen["method"] is Method.AUTO
    assert "Analysed" in layers.advice.status_label.text() and button.isEnabled()


def test_analyse_is_off_without_data(layers, ctx):
    ctx.state.update("data", path="")
    assert not layers.advice.analyse_button.isEnabled()
    assert "Data page" in layers.advice.analyse_button.toolTip()


def test_find_learning_rate_streams_points_and_use_sets_the_rate(layers, ctx, qtbot, monkeypatch):
    import engine
    import engine.advice.lr_find_config as finder

    def fake_find(config, *, workspace, on_event, task, on_point):
        lrs = [1e-5, 1e-4, 1e-3, 1e-2]
        for lr, loss in zip(lrs, [0.7, 0.6, 0.4, 0.9], strict=True):
            on_point(lr, loss)
        return finder.LrCurve(lrs=tuple(lrs), losses=(0.7, 0.6, 0.4, 0.9), suggestion=3e-4)

    monkeypatch.setattr(engine, "find_learning_rate", fake_find)
    button = layers.advice.find_lr_button
    assert not button.isEnabled() and "Recommended" in button.toolTip()  # auto finds its own
    _preset(layers, "linear-probe").click()
    assert not button.isEnabled() and "no learning rate" in button.toolTip()
    _preset(layers, "full").click()
    assert button.isEnabled()
    points = []
    panel = layers.advice.panel
    original = panel.add_lr_point
    monkeypatch.setattr(
        panel, "add_lr_point", lambda lr, loss: (points.append(lr), original(lr, loss))
    )
    button.click()
    qtbot.waitUntil(lambda: not layers.advice.is_running, timeout=20000)
    assert points == [1e-5, 1e-4, 1e-3, 1e-2]  # streamed one by one
    assert np.allclose(panel.lr_data()[1], [0.7, 0.6, 0.4, 0.9])
    use = layers.advice.use_lr_button
    assert use.isVisible() and use.text() == "Use 3.0e-04"
    use.click()
    assert ctx.state.config.optim.lr == pytest.approx(3e-4)
    assert not use.isEnabled()  # already in use


def test_train_page_greys_what_recommended_chooses(qtbot, ctx):
    from desktop.train.page import TrainPage

    page = TrainPage(ctx)
    qtbot.addWidget(page)
    basic, advanced = page.basic_form.editors, page.advanced_form.editors
    chosen = [
        basic["optim.lr"],
        basic["schedule.epochs"],
        basic["schedule.schedule"],
        basic["schedule.batch_size"],
        advanced["optim.backbone_lr_scale"],
    ]
    budget = basic["schedule.time_budget_min"]
    assert ctx.state.config.adapt.method is Method.AUTO
    assert not any(e.isEnabled() for e in chosen) and budget.isEnabled()
    assert "Chosen by Recommended" in basic["optim.lr"].toolTip()
    assert not page.recipe_note.isHidden() and "Layers page" in page.recipe_note.text()
    ctx.state.update("adapt", method=Method.LAST_N)
    assert all(e.isEnabled() for e in chosen) and budget.isEnabled()
    assert page.recipe_note.isHidden() and "Recommended" not in basic["optim.lr"].toolTip()
    budget.setValue(5.0)
    assert ctx.state.config.schedule.time_budget_min == 5.0


def test_cancel_stops_the_analysis_and_says_so(layers, qtbot, monkeypatch):
    import engine
    from engine.task import Cancelled

    def slow_advise(config, *, workspace, on_event, task):
        task.cancel_event.wait(20)
        raise Cancelled()

    monkeypatch.setattr(engine, "advise", slow_advise)
    section = layers.advice
    section.analyse_button.click()
    assert section.cancel_button.isVisible()
    section.cancel_button.click()
    qtbot.waitUntil(lambda: not section.is_running, timeout=20000)
    assert section.status_label.text() == "Cancelled." and section.panel.is_empty
    assert not section.cancel_button.isVisible() and section.analyse_button.isEnabled()


def test_a_recommended_run_on_the_train_page_fills_the_layers_chart(layers, ctx, qtbot):
    from desktop.train.page import TrainPage
    from engine.events import AdviceGiven

    train = TrainPage(ctx)
    qtbot.addWidget(train)
    train._on_worker_events([AdviceGiven(advice=ADVICE)])  # as the run's worker delivers it
    xs, _ = layers.advice.panel.depth_curve.getData()
    assert list(xs) == [0, 1, 2]
    assert "when the run started" in layers.advice.status_label.text()
