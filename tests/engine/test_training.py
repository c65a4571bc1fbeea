"""The training loop on tiny generated data: events, files, cancel/resume, fast path, bad input."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_shapes_folder, tree_snapshot

from engine.config import (
    AdaptConfig,
    AugmentConfig,
    AugmentPreset,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.data import DatasetError
from engine.events import (
    CheckpointSaved,
    EpochEnded,
    LogMessage,
    RunEnded,
    RunStarted,
    RunStatus,
    StageProgressed,
    StepEnded,
)
from engine.runs import RunDir, Workspace
from engine.task import Task
from engine.training.checkpoint_files import has_last_checkpoint, last_checkpoint, weights_file
from engine.training.trainer import resume, train

TINY = "timm:test_efficientnet"  # ~0.1M parameters, random init: fast and needs no weights


def tiny_config(path, *, method=Method.FULL, epochs=2, batch_size=8, **sections) -> RunConfig:
    cfg = RunConfig(
        seed=3,
        data=DataConfig(path=str(path), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        adapt=AdaptConfig(method=method),
        schedule=ScheduleConfig(epochs=epochs, batch_size=batch_size, warmup_fraction=0.0),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT, cache_views=2),
    )
    return cfg.replace(**sections).validate()


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=12)


def collect(events):
    return lambda e: events.append(e)


def test_event_order_and_run_files(shapes, tmp_path):
    events = []
    result = train(tiny_config(shapes), workspace=tmp_path / "ws", on_event=collect(events))
    assert result.status is RunStatus.COMPLETED
    # Scan progress and log lines may precede RunStarted; everything else comes between.
    kinds = [type(e) for e in events if not isinstance(e, LogMessage | StageProgressed)]
    assert kinds[0] is RunStarted and kinds[-1] is RunEnded
    steps = [e for e in events if isinstance(e, StepEnded)]
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    started = events[[type(e) for e in events].index(RunStarted)]
    assert len(epochs) == 2
    assert len(steps) == 2 * started.steps_per_epoch
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    assert all(e.run_id == result.run_dir.name for e in events)
    # Every epoch's step events come before that epoch's end.
    first_epoch_end = events.index(epochs[0])
    assert all(events.index(s) < first_epoch_end for s in steps if s.epoch == 0)
    saved = {e.kind for e in events if isinstance(e, CheckpointSaved)}
    assert {"best", "last"} <= saved

    run = RunDir(result.run_dir)
    assert RunConfig.load(run.config_path) == tiny_config(shapes)
    records = run.metrics()
    assert sum(r["type"] == "step" for r in records) == len(steps)
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [0, 1]
    summary = json.loads(run.summary_path.read_text())
    for key in ("val_accuracy", "val_loss", "val_macro_f1", "val_recall/circle"):
        assert key in summary["best"]
    assert summary["classes"] == ["circle", "square"]
    assert summary["status"] == "completed"
    state = run.state()
    assert state["device_type"] == "cpu" and state["versions"]["torch"]
    assert (run.checkpoints / "best.safetensors").is_file()
    last = last_checkpoint(run.checkpoints)
    assert last is not None and last.weights.is_file() and last.state.is_file()
    assert (last.epoch, last.global_step) == (2, len(steps))
    assert [r.run_id for r in Workspace(tmp_path / "ws").list_runs()] == [run.run_id]


@pytest.mark.slow  # a training long enough to learn
def test_full_fine_tune_learns_the_shapes(tmp_path):
    data = make_shapes_folder(tmp_path / "d", per_class=24)
    cfg = tiny_config(data, epochs=6, batch_size=8)
    # Random initial weights: the backbone learns at the head's rate.
    cfg = cfg.replace(optim=cfg.optim.__class__(lr=3e-3, backbone_lr_scale=1.0))
    result = train(cfg, workspace=tmp_path / "ws")
    records = RunDir(result.run_dir).metrics()
    epoch_losses = [r["train_loss"] for r in records if r["type"] == "epoch"]
    assert epoch_losses[-1] < epoch_losses[0]
    assert result.best_metrics["val_accuracy"] >= 0.75


@pytest.mark.slow
def test_linear_probe_trains_only_the_head_on_cached_features(shapes, tmp_path):
    events = []
    cfg = tiny_config(shapes, method=Method.LINEAR_PROBE, epochs=3)
    train(cfg, workspace=tmp_path / "ws", on_event=collect(events))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.feature_cache
    assert started.trainable_params == 256 * 2 + 2
    logs = [e.text for e in events if isinstance(e, LogMessage)]
    assert any("Computing backbone features" in t for t in logs)
    # The same data and backbone again: features come from the workspace cache.
    events.clear()
    result = train(cfg, workspace=tmp_path / "ws", on_event=collect(events))
    logs = [e.text for e in events if isinstance(e, LogMessage)]
    assert any("loaded from the cache" in t for t in logs)
    weights = load_file(str(RunDir(result.run_dir).checkpoints / "best.safetensors"))
    assert any(k.startswith("backbone.") for k in weights), "best checkpoint holds the whole model"


def _final_weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(weights_file(RunDir(run_dir), "last")))


@pytest.mark.parametrize(
    "method",
    [pytest.param(Method.FULL, marks=pytest.mark.slow), Method.LINEAR_PROBE],  # full: 3 trainings
)
@pytest.mark.slow
def test_cancel_then_resume_equals_an_uninterrupted_run(shapes, tmp_path, method):
    cfg = tiny_config(shapes, method=method, epochs=3)
    straight = train(cfg, workspace=tmp_path / "a")

    task = Task()
    seen = []

    def cancel_mid_epoch(event):
        seen.append(event)
        if isinstance(event, StepEnded) and event.step == 4:
            task.cancel()

    stopped = train(cfg, workspace=tmp_path / "b", on_event=cancel_mid_epoch, task=task)
    assert stopped.status is RunStatus.CANCELLED
    steps = [e for e in seen if isinstance(e, StepEnded)]
    assert steps[-1].step == 4, "cancel returns within one step"
    run = RunDir(stopped.run_dir)
    assert run.state()["resumable"] is True
    assert has_last_checkpoint(run.checkpoints)

    resumed = resume(stopped.run_dir.name, workspace=tmp_path / "b")
    assert resumed.status is RunStatus.COMPLETED
    a, b = _final_weights(straight.run_dir), _final_weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert straight.best_metrics == pytest.approx(resumed.best_metrics)
    steps_logged = [r["step"] for r in run.metrics() if r["type"] == "step"]
    assert steps_logged == sorted(set(steps_logged)), "no step is logged twice after resume"


def test_pause_blocks_the_loop_until_resumed(shapes, tmp_path):
    task = Task()
    paused_at = []
    released = threading.Event()

    def on_event(event):
        if isinstance(event, StepEnded) and event.step == 2 and not paused_at:
            task.pause()
            paused_at.append(event.step)

            def release():
                released.set()
                task.resume()

            threading.Timer(0.3, release).start()
        if isinstance(event, StepEnded) and event.step == 3:
            assert released.is_set(), "step 3 ran while paused"

    result = train(
        tiny_config(shapes, epochs=1), workspace=tmp_path / "ws", on_event=on_event, task=task
    )
    assert result.status is RunStatus.COMPLETED and paused_at == [2]


def test_training_skips_and_reports_corrupt_files_and_leaves_the_folder_untouched(tmp_path):
    data = make_shapes_folder(tmp_path / "d", per_class=10)
    (data / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "square" / "empty.png").write_bytes(b"")
    before = tree_snapshot(data)
    events = []
    result = train(tiny_config(data, epochs=1), workspace=tmp_path / "ws", on_event=collect(events))
    assert result.status is RunStatus.COMPLETED
    warnings = " ".join(
        e.text for e in events if isinstance(e, LogMessage) and e.level == "warning"
    )
    assert "broken.jpg" in warnings and "empty.png" in warnings
    splits = RunDir(result.run_dir).splits()
    used = {p for split in ("train", "val") for p, _, _ in splits[split]}
    assert not any(p.endswith(("broken.jpg", "empty.png")) for p in used)
    assert tree_snapshot(data) == before


def test_empty_folder_fails_with_one_sentence_and_a_failed_run(tmp_path):
    (tmp_path / "empty").mkdir()
    events = []
    with pytest.raises(DatasetError) as err:
        train(tiny_config(tmp_path / "empty"), workspace=tmp_path / "ws", on_event=collect(events))
    assert "\n" not in str(err.value)
    ended = [e for e in events if isinstance(e, RunEnded)]
    assert len(ended) == 1 and ended[0].status is RunStatus.FAILED
    assert ended[0].error == str(err.value)


def test_single_class_fails_clearly(tmp_path):
    data = make_shapes_folder(tmp_path / "one", classes=("circle",), per_class=6)
    with pytest.raises(DatasetError, match=r"(?i)one class"):
        train(tiny_config(data), workspace=tmp_path / "ws")


def test_sgd_one_cycle_label_smoothing_and_class_weights_train(tmp_path):
    from engine.config import ClassWeights, OptimConfig, Optimizer, Schedule

    data = make_shapes_folder(tmp_path / "d", per_class=10)
    # Unbalanced: drop most squares so balanced class weights matter.
    for extra in sorted((data / "square").iterdir())[4:]:
        extra.unlink()
    cfg = tiny_config(data, epochs=3).replace(
        optim=OptimConfig(
            optimizer=Optimizer.SGD,
            lr=0.05,
            label_smoothing=0.1,
            class_weights=ClassWeights.BALANCED,
        ),
        schedule=ScheduleConfig(
            epochs=3, batch_size=2, schedule=Schedule.ONE_CYCLE, warmup_fraction=0.3
        ),
    )
    events = []
    result = train(cfg, workspace=tmp_path / "ws", on_event=collect(events))
    assert result.status is RunStatus.COMPLETED
    lrs = [e.lr for e in events if isinstance(e, StepEnded)]
    # One-cycle: the rate rises to its peak, then falls far below where it started.
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1 and lrs[-1] < lrs[0]


def test_early_stopping_stops_after_patience_epochs_without_a_new_best():
    from types import SimpleNamespace

    from engine.training.callbacks import EarlyStopping

    stopped = []
    ctx = SimpleNamespace(
        best=SimpleNamespace(epochs_since=0),
        config=RunConfig(),
        request_stop=stopped.append,
    )
    stopper = EarlyStopping(patience=2)
    event = EpochEnded(epoch=0, epochs=10)
    for since_best in (0, 1):
        ctx.best.epochs_since = since_best
        stopper.on_epoch_ended(event, ctx)
    assert stopped == []
    ctx.best.epochs_since = 2
    stopper.on_epoch_ended(event, ctx)
    assert len(stopped) == 1 and "2 epochs" in stopped[0]


@pytest.mark.slow  # a full fine-tune until it stops (up to 10 epochs)
def test_early_stopping_ends_a_real_run_early(shapes, tmp_path):
    from engine.config import Monitor, OptimConfig

    # A learning rate this small changes nothing the monitor can see: no new best after epoch 1.
    # (A full fine-tune: the linear probe is fitted to convergence and has no epochs to stop.)
    cfg = tiny_config(shapes, method=Method.FULL, epochs=10).replace(
        optim=OptimConfig(lr=1e-7),
        schedule=ScheduleConfig(
            epochs=10,
            batch_size=8,
            early_stopping_patience=2,
            monitor=Monitor.VAL_ACCURACY,
            warmup_fraction=0.0,
        ),
    )
    result = train(cfg, workspace=tmp_path / "ws")
    epochs = [r for r in RunDir(result.run_dir).metrics() if r["type"] == "epoch"]
    assert len(epochs) < 10
    assert "Early stopping" in RunDir(result.run_dir).summary()["stop_reason"]


def test_lora_on_vision_transformers_trains_saves_an_adapter_and_predicts(shapes, tmp_path):
    from transformers import ViTConfig, ViTModel

    from engine.evaluation import Predictor
    from engine.models.lora import lora_candidates

    hf_vit = tmp_path / "tiny-hf-vit"
    ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(str(hf_vit))
    for backbone, targets in (("timm:test_vit", ["qkv"]), (str(hf_vit), ["q_proj", "v_proj"])):
        cfg = tiny_config(shapes, method=Method.LORA, epochs=1).replace(
            model=ModelConfig(backbone=backbone, pretrained=False)
        )
        events = []
        result = train(cfg, workspace=tmp_path / "ws", on_event=events.append)
        assert result.status is RunStatus.COMPLETED, result.error
        run = RunDir(result.run_dir)
        adapter = json.loads((run.path / "adapter" / "adapter_config.json").read_text())
        assert {name.rpartition(".")[2] for name in adapter["target_modules"]} == set(targets)
        started = next(e for e in events if isinstance(e, RunStarted))
        assert started.trainable_params < started.total_params / 5
        predictor = Predictor(run)
        assert lora_candidates(predictor.model)
        images = sorted(shapes.rglob("*.png"))[:2]
        assert all(not p.error for p in predictor.predict(images))
