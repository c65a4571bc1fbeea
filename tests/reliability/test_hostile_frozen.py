"""Hostile inputs to issue 12's frozen compute: the ONNX cache, runtimes, metrics, evaluation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from test_frozen_runtime import PARTS, frozen, images, tiny_net

from engine.frozen.forward import onnx_key


def key_path(cache: Path) -> Path:
    return cache / f"{onnx_key(PARTS)}.onnx"


def assert_torch_with_one_warning(fwd, lines, net) -> None:
    with torch.inference_mode():
        assert torch.equal(fwd(images()), net(images()))
    assert fwd.name == "torch"
    assert [level for level, _ in lines] == ["warning"], lines
    assert "\n" not in lines[0][1] and "Traceback" not in lines[0][1]


def test_a_cache_dir_that_is_a_file_falls_back(tmp_path):
    cache = tmp_path / "onnx"
    cache.write_bytes(b"I am a file")
    net = tiny_net()
    fwd, lines = frozen(net, cache)
    assert_torch_with_one_warning(fwd, lines, net)
    assert cache.read_bytes() == b"I am a file"


def test_a_directory_under_the_key_falls_back(tmp_path):
    key_path(tmp_path).mkdir()
    (key_path(tmp_path) / "keep").write_text("x")
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    assert_torch_with_one_warning(fwd, lines, net)
    assert (key_path(tmp_path) / "keep").read_text() == "x"


def test_a_symlink_to_a_file_outside_is_neither_trusted_nor_harmed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret: do not touch\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    key_path(cache).symlink_to(outside)
    net = tiny_net()
    fwd, lines = frozen(net, cache)
    assert_torch_with_one_warning(fwd, lines, net)
    assert outside.read_text() == "secret: do not touch\n"


def test_a_symlink_to_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cache = tmp_path / "cache"
    cache.mkdir()
    key_path(cache).symlink_to(fifo)
    net = tiny_net()
    fwd, _ = frozen(net, cache)
    with torch.inference_mode():
        torch.testing.assert_close(fwd(images()), net(images()), rtol=1e-4, atol=1e-5)
    assert fwd.name == "onnxruntime" and not key_path(cache).is_symlink()  # a fresh export


def _crafted(path: Path, *, external: str | None = None, domain: str | None = None) -> None:
    """A small valid-looking model: an Identity, with an initializer in external data or a node
    of a custom operator domain."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, 16, 16])
    y = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])
    w = numpy_helper.from_array(np.zeros((768, 16), np.float32), "w")
    if external:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in {"location": external, "offset": "0", "length": str(768 * 16 * 4)}.items():
            w.external_data.add(key=k, value=v)
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["features"]),
    ]
    opsets = [helper.make_opsetid("", 18)]
    if domain:
        nodes.append(helper.make_node("Evil", ["features"], ["evil"], domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=opsets)
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize(
    "craft",
    [
        {"external": "/etc/passwd"},
        {"external": "../../../../../../etc/passwd"},
        {"domain": "com.evil"},
    ],
)
def test_crafted_onnx_files_fall_back_and_are_removed(tmp_path, craft):
    pytest.importorskip("onnx")
    _crafted(key_path(tmp_path), **craft)
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    assert_torch_with_one_warning(fwd, lines, net)
    assert not key_path(tmp_path).exists()


def test_a_huge_sparse_file_is_refused_without_reading_it(tmp_path):
    # An ONNX file holds at most 2 GiB (protobuf's limit); a bigger one is not read into memory.
    with open(key_path(tmp_path), "wb") as fh:
        fh.truncate(3 * 2**30)
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    assert_torch_with_one_warning(fwd, lines, net)
    assert f"{key_path(tmp_path)} is larger than 2 GiB" in lines[0][1]


def test_ort_outputs_that_differ_fall_back(tmp_path, monkeypatch):
    from engine.frozen import onnx as onnx_module

    real = onnx_module.OnnxSession.__call__
    monkeypatch.setattr(onnx_module.OnnxSession, "__call__", lambda s, x: real(s, x) + 0.5)
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    assert_torch_with_one_warning(fwd, lines, net)
    assert "differ from torch" in lines[0][1]
    assert not list(tmp_path.iterdir())


def test_evaluate_with_an_absent_gpu_says_so_in_one_sentence(tmp_path, monkeypatch, capsys):
    from synthetic import make_shapes_folder
    from test_training import tiny_config

    from engine.cli import main
    from engine.config import Method
    from engine.training.trainer import train

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=6)
    run = train(tiny_config(shapes, method=Method.LINEAR_PROBE), workspace=tmp_path / "ws").run_dir
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ws = ["--workspace", str(tmp_path / "ws")]
    for command in (["evaluate", Path(run).name], ["predict", Path(run).name, str(shapes)]):
        for runtime in ("onnxruntime", "torch"):
            code = main([*ws, *command, "--device", "cuda", "--runtime", runtime])
            err = capsys.readouterr().err
            assert code == 2
            assert err == "refit: PyTorch sees no CUDA GPU on this machine; choose --device cpu.\n"
    bogus = main([*ws, "evaluate", Path(run).name, "--device", "gpu0", "--runtime", "torch"])
    assert bogus == 2 and capsys.readouterr().err == (
        "refit: 'gpu0' is not a device; choose cpu, cuda, cuda:1, mps or auto.\n"
    )
    assert main([*ws, "evaluate", Path(run).name, "--device", "auto", "--runtime", "torch"]) == 0
    out = capsys.readouterr().out
    assert "Saved" in out
    assert "Reused" not in out  # a named runtime predicts again, and must not say otherwise


@pytest.mark.parametrize("method", ["linear-probe", "full"])
def test_an_onnxruntime_request_a_run_cannot_use_is_said_not_ignored(tmp_path, method):
    import dataclasses

    from synthetic import make_shapes_folder
    from test_training import tiny_config

    from engine.config import Method, Runtime
    from engine.events import LogMessage
    from engine.training.trainer import train

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=6)
    cfg = tiny_config(shapes, method=Method(method), epochs=1)
    cfg = cfg.replace(device=dataclasses.replace(cfg.device, runtime=Runtime.ONNXRUNTIME))
    events: list = []
    train(cfg, workspace=tmp_path / "ws", on_event=events.append)
    said = [e.text for e in events if isinstance(e, LogMessage) and "onnxruntime" in e.text]
    if method == "full":
        assert said == [
            "onnxruntime runs frozen layers whose outputs are computed once (a linear probe); "
            "this run trains through its backbone, so it runs in torch."
        ]
    else:
        assert any("runs in onnxruntime on the CPU" in t for t in said)
        assert not any("so it runs in torch" in t for t in said)


@pytest.mark.parametrize(
    "logits, targets",
    [
        ([[3.0, 0.0, 0.0]], [0]),  # one row
        ([[0.0, 3.0, 0.0]], [0]),  # one row, wrong
        ([[3.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]], [0, 0, 0]),  # one class in val
        ([[0.0, 3.0, 0.0], [0.0, 0.0, 2.0]], [2, 2]),  # only the last class, half wrong
        ([[0.0, 3.0, 0.0], [0.0, 3.0, 0.0]], [0, 0]),  # one class, all predicted as another
    ],
)
def test_epoch_metrics_of_degenerate_validation_sets_equal_torchmetrics(logits, targets):
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_recall

    from engine.training.metrics import classification_metrics

    x, y = torch.tensor(logits), torch.tensor(targets)
    got = classification_metrics(x, y, ("a", "b", "c"))
    preds = x.argmax(1)
    f1 = multiclass_f1_score(preds, y, num_classes=3, average="macro").item()
    recall = multiclass_recall(preds, y, num_classes=3, average="none").tolist()
    assert got["val_macro_f1"] == pytest.approx(f1, abs=1e-6)
    assert [got[f"val_recall/{k}"] for k in "abc"] == pytest.approx(recall, abs=1e-6)
    assert got["val_accuracy"] == pytest.approx(float((preds == y).float().mean()))


def test_a_planted_export_with_a_forged_check_record_is_still_checked(tmp_path):
    # The record names the planted file's digest and the (public) weights' fingerprint, but it
    # is not signed with this user's key (kept outside the workspace): the file is checked.
    import hashlib
    import json
    import shutil

    from engine.frozen.cache import fingerprint, record_path

    other = tmp_path / "other"
    frozen(tiny_net(seed=5), other)[0](images())  # the export of other weights
    planted = key_path(tmp_path)
    shutil.copy(next(other.glob("*.onnx")), planted)
    net = tiny_net(seed=0)
    record = {
        "sha256": hashlib.sha256(planted.read_bytes()).hexdigest(),
        "weights": fingerprint(net),
        "difference": 0.0,
    }
    record_path(planted).write_text(json.dumps(record))
    fwd, _ = frozen(net, tmp_path)
    with torch.inference_mode():
        torch.testing.assert_close(fwd(images()), net(images()), rtol=1e-4, atol=1e-5)


def test_a_read_only_cache_falls_back(tmp_path, monkeypatch):
    import errno

    from engine.frozen import onnx as onnx_module

    def read_only(path, writer):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(onnx_module, "write_atomic", read_only)
    net = tiny_net()
    fwd, lines = frozen(net, tmp_path)
    assert_torch_with_one_warning(fwd, lines, net)


@pytest.mark.slow
def test_out_of_domain_images_get_torchs_predictions_in_onnxruntime(tmp_path):
    import dataclasses

    import numpy as np
    from PIL import Image
    from synthetic import make_scans_folder
    from test_training import tiny_config

    from engine.config import Method, Runtime
    from engine.evaluation.predictions import predict_split
    from engine.runs import RunDir
    from engine.training.trainer import train

    data = make_scans_folder(tmp_path / "scans", per_class=8)
    rng = np.random.default_rng(0)
    for cls, level in (("no", 20), ("yes", 1000)):
        for i in range(4):  # 16-bit, three grey levels, some nearly black
            grey = (rng.integers(0, 3, (40, 50)) * level * (i + 1)).astype(np.uint16)
            Image.fromarray(grey).save(data / cls / f"w16_{i}.png")
    cfg = tiny_config(data, method=Method.LINEAR_PROBE)
    cfg = cfg.replace(device=dataclasses.replace(cfg.device, runtime=Runtime.ONNXRUNTIME))
    run = RunDir(train(cfg, workspace=tmp_path / "ws").run_dir)
    ort = predict_split(run, "val", runtime="onnxruntime")
    ref = predict_split(run, "val", runtime="torch")
    assert len(ref.preds) >= 4 and np.array_equal(ort.preds, ref.preds)
    np.testing.assert_allclose(ort.probs, ref.probs, atol=1e-4)


@pytest.mark.slow  # a training that runs until early stopping
def test_an_early_stopped_run_keeps_its_best_epochs_evaluation_and_leaves_test_alone(
    tmp_path, monkeypatch
):
    import dataclasses

    from synthetic import make_shapes_folder
    from test_evaluation_in_training import assert_same_as_from_scratch, fake_accuracy
    from test_training import tiny_config

    from engine.evaluation.predictions import predictions_path
    from engine.runs import RunDir
    from engine.training.trainer import train

    fake_accuracy(monkeypatch, [0.5, 0.9, 0.1, 0.1, 0.1, 0.1])
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=12)
    cfg = tiny_config(shapes, epochs=6)
    cfg = cfg.replace(
        data=dataclasses.replace(cfg.data, test_fraction=0.2),
        schedule=dataclasses.replace(cfg.schedule, early_stopping_patience=1),
    )
    result = train(cfg, workspace=tmp_path / "ws")
    run = RunDir(result.run_dir)
    assert result.best_metrics["epoch"] == 1 and run.summary()["epochs_done"] < 6
    assert_same_as_from_scratch(run)
    assert not predictions_path(run, "test").exists()
    assert not (run.path / "evaluation" / "test.json").exists()


@pytest.mark.parametrize(
    "planted",
    [
        {"val": (3, 7)},  # too few rows, another width
        {"train": (5, 7)},  # too few rows
        {"val": "nan"},  # the right shape, NaN
        {"val": "wide"},  # the right rows, another network's width
        {"train": "int"},
    ],
)
@pytest.mark.slow
def test_planted_feature_cache_files_are_computed_again(tmp_path, planted):
    from synthetic import make_shapes_folder
    from test_training import tiny_config

    from engine.config import Method
    from engine.events import RunStatus
    from engine.training.trainer import train

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=6)
    cfg = tiny_config(shapes, method=Method.LINEAR_PROBE)
    first = train(cfg, workspace=tmp_path / "ws")
    cache = tmp_path / "ws" / "cache" / "features"
    for split, what in planted.items():
        path = next(cache.glob(f"*-{split}.safetensors"))
        plant_features(path, what)
    again = train(cfg, workspace=tmp_path / "ws")
    assert again.status is RunStatus.COMPLETED, again.error
    assert again.best_metrics["val_loss"] == pytest.approx(first.best_metrics["val_loss"], abs=1e-4)


def plant_features(path, what) -> None:
    """Replace a cached feature file with NaN, a wider or integer tensor, or a tensor of shape
    ``what``."""
    from safetensors.torch import load_file, save_file

    real = load_file(str(path))["features"]
    fake = (
        {
            "nan": torch.full_like(real, float("nan")),
            "wide": torch.zeros(real.shape[0], real.shape[1] + 3),
            "int": torch.zeros(real.shape, dtype=torch.int64),
        }.get(what)
        if isinstance(what, str)
        else torch.zeros(what)
    )
    save_file({"features": fake}, str(path))


def text_probe_config(tmp_path, **data):
    """A text linear probe on a tiny random BERT and generated messages."""
    from synthetic import make_text_table, make_tiny_bert

    from engine.config import (
        AdaptConfig,
        DataConfig,
        Method,
        ModelConfig,
        RunConfig,
        ScheduleConfig,
    )

    return RunConfig(
        seed=1,
        data=DataConfig(
            path=str(make_text_table(tmp_path / "m.tsv", per_class=12)), max_length=16, **data
        ),
        model=ModelConfig(backbone=str(make_tiny_bert(tmp_path / "bert"))),
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()


@pytest.mark.slow
@pytest.mark.parametrize("planted", [("val", (3, 7)), ("train", "wide"), ("val", "nan")])
def test_planted_text_feature_cache_files_are_computed_again(tmp_path, planted, monkeypatch):

    from engine.events import RunStatus
    from engine.training.trainer import train

    monkeypatch.setenv("REFIT_HOME", str(tmp_path / "home"))
    cfg = text_probe_config(tmp_path, val_fraction=0.25)
    first = train(cfg, workspace=tmp_path / "ws")
    split, what = planted
    path = next((tmp_path / "ws" / "cache" / "features").glob(f"*-{split}.safetensors"))
    plant_features(path, what)
    again = train(cfg, workspace=tmp_path / "ws")
    assert again.status is RunStatus.COMPLETED, again.error
    assert again.best_metrics["val_loss"] == pytest.approx(first.best_metrics["val_loss"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("planted", ["garbage", "symlink"])
def test_a_planted_text_encoder_export_is_not_kept(tmp_path, monkeypatch, planted):
    from engine.events import LogMessage
    from engine.training.trainer import train

    monkeypatch.setenv("REFIT_HOME", str(tmp_path / "home"))
    cfg = text_probe_config(tmp_path)
    ws = tmp_path / "ws"
    train(cfg, workspace=ws)
    export = next((ws / "cache" / "onnx").glob("text-encoder-*.onnx"))
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    export.unlink()
    if planted == "garbage":
        export.write_bytes(b"garbage")
    else:
        export.symlink_to(outside)
    said: list[list[str]] = []
    for _ in range(2):
        for features in (ws / "cache" / "features").iterdir():
            features.unlink()
        events: list = []
        train(cfg, workspace=ws, on_event=events.append)
        said.append([e.text for e in events if isinstance(e, LogMessage) and "encoder" in e.text])
    assert "runs in torch" in said[0][0]
    assert "runs in onnxruntime" in said[1][0]  # exported afresh, not stuck in torch
    assert outside.read_text() == "secret\n"


@pytest.mark.parametrize("ending", ["diverged", "time budget"])
def test_a_diverged_or_timed_out_run_keeps_its_best_epochs_evaluation(
    tmp_path, monkeypatch, ending
):
    import dataclasses

    from synthetic import make_shapes_folder
    from test_evaluation_in_training import assert_same_as_from_scratch
    from test_training import tiny_config

    from engine.events import RunStatus
    from engine.runs import RunDir
    from engine.training import epoch as epoch_module
    from engine.training.trainer import train

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=12)
    cfg = tiny_config(shapes, epochs=4)
    if ending == "diverged":
        real, calls = epoch_module.classification_metrics, []

        def metrics(*args, **kwargs):
            out = real(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                out["val_loss"] = float("nan")
            return out

        monkeypatch.setattr(epoch_module, "classification_metrics", metrics)
    else:
        cfg = cfg.replace(schedule=dataclasses.replace(cfg.schedule, time_budget_min=0.0001))
    result = train(cfg, workspace=tmp_path / "ws")
    run = RunDir(result.run_dir)
    if ending == "diverged":
        assert result.status is RunStatus.DIVERGED
    assert result.best_metrics["epoch"] == 0 and result.evaluation
    assert_same_as_from_scratch(run)
