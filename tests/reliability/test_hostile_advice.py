"""Holes a hostile tester found in the Recommended method (issue 11): out-of-memory during the
advisor's recording and trials, scores that could not be measured, --json at a folder,
adapt.cache_prefix with methods it cannot serve, and a run stopped at each advisor phase."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from synthetic import make_shapes_folder

from engine.config import (
    AdaptConfig,
    AugmentConfig,
    ConfigError,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)

TINY = "timm:test_efficientnet"


def _config(data: Path, **adapt) -> RunConfig:
    return RunConfig(
        seed=1,
        data=DataConfig(path=str(data), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        adapt=AdaptConfig(**adapt),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
        augment=AugmentConfig(cache_views=2),
    ).validate()


def _model(classes: int = 2):
    from engine.models import build_model

    return build_model(ModelConfig(backbone=TINY, pretrained=False), classes)


# -- out of memory -------------------------------------------------------------------------------


def _record(model, train, val, cut, views=2):
    from engine.advice.record import record
    from engine.advice.split import boundaries
    from engine.config import Device, DeviceConfig
    from engine.data import build_transform
    from engine.training.devices import resolve_placement

    bounds = boundaries(model)
    t = build_transform(model.preprocess, train=False)
    return record(
        model,
        train,
        val,
        transforms=(t, t),
        boundaries=bounds,
        cuts=[bounds[cut]],
        views=views,
        seed=0,
        placement=resolve_placement(DeviceConfig(device=Device.CPU)),
        channels_last=False,
        workers=0,
        batch_size=8,
    ), bounds[cut].module


@pytest.mark.slow  # the advisor's recording, twice
def test_a_recording_batch_retried_after_an_out_of_memory_is_recorded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try of a batch runs out of memory on its second piece after the first piece was
    recorded; the retry must not record that piece twice (it did: a shape error, or features
    out of step with their labels)."""
    from engine.data import scan_folder

    data = make_shapes_folder(tmp_path / "shapes", per_class=5, size=32)
    samples = list(scan_folder(data).samples)
    train, val = samples[:7], samples[7:]
    model = _model().eval()
    clean, cut = _record(model, train, val, cut=2)
    backbone = type(model.backbone)
    forward = backbone.forward
    calls = {"n": 0}

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] in (1, 3):  # whole batch, then the second half of it
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(self, x)

    monkeypatch.setattr(backbone, "forward", flaky)
    got, _ = _record(model, train, val, cut=2)
    assert calls["n"] > 3
    torch.testing.assert_close(got.features, clean.features)
    torch.testing.assert_close(got.activations[cut], clean.activations[cut])
    for m, x in clean.pooled.items():
        torch.testing.assert_close(got.pooled[m], x)
    torch.testing.assert_close(got.val_activations[cut], clean.val_activations[cut])


@pytest.mark.slow
def test_a_trial_out_of_memory_falls_back_to_the_probe_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.advice import recommend
    from engine.advice.standalone import advise
    from engine.events import LogMessage

    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 1.01)  # always try
    monkeypatch.setattr(recommend, "AUGMENTED_VIEWS", 1)

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(recommend.ImageAdvisor, "_trial", no_memory)
    data = make_shapes_folder(tmp_path / "shapes", per_class=8, size=32)
    logs: list[str] = []
    advice = advise(
        _config(data),
        workspace=tmp_path / "ws",
        on_event=lambda e: logs.append(e.text) if isinstance(e, LogMessage) else None,
    )
    assert advice.config.adapt.method is Method.LINEAR_PROBE and not advice.trials
    assert "ran out of memory" in advice.reason
    assert any("Out of memory" in line for line in logs)


# -- scores that could not be measured -----------------------------------------------------------

NULL_ADVICE = {
    "reason": "Too few training images per class to compare recipes: only the head is trained.",
    "method": "linear-probe",
    "depths": [
        {"group": "stem", "index": 0, "dim": 8, "cv_accuracy": None},
        {"group": "block0", "index": 1, "dim": 16, "cv_accuracy": 0.5},
    ],
    "probe_cv_accuracy": None,
    "probe_holdout_accuracy": None,
    "trials": [{"group": "stem", "trained_groups": 2, "lr": 1e-3, "accuracy": None, "loss": 1}],
    "lr_curve": None,
}


def test_refit_prints_advice_whose_scores_are_null(capsys: pytest.CaptureFixture) -> None:
    """advice.json stores an unmeasured score as null; printing it raised a TypeError."""
    from engine.cli.reports import print_advice

    print_advice(NULL_ADVICE)
    out = capsys.readouterr().out
    assert "n/a" in out and "0.500" in out and "Recommended: linear-probe" in out


def test_the_advice_chart_draws_a_null_score_as_a_gap(qtbot) -> None:
    from desktop.layers.advice_panel import AdvicePanelWidget

    panel = AdvicePanelWidget()
    qtbot.addWidget(panel)
    panel.set_advice(NULL_ADVICE, 2)
    _, ys = panel.depth_curve.getData()
    assert torch.isnan(torch.tensor(ys[0])) and ys[1] == pytest.approx(50.0)


# -- --json ---------------------------------------------------------------------------------------


def test_json_at_a_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    from engine.cli.config_flags import json_target

    data = make_shapes_folder(tmp_path / "shapes", per_class=2, size=16)
    out = tmp_path / "out"
    out.mkdir()
    cfg = _config(data)
    with pytest.raises(ConfigError, match="is a folder"):
        json_target(str(out), cfg)
    with pytest.raises(ConfigError, match="inside the dataset"):
        json_target(str(data / "circle" / "advice.json"), cfg)
    assert json_target(str(out / "advice.json"), cfg) == (out / "advice.json").resolve()


# -- adapt.cache_prefix ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "frozen", "text", "says"),
    [
        ("full", [], False, "freezes no layers"),
        ("lora", ["stem", "block0"], False, "adapters sit inside"),
        ("custom", ["block1"], False, "come first"),
        ("last-n", ["stem"], True, "images only"),
    ],
)
def test_cache_prefix_that_cannot_apply_says_why(method, frozen, text, says) -> None:
    from engine.modalities import IMAGE, TEXT
    from engine.training.prefix_pipeline import uncached

    assert says in uncached(method, _model(), frozen, TEXT if text else IMAGE)


def test_frozen_groups_listed_in_any_order_are_still_a_cacheable_prefix(tmp_path: Path) -> None:
    from engine.config import Device, DeviceConfig
    from engine.data import scan_folder
    from engine.training.devices import resolve_placement
    from engine.training.prefix_pipeline import prefix_cut

    data = make_shapes_folder(tmp_path / "shapes", per_class=2, size=32)
    trainer = SimpleNamespace(
        data=SimpleNamespace(train=list(scan_folder(data).samples)),
        config=SimpleNamespace(seed=0),
        placement=resolve_placement(DeviceConfig(device=Device.CPU)),
    )
    model = _model().eval()
    cut = prefix_cut(trainer, model, ["block0", "stem"])
    assert cut is not None and cut[0].group == "block0"
    assert prefix_cut(trainer, model, ["block1"]) is None


# -- a run stopped in each advisor phase ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["augmented views", "Tried fine-tuning"])
def test_a_run_stopped_in_any_advisor_phase_is_cancelled_and_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    from engine.advice import recommend
    from engine.events import LogMessage
    from engine.task import Task
    from engine.training.checkpoint import CheckpointError
    from engine.training.trainer import resume, train

    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 1.01)
    monkeypatch.setattr(recommend, "TRIAL_EPOCHS", 1)
    monkeypatch.setattr(recommend, "AUGMENTED_VIEWS", 1)
    data = make_shapes_folder(tmp_path / "shapes", per_class=8, size=32)
    task = Task()

    def stop(event: object) -> None:
        if isinstance(event, LogMessage) and phase in event.text:
            task.cancel()

    result = train(_config(data), workspace=tmp_path / "ws", on_event=stop, task=task)
    run = Path(result.run_dir)
    assert result.status == "cancelled"
    assert json.loads((run / "config.json").read_text())["adapt"]["method"] == "auto"
    with pytest.raises(CheckpointError, match="still choosing its recipe"):
        resume(run, workspace=tmp_path / "ws")
    assert not (run / "advice.json").exists()


# -- the honest warning on a text run -------------------------------------------------------------


def test_a_text_run_that_learned_nothing_is_not_told_about_images() -> None:
    from engine.training.honesty import run_warnings

    logits = torch.tensor([[1.0, 0.0]] * 6)
    targets = torch.tensor([0, 1, 0, 1, 0, 1])
    (text,) = run_warnings(logits, targets, ("a", "b"), "text")
    assert "6 validation texts" in text and "intensity" not in text and "images" not in text
    (image,) = run_warnings(logits, targets, ("a", "b"))
    assert "6 validation images" in image and "data.intensity" in image
