"""The `refit` command line, driven in-process as a user would type it."""

from __future__ import annotations

import json

import pytest
from synthetic import draw_shape, make_shapes_folder

from engine.cli import main
from engine.config import Method, RunConfig
from engine.runs import Workspace

TINY = ["--backbone", "timm:test_efficientnet", "--no-pretrained", "--workers", "0"]


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=10)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_scan_reports_classes_and_problems(shapes, capsys):
    (shapes / "circle" / "notes.txt").write_text("hello")
    code, out, _ = run_cli(capsys, "scan", str(shapes))
    assert code == 0
    assert "circle" in out and "square" in out and "notes.txt" in out
    code, out, _ = run_cli(capsys, "scan", str(shapes), "--json")
    data = json.loads(out)
    assert data["classes"] == ["circle", "square"]
    assert any(p["path"] and p["path"].endswith("notes.txt") for p in data["problems"])


def test_train_predict_runs_and_replay(shapes, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    code, out, err = run_cli(
        capsys,
        "--workspace",
        ws,
        "train",
        str(shapes),
        *TINY,
        "--method",
        "last-1",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--quiet",
    )
    assert code == 0, err
    assert "Run completed" in out and "val_accuracy" in out
    (run,) = Workspace(ws).list_runs()
    cfg = RunConfig.load(run.path / "config.json")
    assert cfg.adapt.method is Method.LAST_N and cfg.adapt.last_n == 1
    assert cfg.schedule.epochs == 2

    code, out, _ = run_cli(capsys, "--workspace", ws, "runs")
    assert code == 0 and run.run_id in out and "completed" in out

    image = tmp_path / "new.png"
    draw_shape("circle", __import__("random").Random(5)).save(image)
    code, out, _ = run_cli(
        capsys, "--workspace", ws, "predict", run.run_id[:15], str(image), "--json"
    )
    assert code == 0
    (pred,) = json.loads(out)
    assert {name for name, _ in pred["top"]} == {"circle", "square"}
    assert sum(p for _, p in pred["top"]) == pytest.approx(1.0, abs=1e-5)

    # Replaying the saved config trains the same configuration again.
    code, out, err = run_cli(
        capsys, "--workspace", ws, "train", str(run.path / "config.json"), "--quiet"
    )
    assert code == 0, err
    runs = Workspace(ws).list_runs()
    assert len(runs) == 2
    assert RunConfig.load(runs[0].path / "config.json") == cfg


@pytest.mark.slow
def test_predict_reports_unreadable_file_without_crashing(shapes, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    assert (
        run_cli(capsys, "--workspace", ws, "train", str(shapes), *TINY, "--epochs", "1", "--quiet")[
            0
        ]
        == 0
    )
    (run,) = Workspace(ws).list_runs()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    code, out, _ = run_cli(capsys, "--workspace", ws, "predict", run.run_id, str(bad))
    assert code == 2 and "bad.jpg" in out and "error" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "/no/such/folder"], "does not exist"),
        (["train", "{data}", "--method", "sideways"], "--method 'sideways'"),
        (["train", "{empty}"], "no class folders"),
        (["resume", "nope"], "No run 'nope'"),
        (["train", "{data}", "--backbone", "resnet50", "--workers", "0"], "resnet50"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, shapes, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    (tmp_path / "empty").mkdir()
    argv = [a.format(data=shapes, empty=tmp_path / "empty") for a in argv]
    code, _, err = run_cli(capsys, "--workspace", str(tmp_path / "ws"), *argv)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("refit:")]
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), err


def test_save_config_writes_a_replayable_file(shapes, tmp_path, capsys):
    target = tmp_path / "c.json"
    code, _, _ = run_cli(
        capsys,
        "train",
        str(shapes),
        "--method",
        "full",
        "--lr",
        "0.01",
        "--augment",
        "strong",
        "--save-config",
        str(target),
    )
    assert code == 0
    cfg = RunConfig.load(target)
    assert cfg.adapt.method is Method.FULL and cfg.optim.lr == 0.01
    assert cfg.augment.preset == "strong" and cfg.data.path == str(shapes.resolve())


@pytest.mark.slow
def test_workspace_is_accepted_before_and_after_the_command(shapes, tmp_path, capsys):
    """`refit train DIR --workspace W` and `refit --workspace W train DIR` are the same; given
    in both places, the one after the command wins (it is the nearer)."""
    after, before = tmp_path / "after", tmp_path / "before"
    code, _, err = run_cli(
        capsys, "train", str(shapes), *TINY, "--epochs", "1", "--quiet", "--workspace", str(after)
    )
    assert code == 0, err
    assert len(list((after / "runs").iterdir())) == 1
    code, out, _ = run_cli(capsys, "--workspace", str(before), "runs", "--workspace", str(after))
    assert code == 0 and "completed" in out
    code, out, _ = run_cli(capsys, "--workspace", str(after), "runs")
    assert code == 0 and "completed" in out
    assert not before.exists()
