"""`refit export` and `refit predict` on an exported folder."""

from __future__ import annotations

import json

import pytest
import torch
from synthetic import make_shapes_folder

from engine.cli import main as refit
from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.runs import RunDir
from engine.training.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-export")
    shapes = make_shapes_folder(root / "shapes", per_class=8)
    config = RunConfig(
        seed=2,
        data=DataConfig(path=str(shapes), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
        # What Recommended picks for this data, chosen here: its advice costs more than the run.
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    torch.manual_seed(0)
    result = train(config, workspace=root / "ws")
    assert str(result.status) == "completed", result.error
    return root / "ws", RunDir(result.run_dir), sorted(shapes.rglob("*_00[01].png"))


def test_export_prints_files_and_check_then_predict_reads_the_folder(trained, capsys):
    workspace, run, images = trained
    code = refit(["--workspace", str(workspace), "export", run.run_id, "--format", "safetensors"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = run.path / "export"
    lines = captured.out.splitlines()
    assert lines[0] == f"Exported run {run.run_id} to {out}"
    assert lines[1].startswith("safetensors: Rebuilt from model.safetensors vs PyTorch on ")
    assert "agrees on all" in lines[1]
    assert {line.strip() for line in lines[2:]} == {
        str(out / "model.safetensors"),
        str(out / "refit_model.json"),
        str(out / "MODEL_CARD.md"),
    }
    assert "Writing model.safetensors…" in captured.err  # progress goes to stderr

    files = [str(p) for p in images]
    assert refit(["--workspace", str(workspace), "predict", run.run_id, *files, "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert refit(["predict", str(out), *files, "--json"]) == 0
    from_export = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in from_export] == [r["path"] for r in from_run] == files
    for a, b in zip(from_export, from_run, strict=True):
        assert [c for c, _ in a["top"]] == [c for c, _ in b["top"]]
        assert dict(a["top"]) == pytest.approx(dict(b["top"]), abs=1e-4)
    assert refit(["predict", str(out), files[0]]) == 0
    assert capsys.readouterr().out.startswith(f"{files[0]}\t")


def test_hf_for_a_timm_run_and_a_broken_folder_fail_with_one_sentence(trained, tmp_path, capsys):
    workspace, run, images = trained
    code = refit(["--workspace", str(workspace), "export", run.run_id, "--format", "hf"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "refit: " in err and "export it as safetensors, torchscript or onnx" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "refit_model.json").write_text(json.dumps({"classes": ["a"], "modality": "image"}))
    assert refit(["predict", str(broken), str(images[0])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refit: ") and "holds no model file" in err
    assert refit(["predict", str(broken), "--text", "hello"]) == 2
