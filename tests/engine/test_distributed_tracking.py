"""Tracking a job of several processes: `--track` reaches torchrun's processes and rank 0 alone
tracks (real 2-process Gloo jobs of the tiny network, read back with tensorboard's
EventAccumulator and mlflow's client)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import make_shapes_folder
from test_distributed import epoch_lines, events_of, refit
from test_training import TINY, tiny_config

from engine.runs import RunDir


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=12)


@pytest.mark.slow
def test_a_job_whose_tracker_cannot_work_says_so_before_a_run_exists(shapes, tmp_path, monkeypatch):
    """The worker checks --track as the CLI does (a cluster job's launch.sh has no CLI before
    it): rank 0's one sentence, and no run folder."""
    from engine.distributed.launch import run_job

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    result = run_job(
        2,
        config_json=tiny_config(shapes).to_json(),
        workspace=tmp_path / "ws",
        track=[f"mlflow:{(tmp_path / 'mlruns').as_uri()}"],
    )
    assert result.exit_code != 0 and "MLFLOW_ALLOW_FILE_STORE=true" in result.error
    assert "ended unexpectedly" not in result.error
    assert not list((tmp_path / "ws" / "runs").glob("*/config.json"))
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_a_tracked_job_writes_one_tensorboard_log_and_one_mlflow_run(shapes, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as a user does; refit() passes it on
    store = (tmp_path / "mlruns").as_uri()
    path = tmp_path / "config.json"
    path.write_text(tiny_config(shapes).to_json(), encoding="utf-8")
    ws = tmp_path / "ws"
    argv = ["train", str(path), "--workspace", str(ws), "--nproc", "2", "--events-jsonl"]
    proc = refit(*argv, "--track", "tensorboard", "--track", f"mlflow:{store}")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "tracking stopped" not in out + err
    run = RunDir(Path(events_of(out)[-1].run_dir))
    epochs = epoch_lines(run)
    steps = [r["step"] for r in run.metrics() if r.get("type") == "step"]

    # One writer (rank 0): one event file, each step and epoch once, as metrics.jsonl says.
    board = run.path / "tensorboard"
    assert len(list(board.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(board))
    acc.Reload()
    assert [s.step for s in acc.Scalars("train/loss")] == steps
    for name in ("val_loss", "val_accuracy", "train_loss"):
        got = acc.Scalars(f"epoch/{name}")
        assert [s.step for s in got] == [r["epoch"] for r in epochs] == [0, 1]
        assert [s.value for s in got] == pytest.approx([r[name] for r in epochs], rel=1e-5)

    # One MLflow run, named by the run id: the flattened config and every metric once.
    client = MlflowClient(tracking_uri=store)
    (found,) = client.search_runs([client.get_experiment_by_name("ws").experiment_id])
    assert found.info.run_name == run.run_id and found.info.status == "FINISHED"
    assert found.data.params["model.backbone"] == TINY
    assert found.data.params["schedule.batch_size"] == "8"
    history = client.get_metric_history(found.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == steps
    val_loss = client.get_metric_history(found.info.run_id, "epoch/val_loss")
    assert sorted(m.value for m in val_loss) == pytest.approx(sorted(r["val_loss"] for r in epochs))
    assert "summary.json" in {a.path for a in client.list_artifacts(found.info.run_id)}
