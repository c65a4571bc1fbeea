"""Training in a torchrun child, from the Train page: a fake engine process prints the JSON event
lines the real one does, so the page's plots, pause/stop (control.json) and crash handling are
tested without GPUs or torch.distributed."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from desktop.train import device_picker, distributed_runner
from desktop.train.device_picker import Devices, ProcessPicker
from desktop.train.distributed_runner import (
    ProcessPlan,
    crash_sentence,
    event_from_json,
    run_engine_process,
)
from desktop.train.page import TrainPage
from engine import EpochEnded, RunStarted, RunStatus, StepEnded, Task
from engine.config import DataConfig, RunConfig

FAKE_JOB = textwrap.dedent(
    """
    import json, os, sys, time
    args = sys.argv[1:]
    ws = args[args.index("--workspace") + 1]
    run = os.path.join(ws, "runs", "fake-run")
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "argv.json"), "w") as f:
        device = json.load(open(args[1]))["device"]["device"] if args[0] == "train" else ""
        cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        json.dump({"argv": args, "cuda": cuda, "device": device}, f)
    mode = os.environ.get("FAKE_MODE", "")

    def say(name, **fields):
        print(json.dumps({"event": name, **fields}), flush=True)

    def control():
        try:
            with open(os.path.join(run, "control.json")) as f:
                return json.load(f)["state"]
        except (OSError, ValueError, KeyError):
            return "run"

    print("a stray line that is not an event", flush=True)
    say("RunStarted", run_dir=run, epochs=2, steps_per_epoch=3, start_epoch=0,
        device="cuda:0 (x2)", precision="fp32", trainable_params=10, total_params=20,
        train_size=12, val_size=4, classes=["a", "b"], feature_cache=False)
    say("StepEnded", step=1, epoch=0, total_steps=6, loss=0.9, lr=0.01, samples_per_sec=50.0)
    if mode == "crash":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: rank 1 lost its GPU", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "ignore-stop":
        time.sleep(60)
    if mode == "wait":  # echo what control.json says until it says stop
        seen, deadline = "run", time.time() + 60
        while time.time() < deadline:
            state = control()
            if state != seen:
                seen = state
                say("LogMessage", level="info", text="control: " + state)
            if state == "stop":
                say("RunEnded", status="cancelled", run_dir=run)
                sys.exit(0)
            time.sleep(0.02)
        sys.exit(5)
    step = 1
    for epoch in range(2):
        for _ in range(3 if epoch else 2):
            step += 1
            say("StepEnded", step=step, epoch=epoch, total_steps=6, loss=1.0 / step, lr=0.01,
                samples_per_sec=50.0)
        say("EpochEnded", epoch=epoch, epochs=2, is_best=True, seconds=0.1,
            metrics={"val_loss": 0.5, "train_loss": 0.6, "val_accuracy": 0.75 + epoch / 10})
    say("RunEnded", status="completed", run_dir=run,
        best_metrics={"val_accuracy": 0.85, "epoch": 1})
    """
)
TIMEOUT_MS = 30_000
REAL_MS = 300_000
TWO_GPUS = Devices(gpus=("Fake GPU A", "Fake GPU B"))


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE_JOB)
    monkeypatch.setattr(distributed_runner, "engine_command", lambda: [sys.executable, str(script)])
    monkeypatch.setattr(device_picker, "list_devices", lambda: TWO_GPUS)
    monkeypatch.delenv("FAKE_MODE", raising=False)
    return script


@pytest.fixture
def page(qtbot, ctx, tmp_path, fake_engine):
    widget = TrainPage(ctx)
    qtbot.addWidget(widget, before_close_func=lambda w: _wait_idle(qtbot, w))
    widget.on_shown()  # probes the devices (the fake two GPUs) in a worker
    qtbot.waitUntil(lambda: widget.process_picker.devices == TWO_GPUS, timeout=TIMEOUT_MS)
    widget.process_picker.choose(ProcessPicker.ALL)
    data = tmp_path / "data"
    data.mkdir()
    ctx.state.set_config(RunConfig(data=DataConfig(path=str(data))))
    return widget


def _wait_idle(qtbot, page: TrainPage, timeout_ms: int = TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not page.is_running, timeout=timeout_ms)


def _control(page: TrainPage) -> str:
    try:
        return json.loads((Path(page.run_dir) / "control.json").read_text())["state"]
    except (OSError, ValueError):
        return ""


def test_all_gpus_run_in_a_child_and_fill_the_plots(page, ctx, qtbot):
    with qtbot.waitSignal(ctx.signals.run_finished, timeout=TIMEOUT_MS):
        page.start()
        assert page.is_running and not page.start_action.isEnabled()
    _wait_idle(qtbot, page)
    monitor = page.monitor
    assert list(monitor.loss_plot.data("raw")[0]) == [1, 2, 3, 4, 5, 6]
    assert list(monitor.val_plot.data("val_accuracy")[1]) == pytest.approx([75.0, 85.0])
    assert "Device: cuda:0 (x2)" in monitor.device_label.text()
    assert "Best val accuracy 85.0%" in page.result_label.text()
    launched = json.loads((Path(page.run_dir) / "argv.json").read_text())
    assert launched["argv"][0] == "train"
    assert launched["argv"][2:5] == ["--nproc", "2", "--events-jsonl"]
    assert launched["cuda"] == "0,1" and launched["device"] == "cuda"
    assert page.start_action.isEnabled()


def test_chosen_gpus_set_cuda_visible_devices(page, qtbot):
    page.process_picker.choose(ProcessPicker.CHOSEN, gpus=(1,))
    assert page.process_picker.gpu_list.isVisibleTo(page)
    assert page.process_picker.plan() == ProcessPlan(nproc=1, gpus=(1,))
    page.start()
    _wait_idle(qtbot, page)
    launched = json.loads((Path(page.run_dir) / "argv.json").read_text())
    assert launched["cuda"] == "1" and launched["argv"][3] == "1"


def test_pause_continue_and_stop_write_control_json(page, ctx, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "wait")
    with qtbot.waitSignal(ctx.signals.run_started, timeout=TIMEOUT_MS):
        page.start()
    page.pause_action.trigger()
    qtbot.waitUntil(lambda: _control(page) == "pause", timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: "control: pause" in page.monitor.log_panel.toPlainText())
    page.pause_action.trigger()  # continue
    qtbot.waitUntil(lambda: _control(page) == "run", timeout=TIMEOUT_MS)
    page.stop()
    qtbot.waitUntil(lambda: _control(page) == "stop", timeout=TIMEOUT_MS)
    _wait_idle(qtbot, page)
    assert page.monitor.phase_label.text() == "Stopped"
    assert "control: run" in page.monitor.log_panel.toPlainText()
    assert "failed" not in page.result_label.text().lower()


def test_a_crashing_job_leaves_a_sentence_and_the_app_usable(page, ctx, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "crash")
    page.start()
    _wait_idle(qtbot, page)
    text = page.result_label.text()
    assert "ended unexpectedly (exit code 3): RuntimeError: rank 1 lost its GPU." in text
    assert "Resume continues from the last checkpoint." in text
    assert page.monitor.phase_label.text() == "Failed"
    assert len(page.monitor.loss_plot.data("raw")[0]) == 1  # what came before the crash stays
    monkeypatch.delenv("FAKE_MODE")
    with qtbot.waitSignal(ctx.signals.run_finished, timeout=TIMEOUT_MS):
        page.start()  # the app goes on: the next run works
    _wait_idle(qtbot, page)
    assert "Best val accuracy" in page.result_label.text()


def test_cpu_processes_are_offered_by_the_environment(qtbot, monkeypatch):
    monkeypatch.setenv("REFIT_CPU_PROCESSES", "2")
    picker = ProcessPicker()  # the page runs this plan exactly as a GPU one (same job, same events)
    qtbot.addWidget(picker)
    picker.set_devices(Devices())
    picker.choose(ProcessPicker.CPU)
    assert picker.plan() == ProcessPlan(nproc=2)
    assert picker.plan().environment({})["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setenv("REFIT_CPU_PROCESSES", "lots")
    picker.set_devices(Devices())
    assert picker.isHidden() and picker.plan() == ProcessPlan()  # one process, in the app


def test_a_stop_the_job_ignores_ends_with_sigterm(fake_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "ignore-stop")
    task = Task()
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, RunStarted):
            task.cancel()

    command = [*distributed_runner.engine_command(), "--workspace", str(tmp_path / "ws")]
    status = run_engine_process(command, dict(os.environ), on_event, task, stop_grace_s=0.3)
    assert status is RunStatus.CANCELLED
    assert seen[-1].status is RunStatus.CANCELLED and seen[-1].run_dir.endswith("fake-run")
    run = Path(seen[-1].run_dir)
    assert json.loads((run / "control.json").read_text()) == {"state": "stop"}


def test_event_lines_are_rebuilt_and_hostile_ones_dropped():
    step = event_from_json(
        '{"event": "StepEnded", "step": 3, "epoch": 0, "total_steps": 9, "loss": null, '
        '"lr": 0.1, "samples_per_sec": 12}'
    )
    assert isinstance(step, StepEnded) and step.step == 3 and step.loss != step.loss  # NaN
    epoch = event_from_json('{"event": "EpochEnded", "epoch": 1, "epochs": 2, "metrics": {}}')
    assert isinstance(epoch, EpochEnded) and epoch.metrics == {}
    for line in (
        "not json",
        "[1, 2]",
        '{"event": "Popen", "args": "rm -rf ~"}',
        '{"event": "StepEnded", "step": "3", "epoch": 0, "total_steps": 9, "loss": 1, "lr": 0, '
        '"samples_per_sec": 1}',
        '{"event": "StepEnded", "step": 3}',
        '{"event": "RunEnded", "status": "exploded"}',
        '{"event": "EpochEnded", "epoch": 1, "epochs": 2, "metrics": {"a": "b"}}',
        "{" + " " * 2_000_000 + "}",
    ):
        assert event_from_json(line) is None, line


def test_crash_sentence_names_the_signal():
    assert "killed by signal 9" in crash_sentence(-9, "")
    assert crash_sentence(2, "refit: no such folder.", started=False) == (
        "The training processes did not start (exit code 2): refit: no such folder."
    )
    assert crash_sentence(1, "boom.") == (
        "The training processes ended unexpectedly (exit code 1): boom. Resume continues from "
        "the last checkpoint."
    )


def test_reader_threads_end_with_the_job(fake_engine, tmp_path):
    # The threads alive before may end meanwhile (an earlier test's finished QThread): only a
    # thread that appeared during the job and is still alive is a leak.
    before = set(threading.enumerate())
    command = [*distributed_runner.engine_command(), "--workspace", str(tmp_path / "ws")]
    run_engine_process(command, dict(os.environ), lambda e: None, Task())
    assert [t.name for t in threading.enumerate() if t not in before] == []


def test_cluster_job_dialog_writes_a_fresh_folder_each_time(qtbot, tmp_path):
    from desktop.train.cluster_export import ClusterJobDialog

    config = RunConfig(name="pets", data=DataConfig(path="/data/pets"))
    dialog = ClusterJobDialog(config, TWO_GPUS)
    qtbot.addWidget(dialog)
    assert dialog.gpus.value() == 2  # one process per GPU found here, by default
    assert not dialog.write() and "Choose the folder" in dialog.message.text()
    dialog.folder.setText(str(tmp_path))
    dialog.nodes.setValue(3)
    assert dialog.write()
    first = tmp_path / "refit-cluster-job"
    assert "--nnodes 3" in (first / "launch.sh").read_text()
    assert "--nproc-per-node 2" in (first / "launch.sh").read_text()
    assert dialog.write()  # again: a new folder, the first one untouched
    assert (tmp_path / "refit-cluster-job-2" / "job.sbatch").is_file()
    assert RunConfig.load(first / "config.json") == config
    dialog.folder.setText(str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("x")
    assert not dialog.write() and dialog.message.text()  # a sentence, no exception


def test_a_second_device_probe_keeps_the_chosen_gpus(qtbot):
    picker = ProcessPicker()
    qtbot.addWidget(picker)
    picker.set_devices(TWO_GPUS)
    picker.choose(ProcessPicker.CHOSEN, gpus=(1,))
    picker.set_devices(TWO_GPUS)
    assert picker.plan() == ProcessPlan(nproc=1, gpus=(1,))
    assert not picker.gpu_list.isHidden() and "2 GPUs (Fake GPU A, Fake GPU B)" in (
        picker.caption.text()
    )


def test_a_stop_ends_the_processes_before_the_app_stops_waiting():
    from desktop.worker import TRAINING_WAIT_MS

    total = distributed_runner.STOP_GRACE_S + distributed_runner.KILL_GRACE_S
    assert total + 2 * distributed_runner.POLL_S < TRAINING_WAIT_MS / 1000


@pytest.fixture
def real_cpu_page(qtbot, ctx, tmp_path, monkeypatch):
    """The Train page set to 2 CPU processes over the real engine (issue 16 item 1 needed)."""
    import importlib.util

    if importlib.util.find_spec("engine.distributed") is None:
        pytest.skip("engine.distributed is not in this tree yet")
    from synthetic import make_shapes_folder

    from engine.config import AdaptConfig, Method, ModelConfig, ScheduleConfig

    monkeypatch.setenv("REFIT_CPU_PROCESSES", "2")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    monkeypatch.setattr(device_picker, "list_devices", lambda: Devices())
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=10)
    page = TrainPage(ctx)
    qtbot.addWidget(page, before_close_func=lambda w: _wait_idle(qtbot, w, REAL_MS))
    page.on_shown()
    qtbot.waitUntil(lambda: page.process_picker.combo.findData(ProcessPicker.CPU) >= 0)
    page.process_picker.choose(ProcessPicker.CPU)
    ctx.state.set_config(
        RunConfig(
            data=DataConfig(path=str(shapes), num_workers=0),
            model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
            adapt=AdaptConfig(method=Method.FULL),
            schedule=ScheduleConfig(epochs=2, batch_size=4),
        )
    )
    return page


@pytest.mark.slow
def test_two_cpu_processes_train_for_real_through_the_same_path(real_cpu_page, ctx, qtbot):
    page = real_cpu_page
    with qtbot.waitSignal(ctx.signals.run_finished, timeout=REAL_MS):
        page.start()
    _wait_idle(qtbot, page, REAL_MS)
    assert "Best val accuracy" in page.result_label.text(), page.result_label.text()
    assert len(page.monitor.loss_plot.data("raw")[0]) > 0
    assert len(page.monitor.val_plot.data("val_accuracy")[1]) == 2


@pytest.mark.slow
def test_real_processes_stop_and_resume(real_cpu_page, ctx, qtbot):
    page = real_cpu_page
    page.start()
    page.pause_action.trigger()  # paused at the first step: the stop lands mid-run
    with qtbot.waitSignal(ctx.signals.run_started, timeout=REAL_MS):
        pass
    qtbot.waitUntil(lambda: _control(page) == "pause", timeout=REAL_MS)
    page.stop()
    _wait_idle(qtbot, page, REAL_MS)
    assert "can be resumed" in page.result_label.text(), page.result_label.text()
    with qtbot.waitSignal(ctx.signals.run_finished, timeout=REAL_MS):
        page.resume_button.click()
    _wait_idle(qtbot, page, REAL_MS)
    assert "Best val accuracy" in page.result_label.text(), page.result_label.text()
