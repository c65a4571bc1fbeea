"""engine.task: the progress and cancellation every long engine call shares."""

from __future__ import annotations

import threading
import time

import pytest

from engine.task import Cancelled, Progress, Task, as_task, counting


def test_report_gives_fractions_and_the_last_one_always() -> None:
    seen: list[Progress] = []
    task = Task(seen.append, rate_hz=1e-9)  # everything between first and last is dropped
    for done in range(11):
        task.report(done, 10, "Reading images")
    assert seen[0] == Progress(0.0, "Reading images", 0, 10)
    assert seen[-1] == Progress(1.0, "Reading images", 10, 10)
    assert len(seen) == 2


def test_a_new_message_always_goes_through_and_unknown_totals_have_no_fraction() -> None:
    seen: list[Progress] = []
    task = Task(seen.append, rate_hz=1e-9)
    task.report(0, 0, "Listing files")
    task.say("Checking images")
    assert [p.message for p in seen] == ["Listing files", "Checking images"]
    assert seen[0].fraction is None


def test_stages_fill_their_slice_of_the_parent() -> None:
    seen: list[Progress] = []
    task = Task(seen.append, rate_hz=0)
    scan = task.stage(0.0, 0.25)
    features = task.stage(0.25, 1.0)
    scan.report(1, 1, "scan")
    features.report(1, 2, "features")
    inner = features.stage(0.5, 1.0)
    inner.report(0, 4, "inner")
    assert [p.fraction for p in seen] == [0.25, 0.625, 0.625]


def test_cancel_reaches_every_stage_and_wakes_a_paused_call() -> None:
    task = Task()
    stage = task.stage(0.5, 1.0)
    task.pause()
    assert stage.paused
    woke = threading.Event()

    def work() -> None:
        with pytest.raises(Cancelled):
            stage.check()
        woke.set()

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.3)
    assert not woke.is_set()  # still waiting while paused
    task.cancel()
    thread.join(5)
    assert woke.is_set() and stage.cancelled and task.cancel_event.is_set()


def test_check_passes_while_running_and_as_task_fills_in_none() -> None:
    task = as_task(None)
    task.check()
    task.report(3, 4)  # no callback: nothing to do, nothing raised
    assert not task.cancelled
    same = Task()
    assert as_task(same) is same


def test_check_cancelled_never_waits_while_paused() -> None:
    task = Task()
    task.pause()
    task.check_cancelled()  # a scan or an evaluation goes on while a run is paused
    task.cancel()
    with pytest.raises(Cancelled):
        task.check_cancelled()


def test_counting_passes_every_count_on_with_an_offset_and_shares_the_flags() -> None:
    counts: list[tuple[int, int]] = []
    parent = Task(rate_hz=1e-9)
    stage = counting(parent, lambda done, total: counts.append((done, total)), offset=5, total=20)
    for done in range(1, 4):
        stage.report(done, 3)
    stage.say("a sentence without counts")
    assert counts == [(6, 20), (7, 20), (8, 20)]
    parent.cancel()
    with pytest.raises(Cancelled):
        stage.check()
    silent = counting(None, None)
    silent.report(1, 1)
    silent.check()


def test_the_feature_pass_reports_counts_holds_on_pause_and_stops_on_cancel() -> None:
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from engine.config import Precision
    from engine.training.devices import Placement
    from engine.training.features import extract_features

    data = TensorDataset(torch.randn(12, 3), torch.zeros(12))
    counts: list[tuple[int, int]] = []
    task = Task()
    common = {
        "placement": Placement(torch.device("cpu"), Precision.FP32, "CPU"),
        "channels_last": False,
        "batch_size": 4,
        "workers": 0,
    }
    out = extract_features(
        nn.Linear(3, 2), data, task=counting(task, lambda d, t: counts.append((d, t))), **common
    )
    assert out.shape == (12, 2)
    assert counts[-1] == (12, 12)

    task.pause()
    finished = threading.Event()

    def run() -> None:
        extract_features(nn.Linear(3, 2), data, task=task, **common)
        finished.set()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.3)
    assert not finished.is_set()  # held before its first batch
    task.resume()
    worker.join(5)
    assert finished.is_set()

    task.cancel()
    with pytest.raises(Cancelled):
        extract_features(nn.Linear(3, 2), data, task=task, **common)
