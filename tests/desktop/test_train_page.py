"""Train page: settings bound to the config, real tiny runs, stop/resume, failures, NaN losses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from synthetic import make_shapes_folder

from desktop.runs.page import RunsPage
from desktop.train.page import TrainPage
from engine.config import (
    AdaptConfig,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.events import EpochEnded, RunStarted, StepEnded
from engine.runs import RunDir, Workspace
from engine.training.checkpoint_files import has_last_checkpoint

TINY = "timm:test_efficientnet"  # ~0.1M parameters, random init: fast and needs no weights
RUN_TIMEOUT_MS = 180_000


def tiny_config(path, *, epochs: int = 1) -> RunConfig:
    return RunConfig(
        data=DataConfig(path=str(path), num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        adapt=AdaptConfig(method=Method.FULL),
        schedule=ScheduleConfig(epochs=epochs, batch_size=4),
    )


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=10)


@pytest.fixture
def page(qtbot, ctx):
    widget = TrainPage(ctx)
    qtbot.addWidget(widget)
    return widget


def _wait_until_idle(qtbot, page: TrainPage) -> None:
    qtbot.waitUntil(lambda: not page.is_running, timeout=RUN_TIMEOUT_MS)


def test_actions_have_names_shortcut_and_states(page):
    start, pause, stop = page.actions()
    assert [a.objectName() for a in page.actions()] == ["actionStart", "actionPause", "actionStop"]
    assert start.shortcut().toString() == "Ctrl+Return"
    assert pause.isCheckable()
    assert start.isEnabled() and not pause.isEnabled() and not stop.isEnabled()
    assert not page.is_running


def test_settings_follow_the_config_both_ways(page, ctx, qtbot):
    epochs = page.basic_form.editors["schedule.epochs"]
    assert "Passes over the training set" in epochs.toolTip()
    assert epochs.maximum() == 10000
    epochs.setValue(7)
    assert ctx.state.config.schedule.epochs == 7
    with qtbot.waitSignal(ctx.state.changed) as blocker:
        ctx.state.update("optim", lr=3e-4)
    assert blocker.args[0].optim.lr == pytest.approx(3e-4)
    assert page.basic_form.editors["optim.lr"].value() == pytest.approx(3e-4)
    assert page.basic_form.editors["optim.lr"].text() == "0.0003"
    emitted = []
    ctx.state.changed.connect(emitted.append)
    ctx.state.update("schedule", epochs=12)
    assert epochs.value() == 12 and len(emitted) == 1  # no widget → state feedback


def test_start_without_folder_or_with_bad_config_says_why(page, ctx, tmp_path):
    page.start()
    assert not page.is_running
    assert "Data page" in page.message_label.text()
    bad = RunConfig(data=DataConfig(path=str(tmp_path), val_fraction=0.45, test_fraction=0.45))
    ctx.state.set_config(bad)
    page.start()
    assert not page.is_running
    assert "val_fraction" in page.message_label.text()
    assert page.start_action.isEnabled()


def test_nan_and_inf_losses_leave_gaps(page):
    def step(i, loss):
        return StepEnded(step=i, epoch=0, total_steps=10, loss=loss, lr=1e-3, samples_per_sec=8.0)

    started = RunStarted(
        run_dir="x", epochs=1, steps_per_epoch=10, start_epoch=0, device="CPU", precision="fp32",
        trainable_params=1, total_params=1, train_size=4, val_size=2, classes=("a", "b"),
        feature_cache=False,
    )  # fmt: skip
    losses = [0.9, math.nan, 0.7, math.inf, 0.5]
    page.monitor.feed([started, *[step(i + 1, v) for i, v in enumerate(losses)]])
    nan_metrics = {"val_loss": math.nan, "val_accuracy": 0.5, "train_loss": math.inf}
    page.monitor.feed([EpochEnded(epoch=0, epochs=1, metrics=nan_metrics, is_best=True)])
    plot = page.monitor.loss_plot
    plot.redraw()
    page.monitor.val_plot.redraw()
    _, y = plot.data("raw")
    assert len(y) == 5 and math.isnan(y[1]) and math.isnan(y[3]) and y[4] == 0.5
    assert len(plot.curve("raw").yData) == 5
    assert math.isnan(plot.data("smooth")[1][1]) and math.isfinite(plot.data("smooth")[1][4])
    page.grab()  # paints without raising


@pytest.mark.slow
def test_run_draws_curves_and_lands_in_run_list(page, ctx, shapes, qtbot):
    ctx.state.set_config(tiny_config(shapes, epochs=2))
    with qtbot.waitSignal(ctx.signals.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        page.start()
        assert page.is_running and not page.start_action.isEnabled()
        assert page.stop_action.isEnabled()
    _wait_until_idle(qtbot, page)
    run_dir = finished.args[0]
    assert len(page.monitor.loss_plot.curve("raw").yData) > 0
    assert len(page.monitor.val_plot.data("val_accuracy")[1]) == 2
    assert "Best val accuracy" in page.result_label.text()
    assert "Device: CPU" in page.monitor.device_label.text()
    assert page.start_action.isEnabled() and not page.stop_action.isEnabled()
    runs = RunsPage(ctx)
    qtbot.addWidget(runs)
    ids = [runs.run_list.topLevelItem(i).text(0) for i in range(runs.run_list.topLevelItemCount())]
    assert RunDir(Path(run_dir)).run_id in ids
    runs.refresh()  # selects the newest run
    qtbot.waitUntil(lambda: "raw" in runs.loss_plot.series, timeout=10000)


@pytest.mark.slow
def test_stop_leaves_resumable_run_and_resume_completes(page, ctx, shapes, qtbot):
    ctx.state.set_config(tiny_config(shapes, epochs=2))
    page.start()
    page.pause_action.trigger()  # paused before the first step: the stop lands mid-run
    assert page.pause_action.isChecked() and page.pause_action.text() == "Continue"
    with qtbot.waitSignal(ctx.signals.run_started, timeout=RUN_TIMEOUT_MS):
        pass
    page.stop()
    assert not page.stop_action.isEnabled()
    _wait_until_idle(qtbot, page)
    run = RunDir(Path(page.run_dir))
    assert run.state()["resumable"] is True
    assert has_last_checkpoint(run.checkpoints)
    assert "can be resumed" in page.result_label.text()
    assert page.resume_button.isVisibleTo(page) and not page.pause_action.isChecked()

    with qtbot.waitSignal(ctx.signals.run_finished, timeout=RUN_TIMEOUT_MS):
        page.resume_button.click()
    _wait_until_idle(qtbot, page)
    assert run.state()["status"] == "completed"
    assert run.summary()["epochs_done"] == 2
    assert "Best val accuracy" in page.result_label.text()
    assert len(page.monitor.loss_plot.data("raw")[0]) > 1  # history plus the resumed steps


@pytest.mark.slow
def test_failing_run_shows_the_sentence_and_start_works_again(page, ctx, tmp_path, qtbot):
    one_class = make_shapes_folder(tmp_path / "one", classes=("circle",), per_class=10)
    ctx.state.set_config(tiny_config(one_class))
    page.start()
    _wait_until_idle(qtbot, page)
    log = page.monitor.log_panel.toPlainText()
    assert "only one class" in log and "ERROR" in log
    assert log.count("only one class") == 1
    assert "Training failed" in page.result_label.text()
    assert page.start_action.isEnabled() and not page.pause_action.isEnabled()
    assert [r.status for r in Workspace(ctx.workspace).list_runs()] == ["failed"]


def test_a_backbone_that_does_not_fit_the_data_stops_start(page, ctx, shapes):
    ctx.state.set_config(tiny_config(shapes))
    sentence = "all-MiniLM-L6-v2 is made for texts, but the data holds images; choose one."
    ctx.signals.backbone_mismatch.emit(sentence)
    assert page.message_label.text() == sentence
    page.start()
    assert not page.is_running and page.message_label.text() == sentence
    ctx.signals.backbone_mismatch.emit("")
    assert not page.message_label.isVisibleTo(page)


def test_text_settings_show_for_text_data(page, ctx, tmp_path):
    from engine.config import field_help
    from engine.data.text import scan_text_source

    assert not page.text_section.isVisibleTo(page)
    data = tmp_path / "notes.csv"
    data.write_text("text,label\n" + "".join(f"note {i},{'ab'[i % 2]}\n" for i in range(8)))
    augment = page.basic_form.editors["augment.preset"]
    assert augment.isVisibleTo(page)
    ctx.signals.dataset_scanned.emit(scan_text_source(data))
    assert page.text_section.isVisibleTo(page)
    assert not augment.isVisibleTo(page)  # crops and flips mean nothing to a text model
    max_length = page.text_form.editors["data.max_length"]
    assert max_length.maximum() == field_help(DataConfig, "max_length")["max"]
    max_length.setValue(256)
    page.text_form.editors["data.length_bucketing"].setChecked(False)
    data_config = ctx.state.config.data
    assert (data_config.max_length, data_config.length_bucketing) == (256, False)


def test_the_monitor_counts_texts_for_a_text_run(page):
    def started(modality: str) -> RunStarted:
        return RunStarted(
            run_dir="/tmp/run", epochs=1, steps_per_epoch=2, start_epoch=0, device="cpu",
            precision="fp32", trainable_params=10, total_params=20, train_size=8, val_size=2,
            classes=("a", "b"), feature_cache=False, modality=modality,
        )  # fmt: skip

    step = StepEnded(step=1, epoch=0, total_steps=2, loss=1.0, lr=0.1, samples_per_sec=42.0)
    page.monitor.feed([started("text"), step])
    assert page.monitor.speed_label.text() == "42 texts/s"
    assert "on 8 texts (2 classes)" in page.monitor.log_panel.toPlainText()
    page.monitor.feed([started("image"), step])
    assert page.monitor.speed_label.text().endswith("images/s")


def test_loop_settings_are_greyed_out_for_a_linear_probe(qtbot, ctx):
    from desktop.train.page import TrainPage

    page = TrainPage(ctx)
    qtbot.addWidget(page)
    epochs = page.basic_form.editors["schedule.epochs"]
    batch = page.basic_form.editors["schedule.batch_size"]
    ctx.state.update("adapt", method="linear-probe")
    assert not epochs.isEnabled() and batch.isEnabled()
    assert "Not used by a linear probe" in epochs.toolTip()
    ctx.state.update("adapt", method="full")
    assert epochs.isEnabled() and "Not used" not in epochs.toolTip()


def test_an_epoch_without_steps_still_advances_the_epoch_count(page):
    """The linear probe's last epoch (the final fit) has no steps: the label reaches N/N."""
    started = RunStarted(
        run_dir="x", epochs=2, steps_per_epoch=1, start_epoch=0, device="CPU", precision="fp32",
        trainable_params=1, total_params=1, train_size=4, val_size=2, classes=("a", "b"),
        feature_cache=True,
    )  # fmt: skip
    step = StepEnded(step=1, epoch=0, total_steps=1, loss=0.5, lr=0.0, samples_per_sec=8.0)
    metrics = {"val_loss": 0.5, "val_accuracy": 0.5, "train_loss": 0.4}
    page.monitor.feed([started, step, EpochEnded(epoch=0, epochs=2, metrics=metrics)])
    page.monitor.feed([EpochEnded(epoch=1, epochs=2, metrics=metrics, is_best=True)])
    assert page.monitor.epoch_label.text() == "Epoch 2/2"


def test_a_linear_probe_says_it_has_no_learning_rate_instead_of_drawing_zeros(page):
    def started(probe: bool) -> RunStarted:
        return RunStarted(
            run_dir="x", epochs=1, steps_per_epoch=2, start_epoch=0, device="CPU",
            precision="fp32", trainable_params=1, total_params=1, train_size=4, val_size=2,
            classes=("a", "b"), feature_cache=probe,
        )  # fmt: skip

    def step(i: int, lr: float) -> StepEnded:
        return StepEnded(step=i, epoch=0, total_steps=2, loss=0.5, lr=lr, samples_per_sec=8.0)

    monitor = page.monitor
    monitor.feed([started(True), step(1, 0.0), step(2, 0.0)])
    title = monitor.lr_plot.getPlotItem().titleLabel
    assert len(monitor.lr_plot.data("lr")[0]) == 0
    assert title.isVisible() and "L-BFGS" in title.text
    monitor.reset()  # the next run fine-tunes: its learning rate is drawn, the note goes
    monitor.feed([started(False), step(1, 1e-3), step(2, 5e-4)])
    assert list(monitor.lr_plot.data("lr")[1]) == [1e-3, 5e-4]
    assert not title.isVisible()


def test_the_runtime_of_frozen_layers_is_an_advanced_setting(page, ctx):
    from engine.config import Runtime

    runtime = page.advanced_form.editors["device.runtime"]
    assert "onnxruntime" in runtime.toolTip()
    assert [runtime.itemData(i) for i in range(runtime.count())] == list(Runtime)
    runtime.setCurrentIndex(runtime.findData(Runtime.TORCH))
    assert ctx.state.config.device.runtime == Runtime.TORCH
    ctx.state.update("device", runtime=Runtime.ONNXRUNTIME)
    assert runtime.currentData() == Runtime.ONNXRUNTIME
