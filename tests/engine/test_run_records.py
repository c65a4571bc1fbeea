"""Typed run records: old folders (no schema key) read the same, records round-trip, newer or
forged versions give one sentence, metrics.jsonl keys, and one is_resumable for both pages."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.files import jsonl_bytes
from engine.runs import (
    SCHEMA,
    RunDir,
    RunFileError,
    RunSplits,
    RunState,
    RunSummary,
    Workspace,
    is_resumable,
    run_info,
)
from engine.runs import metrics as metrics_file
from engine.training.checkpoint_files import has_last_checkpoint

# What a run folder of the version before typed records held (no "schema" key anywhere).
OLD_STATE = {
    "status": "cancelled",
    "created": "2026-11-02T10:11:12.000001",
    "epochs_done": 2,
    "resumable": True,
    "device": "CPU",
    "precision": "fp32",
    "micro_batch": 8,
    "a_key_from_somewhere": [1, 2],
}
OLD_SUMMARY = {
    "status": "cancelled",
    "best": {"epoch": 1.0, "val_accuracy": 0.75, "val_loss": 0.5, "flag": True},
    "classes": ["cat", "dog"],
    "warnings": ["the model learned nothing", 3],
}
OLD_SPLITS = {
    "root": "/data/pets",
    "modality": "image",
    "classes": ["cat", "dog"],
    "train": [["a.png", 0, "d1"], ["b.png", 1, "d2"]],
    "val": [["c.png", 1, "d4"], ["d.png", 0, "d3"]],
    "test": [],
}


def _old_run(tmp_path: Path) -> RunDir:
    ws = Workspace(tmp_path / "ws")
    run = ws.create_run(RunConfig(name="old"))
    for path, data in (
        (run.state_path, OLD_STATE),
        (run.summary_path, OLD_SUMMARY),
        (run.splits_path, OLD_SPLITS),
    ):
        path.write_text(json.dumps(data))
    return run


def test_an_old_run_folder_without_the_schema_key_reads_the_same(tmp_path):
    run = _old_run(tmp_path)
    assert run.state() == OLD_STATE and run.summary() == OLD_SUMMARY
    assert run.splits() == OLD_SPLITS

    state, summary, splits = run.read_state(), run.read_summary(), run.read_splits()
    assert state.status == "cancelled" and state.epochs_done == 2 and state.resumable
    assert state.device == "CPU" and state.micro_batch == 8 and state.created.startswith("2026")
    assert summary.best == {"epoch": 1.0, "val_accuracy": 0.75, "val_loss": 0.5}
    assert summary.classes == ["cat", "dog"] and summary.warnings == ("the model learned nothing",)
    assert splits.modality == "image" and splits.size("val") == 2 and splits.size("test") == 0
    assert splits.digests("val") == ["d3", "d4"]
    assert splits.rows("train")[1].item == "b.png" and splits.rows("train")[1].label == 1

    info = run_info(run)
    assert (info.status, info.epochs_done, info.problems) == ("cancelled", 2, ())
    assert info.best == summary.best and info.created == OLD_STATE["created"]


def test_updating_an_old_state_keeps_every_key_and_adds_the_schema(tmp_path):
    run = _old_run(tmp_path)
    written = run.update_state(status="running")
    assert written == {"schema": SCHEMA, **OLD_STATE, "status": "running"}
    assert json.loads(run.state_path.read_text()) == written


@pytest.mark.parametrize(
    ("record", "data"),
    [(RunState, OLD_STATE), (RunSummary, OLD_SUMMARY), (RunSplits, OLD_SPLITS)],
)
def test_a_record_round_trips(record, data):
    assert record.from_dict(data).to_dict() == data
    assert record.from_dict(data) == record.from_dict(json.loads(json.dumps(data)))


def test_records_round_trip_through_their_files(tmp_path):
    run = Workspace(tmp_path / "ws").create_run(RunConfig())
    assert run.state()["schema"] == SCHEMA and run.read_state().status == "created"
    run.write_summary(OLD_SUMMARY)
    run.write_splits(OLD_SPLITS)
    assert run.summary() == {"schema": SCHEMA, **OLD_SUMMARY}
    assert run.splits() == {"schema": SCHEMA, **OLD_SPLITS}
    run.write_summary({"status": "completed"})  # merged, not replaced
    assert run.read_summary().classes == ["cat", "dog"]
    assert run.read_summary().status == "completed"


def test_hostile_values_give_safe_defaults():
    state = RunState.from_dict({"status": 3, "epochs_done": "x", "micro_batch": True})
    assert (state.status, state.status_is_text, state.epochs_done) == ("unknown", False, 0)
    assert state.micro_batch is None  # a bool is not a size
    summary = RunSummary.from_dict({"best": [1], "classes": "ab", "warnings": "no"})
    assert (summary.best, summary.classes, summary.warnings) == ({}, [], ())
    assert RunState.from_dict({"epochs_done": math.nan}).epochs_done == 0


@pytest.mark.parametrize(
    ("schema", "words"),
    [(SCHEMA + 1, "written by a newer Refit Studio"), ("1", "not a whole number"), (0, "whole")],
)
def test_a_newer_or_forged_schema_is_one_sentence_naming_the_file(tmp_path, schema, words):
    run = _old_run(tmp_path)
    run.state_path.write_text(json.dumps({**OLD_STATE, "schema": schema}))
    with pytest.raises(RunFileError, match=words) as caught:
        run.read_state()
    assert str(run.state_path) in str(caught.value) and str(caught.value).count(". ") == 0
    assert run_info(run).status == "damaged"


def test_the_metrics_records_keep_their_keys():
    step = metrics_file.step_record(step=3, epoch=0, loss=0.5, lr=0.1, samples_per_sec=12.345)
    assert list(step) == ["type", "step", "epoch", "loss", "lr", "samples_per_sec", "time"]
    assert step["type"] == "step" and step["samples_per_sec"] == 12.35
    epoch = metrics_file.epoch_record(
        epoch=0, step=3, seconds=1.23456, is_best=True, metrics={"val_loss": 0.4}
    )
    assert epoch == {
        "type": "epoch",
        "epoch": 0,
        "step": 3,
        "seconds": 1.235,
        "is_best": True,
        "val_loss": 0.4,
    }


def test_a_resume_keeps_the_metrics_up_to_its_checkpoint(tmp_path):
    run = Workspace(tmp_path / "ws").create_run(RunConfig())
    records = [
        metrics_file.step_record(step=s, epoch=s // 2, loss=1.0, lr=0.1, samples_per_sec=1)
        for s in range(1, 5)
    ]
    records.insert(
        2, metrics_file.epoch_record(epoch=0, step=2, seconds=1, is_best=True, metrics={})
    )
    records.append(metrics_file.epoch_record(epoch=1, step=4, seconds=1, is_best=False, metrics={}))
    run.append_metrics(*records)
    run.keep_metrics_until(global_step=3, epoch=1)
    assert [(r["type"], r["step"]) for r in run.metrics()] == [
        ("step", 1),
        ("step", 2),
        ("epoch", 2),
        ("step", 3),
    ]
    assert run.metrics_path.read_bytes() == jsonl_bytes(run.metrics())


def test_curves_parse_the_records():
    records = [
        {"type": "step", "step": 1, "epoch": 0, "loss": 2.0, "lr": 0.1},
        {"type": "step", "step": 2, "epoch": 0, "loss": "x", "lr": 0.1},
        {"type": "epoch", "epoch": 0, "step": 2, "is_best": True, "val_accuracy": 0.5},
        {"type": "epoch", "epoch": 1, "step": 4, "val_loss": 0.3},
    ]
    curves = metrics_file.curves(records)
    assert curves.steps == (1.0, 2.0) and curves.losses[0] == 2.0 and math.isnan(curves.losses[1])
    assert curves.epochs == (0.0, 1.0) and curves.best_epoch == 1
    assert curves.val_accuracy[0] == 0.5 and math.isnan(curves.val_accuracy[1])


# -- is_resumable: the Runs page's and the Train page's former answers -------------------------


def _runs_page_before(run: RunDir) -> bool:
    """desktop/pages/runs_page.py's load_details before typed records."""
    info = run_info(run)
    try:
        state = run.state()
    except (OSError, ValueError):
        state = {}
    return info.status != "damaged" and (
        bool(state.get("resumable"))
        or (info.status == "interrupted" and has_last_checkpoint(run.checkpoints))
    )


def _train_page_before(run: RunDir) -> bool:
    """desktop/pages/train_page.py's _is_resumable before typed records."""
    try:
        return bool(run.state().get("resumable"))
    except RunFileError:
        return False


def _checkpoint(run: RunDir) -> None:
    folder = run.checkpoints / "last-4-1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")


# case: (state.json, a last checkpoint, resumable on the Runs page, on the Train page)
STATES = {
    "created": ({"status": "created"}, False, False, False),
    "completed": ({"status": "completed", "resumable": False}, True, False, False),
    "cancelled, resumable": ({"status": "cancelled", "resumable": True}, True, True, True),
    "cancelled, no checkpoint": ({"status": "cancelled", "resumable": False}, False, False, False),
    "failed, resumable": ({"status": "failed", "resumable": True}, True, True, True),
    "diverged": ({"status": "diverged", "resumable": False}, True, False, False),
    "killed mid-run, checkpoint": ({"status": "running", "resumable": False}, True, True, False),
    "killed mid-run, no checkpoint": ({"status": "running"}, False, False, False),
    "forged status": ({"status": 5, "resumable": True}, True, False, True),
    "resumable is text": ({"status": "cancelled", "resumable": "yes"}, True, True, True),
    "damaged state": (None, True, False, False),
}


@pytest.mark.parametrize("case", list(STATES))
def test_is_resumable_matches_both_former_call_sites(tmp_path, case):
    state, checkpoint, on_runs_page, on_train_page = STATES[case]
    run = Workspace(tmp_path / "ws").create_run(RunConfig(name=case))
    if state is None:
        run.state_path.write_bytes(os.urandom(64) + b"\xff")
    else:
        run.state_path.write_text(json.dumps(state))
    if checkpoint:
        _checkpoint(run)
    info = run_info(run)
    assert is_resumable(run, status=info.status) == _runs_page_before(run) == on_runs_page
    assert is_resumable(run) == _train_page_before(run) == on_train_page
