"""Tracking a run in TensorBoard and MLflow (engine/tracking/): a real tiny training read back
with tensorboard's EventAccumulator and mlflow's client; failing trackers warn once and never
stop training; `--track` values and credentials."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest
from synthetic import make_shapes_folder
from test_training import TINY, tiny_config

from engine.cli import main
from engine.events import LogMessage, RunStatus
from engine.runs import Workspace
from engine.tracking import TrackError, check_targets, mask_uri, parse_track, tracking_callbacks
from engine.tracking.base import MAX_PARAM_VALUE, flatten
from engine.training.trainer import resume, train

EPOCHS = 2  # test_training.tiny_config's
CLI_TINY = [
    *("--backbone", TINY, "--no-pretrained", "--workers", "0", "--method", "full"),
    *("--epochs", str(EPOCHS), "--batch-size", "8", "--seed", "3"),
]


@pytest.fixture
def file_store_on(monkeypatch):
    """MLflow 3 keeps its file store behind this switch; the user sets it, as the test does."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


# -- --track values and credentials --------------------------------------------------------------


def test_parse_track_accepts_the_two_forms():
    assert parse_track("tensorboard").kind == "tensorboard"
    target = parse_track("mlflow:http://host:5000")
    assert (target.kind, target.uri) == ("mlflow", "http://host:5000")
    assert parse_track("mlflow:file:///tmp/mlruns").uri == "file:///tmp/mlruns"


@pytest.mark.parametrize(
    "value", ["wandb", "mlflow:", "mlflow:ftp://x", "mlflow:x\ny", "", "x" * 5000]
)
def test_parse_track_refuses_anything_else_in_one_sentence(value):
    with pytest.raises(TrackError) as info:
        parse_track(value)
    text = str(info.value)
    assert "\n" not in text and len(text) < 400
    assert "tensorboard" in text or "http://host:5000" in text


def test_credentials_are_masked_wherever_the_uri_is_shown():
    target = parse_track("mlflow:https://alice:s3cret@mlflow.example.org/api")
    assert target.uri == "https://alice:s3cret@mlflow.example.org/api"  # the client needs it
    assert "s3cret" not in target.shown and "alice" not in target.shown
    assert mask_uri("http://token@h:1/x") == "http://***@h:1/x"
    assert mask_uri("http://h:1/a@b") == "http://h:1/a@b"  # an @ in the path is no password
    with pytest.raises(TrackError) as info:
        parse_track("mlflow:gopher://bob:hunter2@host")
    assert "hunter2" not in str(info.value)


def test_flatten_gives_dotted_keys_and_respects_mlflows_value_limit():
    cfg = tiny_config("/data").replace(name="n" * 900)
    params = flatten(cfg.to_dict())
    assert params["model.backbone"] == TINY
    assert params["schedule.epochs"] == str(EPOCHS)
    assert len(params["name"]) == MAX_PARAM_VALUE
    assert all(isinstance(v, str) and len(v) <= MAX_PARAM_VALUE for v in params.values())


@pytest.mark.slow  # imports mlflow (seconds)
def test_file_store_switched_off_is_one_sentence(monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(TrackError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        check_targets([parse_track("mlflow:file:///tmp/mlruns")])
    check_targets([parse_track("mlflow:http://host:5000"), parse_track("tensorboard")])


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    with pytest.raises(TrackError) as info:
        check_targets([parse_track("mlflow:http://host:5000")])
    assert str(info.value) == (
        "MLflow tracking needs the mlflow-skinny package: pip install 'refit-studio[tracking]'"
    )


def test_cli_refuses_a_bad_track_value_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--workspace", str(tmp_path / "ws"), "train", str(tmp_path), "--track", "wandb"])
    assert info.value.code == 2
    assert "`mlflow:URI`" in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()


@pytest.mark.slow  # the config is built from the folder first (seconds of imports)
def test_cli_says_what_is_missing_before_a_run_folder_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    ws = tmp_path / "ws"
    store = (tmp_path / "mlruns").as_uri()
    code = main(
        ["--workspace", str(ws), "train", str(data), *CLI_TINY, "--track", f"mlflow:{store}"]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("refit:")]
    assert code == 2 and len(lines) == 1 and "MLFLOW_ALLOW_FILE_STORE=true" in lines[0], err
    assert not ws.exists() or not Workspace(ws).list_runs()
    assert not (tmp_path / "mlruns").exists()


def test_other_ranks_do_not_track(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    callbacks = tracking_callbacks([parse_track("tensorboard"), parse_track("tensorboard")])
    assert len(callbacks) == 1 and not callbacks[0].active
    monkeypatch.setenv("RANK", "0")
    assert tracking_callbacks([parse_track("tensorboard")])[0].active


def test_importing_the_package_loads_neither_library_nor_torch():
    # The tensorboard check imports the tensorboard package itself (half a millisecond: a plain
    # import statement, which the bundle's import scan can see); nothing heavier.
    code = (
        "import sys, engine.tracking as t; t.check_targets([t.parse_track('tensorboard')]);"
        "print(sorted(m for m in ('torch', 'mlflow', 'tensorboard.summary', 'tensorflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"


# -- a real run, tracked -------------------------------------------------------------------------


@pytest.mark.slow
def test_tracked_run_reads_back_from_tensorboard_and_mlflow(tmp_path, file_store_on, capsys):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    store = (tmp_path / "mlruns").as_uri()
    ws = tmp_path / "ws"
    argv = ["--workspace", str(ws), "train", str(data), *CLI_TINY, "--track", "tensorboard"]
    code = main([*argv, "--track", f"mlflow:{store}", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "tracking stopped" not in out + err
    (run_dir,) = (p.path for p in Workspace(ws).list_runs())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["type"] == "step"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(steps) >= 2 and len(epochs) == EPOCHS

    # TensorBoard: event files in the run folder, scalars at the loop's own step numbers
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert [s.step for s in acc.Scalars("train/loss")] == steps
    assert [s.step for s in acc.Scalars("train/lr")] == steps
    val_tags = [t for t in scalars if t.startswith("epoch/val_")]
    assert val_tags, scalars
    for tag in val_tags:
        assert len(acc.Scalars(tag)) == EPOCHS
    assert [s.step for s in acc.Scalars("epoch/train_loss")] == [r["epoch"] for r in epochs]
    last = acc.Scalars("epoch/train_loss")[-1].value
    assert last == pytest.approx(epochs[-1]["train_loss"], rel=1e-5)
    assert (run_dir / "tensorboard" / "hparams").is_dir()

    # MLflow: one run named by the run id, params = the flattened config, histories, artifacts
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("ws")
    (run,) = client.search_runs([experiment.experiment_id])
    run_id = run_dir.name
    assert run.info.run_name == run_id and run.info.status == "FINISHED"
    assert run.data.tags["refit.run_id"] == run_id
    assert run.data.tags["refit.backbone"] == TINY
    assert run.data.tags["refit.method"] == "full"
    assert run.data.params["model.backbone"] == TINY
    assert run.data.params["schedule.epochs"] == str(EPOCHS)
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in loss) == steps
    for tag in val_tags:
        assert len(client.get_metric_history(run.info.run_id, tag)) == EPOCHS
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "config.json", "evaluation"} <= names
    assert "splits.json" not in names  # the dataset's file names stay on this machine
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/val.json" in evaluation
    assert not any(p.endswith(".npz") for p in evaluation)


@pytest.mark.slow
def test_failing_trackers_warn_once_and_training_goes_on(tmp_path, file_store_on):
    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    # A store that cannot be written: read-only for a user, and a file where its folder should
    # be (which stops root too, whom a read-only folder does not).
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    store = locked if os.geteuid() != 0 else blocked
    port = closed_port()
    targets = [
        parse_track(f"mlflow:http://alice:s3cret@127.0.0.1:{port}"),
        parse_track(f"mlflow:{(store / 'mlruns').as_uri()}"),
    ]
    events: list = []
    try:
        result = train(
            tiny_config(data),
            workspace=tmp_path / "ws",
            callbacks=tracking_callbacks(targets),
            on_event=events.append,
        )
    finally:
        locked.chmod(stat.S_IRWXU)
    assert result.status is RunStatus.COMPLETED
    warnings = [e.text for e in events if isinstance(e, LogMessage) and "tracking" in e.text]
    assert len(warnings) == 2, warnings  # once each, not once per step
    levels = {e.level for e in events if isinstance(e, LogMessage) and "tracking" in e.text}
    assert levels == {"warning"}
    assert any(str(port) in w and "does not answer" in w for w in warnings)
    assert all("s3cret" not in w and "alice" not in w for w in warnings)
    assert all("\n" not in w for w in warnings)
    texts = [p.read_text(errors="replace") for p in result.run_dir.rglob("*.json*")]
    folder_text = "".join(texts)
    assert "s3cret" not in folder_text
    assert not list(locked.iterdir()) and blocked.read_text() == "x"


@pytest.mark.slow
def test_resumed_run_goes_on_in_the_same_mlflow_run(tmp_path, file_store_on):
    from mlflow.tracking import MlflowClient

    from engine.task import Task

    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    store = (tmp_path / "mlruns").as_uri()
    task = Task()

    def stop_after_first_epoch(event):
        if type(event).__name__ == "EpochEnded":
            task.cancel()

    first = train(
        tiny_config(data),
        workspace=tmp_path / "ws",
        callbacks=tracking_callbacks([parse_track(f"mlflow:{store}")]),
        on_event=stop_after_first_epoch,
        task=task,
    )
    assert first.status is RunStatus.CANCELLED
    second = resume(
        first.run_dir.name,
        workspace=tmp_path / "ws",
        callbacks=tracking_callbacks([parse_track(f"mlflow:{store}")]),
    )
    assert second.status is RunStatus.COMPLETED
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("ws")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "epoch/train_loss")) == EPOCHS


@pytest.mark.slow
def test_a_hung_server_never_holds_training_back(tmp_path):
    from engine.tracking.mlflow_tracker import MlflowTracker

    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    with socket.socket() as server:  # accepts connections, never answers a request
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        events: list = []
        result = train(
            tiny_config(data),
            workspace=tmp_path / "ws",
            callbacks=[MlflowTracker(uri, end_wait=1.0)],
            on_event=events.append,
        )
    assert result.status is RunStatus.COMPLETED
    assert (result.run_dir / "summary.json").is_file()
    warnings = [e.text for e in events if isinstance(e, LogMessage) and "tracking" in e.text]
    assert len(warnings) == 1 and "did not finish within 1 s" in warnings[0], warnings
