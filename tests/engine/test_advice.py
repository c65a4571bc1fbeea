"""The Recommended method: cutting a network at a group boundary, the cached-prefix pipeline,
and the recipe the advisor chooses (on training images only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from synthetic import make_scans_folder, make_shapes_folder
from torch import nn

from engine.config import (
    AdaptConfig,
    AugmentConfig,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)

TINY = "timm:test_efficientnet"


def _model(backbone: str = TINY, classes: int = 2):
    from engine.models import build_model

    return build_model(ModelConfig(backbone=backbone, pretrained=False), classes)


@pytest.mark.parametrize("backbone", [TINY, "resnet18", "timm:vit_tiny_patch16_224"])
def test_every_boundary_of_a_chain_network_reproduces_its_output(backbone: str) -> None:
    from engine.advice.split import Recorder, boundaries, dummy_input, suffix_only

    model = _model(backbone).eval()
    size = model.preprocess.input_size
    x = torch.randn(2, 3, size, size)
    bounds = boundaries(model)
    assert len(bounds) == len([g for g in model.groups if g.name != "head"])
    names = sorted({m for b in bounds for m in b.prefix_modules})
    with torch.inference_mode(), Recorder(model, names) as rec:
        full = model(x)
    for b in bounds:
        with torch.inference_mode(), suffix_only(model, b, rec.outputs[b.module], rec.shapes):
            got = model(dummy_input(2, 8, x.device))
        torch.testing.assert_close(got, full, rtol=1e-3, atol=1e-4)
    # the stubs are gone afterwards: the real network runs again
    with torch.inference_mode():
        torch.testing.assert_close(model(x), full)


class _Skip(nn.Module):
    """A backbone whose last block also reads the stem's output (a skip across blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.last = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        return (self.last(self.block(s)) + s).mean(dim=(2, 3))


def test_a_cut_that_a_skip_connection_crosses_is_not_offered() -> None:
    from engine.advice.split import verified_boundaries
    from engine.models.catalog import resolve_entry
    from engine.models.classifier import Classifier

    entry = resolve_entry("efficientnet_lite0")
    backbone = _Skip()
    spec = [(name, [f"{name}.weight", f"{name}.bias"]) for name in ("stem", "block", "last")]
    model = Classifier(
        backbone, 4, 2, entry=entry, preprocess=entry.preprocess, backbone_groups=spec
    )
    good, _ = verified_boundaries(model, torch.randn(2, 3, 16, 16))
    # the skip carries the stem's output past "block" and "last": cutting after either would
    # lose it, so only the cut right after the stem (where the skip starts) is offered
    assert [b.group for b in good] == ["stem"]


def _config(data: Path, **adapt) -> RunConfig:
    return RunConfig(
        seed=1,
        data=DataConfig(path=str(data), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        adapt=AdaptConfig(**adapt),
        schedule=ScheduleConfig(epochs=3, batch_size=8, warmup_fraction=0.0),
        augment=AugmentConfig(cache_views=2),
    ).validate()


LOGS: dict[str, list[str]] = {}


def _train(config: RunConfig, workspace: Path):
    """Train and keep the run's log lines (they are events, not files) for ``_log``."""
    from engine.events import LogMessage
    from engine.training.trainer import train

    lines: list[str] = []
    result = train(
        config,
        workspace=workspace,
        on_event=lambda e: lines.append(e.text) if isinstance(e, LogMessage) else None,
    )
    LOGS[str(Path(result.run_dir))] = lines
    return result


def _log(run: Path) -> str:
    return "\n".join(LOGS[str(run)])


def test_a_cached_prefix_run_trains_the_real_network(tmp_path: Path) -> None:
    """Training the suffix on cached activations gives a model whose full-network validation
    accuracy is the one the run reported."""
    from engine.evaluation import evaluate_run

    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    cfg = _config(data, method=Method.LAST_N, last_n=2, cache_prefix=True)
    result = _train(cfg, workspace=tmp_path / "ws")
    assert result.status == "completed"
    assert "Computing the frozen layers" in _log(Path(result.run_dir))
    from engine.runs import Workspace

    run = Workspace(tmp_path / "ws").open_run(result.run_dir)
    report = evaluate_run(run, reuse=False)
    assert report.accuracy == pytest.approx(result.best_metrics["val_accuracy"])


def _advice(run: Path) -> dict:
    return json.loads((run / "advice.json").read_text())


@pytest.mark.slow  # the advisor, then a training
def test_recommended_on_easy_images_keeps_the_probe_and_says_why(tmp_path: Path) -> None:

    data = make_scans_folder(tmp_path / "scans", per_class=12)
    result = _train(_config(data), workspace=tmp_path / "ws")
    run = Path(result.run_dir)
    saved = RunConfig.load(run / "config.json")
    advice = _advice(run)
    assert result.status == "completed"
    assert saved.adapt.method is Method.LINEAR_PROBE  # the resolved recipe, not "auto"
    assert saved.adapt.reason and saved.adapt.reason == advice["reason"]
    model = _model()
    body = [g.name for g in model.groups if g.name != "head"]
    assert [d["group"] for d in advice["depths"]] == body
    assert all(0.0 <= d["cv_accuracy"] <= 1.0 for d in advice["depths"])
    # the advisor's pass is the probe's feature cache: no second pass over the images
    assert "Computing backbone features" not in _log(run)


# slow: trains a recommended run with trials, then replays its recipe
@pytest.mark.slow
def test_recommended_tries_partial_fine_tunes_and_a_replay_runs_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.advice import recommend

    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 1.01)  # always try
    monkeypatch.setattr(recommend, "TRIAL_EPOCHS", 2)
    monkeypatch.setattr(recommend, "FINAL_EPOCHS", 2)
    monkeypatch.setattr(recommend, "AUGMENTED_VIEWS", 1)
    monkeypatch.setattr(recommend, "holdout_probe", lambda *a: -1.0)  # the probe "loses"
    monkeypatch.setattr(recommend, "cv_accuracy", lambda *a: -1.0)  # ...on both its scores
    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    result = _train(_config(data), workspace=tmp_path / "ws")
    run = Path(result.run_dir)
    saved = RunConfig.load(run / "config.json")
    advice = _advice(run)
    assert result.status == "completed"
    assert [t["trained_groups"] for t in advice["trials"]] == [2, 3, 4][: len(advice["trials"])]
    assert advice["trials"], "no partial fine-tune was tried"
    assert saved.adapt.method is Method.LAST_N and saved.adapt.cache_prefix
    assert saved.adapt.last_n == advice["last_n"] in {t["trained_groups"] for t in advice["trials"]}
    assert 1e-4 <= saved.optim.lr <= 1e-2 and advice["lr_curve"]["lrs"]
    assert saved.augment.cache_views == 2 and saved.schedule.epochs == 2
    assert "reused from the recipe advisor" in _log(run)
    # every loop setting the recipe changed is one the app greys out as chosen by Recommended
    from engine.advice.evidence import CHOSEN_FIELDS

    given = _config(data)
    changed = {
        (section, name)
        for section in ("optim", "schedule")
        for name, value in vars(getattr(saved, section)).items()
        if getattr(getattr(given, section), name) != value
    }
    assert changed and changed <= CHOSEN_FIELDS
    # replaying the run's config.json runs the resolved recipe, with no advice step
    again = _train(saved, workspace=tmp_path / "ws2")
    assert not (Path(again.run_dir) / "advice.json").exists()
    assert RunConfig.load(Path(again.run_dir) / "config.json") == saved


# slow: two recommended runs, one per dataset
@pytest.mark.slow
def test_the_validation_images_play_no_part_in_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two datasets with the same training images and different validation images get the
    same advice, number for number."""
    from engine.advice import recommend

    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 1.01)
    monkeypatch.setattr(recommend, "TRIAL_EPOCHS", 1)
    monkeypatch.setattr(recommend, "TRIED_GROUPS", (2,))
    monkeypatch.setattr(recommend, "AUGMENTED_VIEWS", 1)
    a = make_shapes_folder(tmp_path / "a", per_class=4, splits={"train": 10, "val": 4})
    b = tmp_path / "b"
    shutil.copytree(a / "train", b / "train")
    make_shapes_folder(tmp_path / "other", seed=9, splits={"val": 4})
    shutil.copytree(tmp_path / "other" / "val", b / "val")
    advice = []
    for data in (a, b):
        result = _train(_config(data), workspace=tmp_path / f"ws-{data.name}")
        got = _advice(Path(result.run_dir))
        advice.append({k: got[k] for k in ("depths", "probe_cv_accuracy", "trials", "reason")})
    for trial in advice[0]["trials"] + advice[1]["trials"]:
        trial.pop("seconds")
    assert advice[0] == advice[1]


def test_a_time_budget_stops_the_run_after_an_epoch(tmp_path: Path) -> None:

    data = make_shapes_folder(tmp_path / "shapes", per_class=8)
    cfg = _config(data, method=Method.LAST_N, last_n=1)
    cfg = cfg.replace(schedule=ScheduleConfig(epochs=40, batch_size=8, time_budget_min=0.0001))
    result = _train(cfg, workspace=tmp_path / "ws")
    summary = json.loads((Path(result.run_dir) / "summary.json").read_text())
    assert result.status == "completed"
    assert summary["epochs_done"] == 1
    assert "Time budget of 0.0001 min reached" in _log(Path(result.run_dir))


# slow: two recommended text runs with LoRA trials
@pytest.mark.slow
def test_recommended_on_texts_chooses_between_the_probe_and_lora(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random tiny BERT's features barely separate the classes: LoRA is chosen, and the
    replayed config trains adapters; a probe good enough keeps the linear probe."""
    from synthetic import make_text_table, make_tiny_bert

    from engine.advice import recommend

    torch.manual_seed(0)
    bert = make_tiny_bert(tmp_path / "tiny-bert")
    table = make_text_table(tmp_path / "data" / "messages.tsv", per_class=16)
    config = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(bert)),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    from engine.training import text_pipeline

    monkeypatch.setattr(text_pipeline, "MAX_TEXT_EPOCHS", 2)  # the rule's cap, kept fast here
    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 1.01)
    low = RunConfig.load(Path(_train(config, tmp_path / "ws1").run_dir) / "config.json")
    assert low.adapt.method is Method.LORA and "adapters" in low.adapt.reason
    assert low.schedule.epochs == 2  # Recommended chooses text_epochs, not the config's 1
    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 0.0)
    result = _train(config, tmp_path / "ws2")
    high = RunConfig.load(Path(result.run_dir) / "config.json")
    assert high.adapt.method is Method.LINEAR_PROBE and "texts" in high.adapt.reason
    # the advisor's feature pass is the probe's cache
    assert "Backbone features loaded from the cache" in _log(Path(result.run_dir))


def test_inner_folds_hold_every_image_out_once_and_decline_tiny_classes() -> None:
    from engine.advice.scores import inner_folds

    assert inner_folds(torch.tensor([0, 0, 0, 1, 1, 1]), 0, 800) is None  # 3 per class
    ten = torch.tensor([c for c in range(10) for _ in range(4)])
    folds = inner_folds(ten, 0, 800)
    assert len(folds) == 2
    for fit, held in folds:  # 4 per class: each half trains on 2 and holds out 2 of each
        assert sorted(ten[held].tolist()) == sorted(list(range(10)) * 2)
        assert not set(fit) & set(held)
    assert sorted(i for _, held in folds for i in held) == list(range(40))
    big = torch.tensor([0] * 700 + [1] * 300)
    folds = inner_folds(big, 0, 400)  # a stratified subset of 400 for larger sets
    assert sum(len(h) for _, h in folds) == 400
    assert sum(int(big[h].sum()) for _, h in folds) == 120


def test_a_run_stopped_while_choosing_its_recipe_is_not_resumed(tmp_path: Path) -> None:
    """Resuming it says why in one sentence and leaves the run's files as they were."""
    from engine.events import StageProgressed
    from engine.task import Task
    from engine.training.checkpoint import CheckpointError
    from engine.training.trainer import resume, train

    data = make_shapes_folder(tmp_path / "shapes", per_class=8)
    task = Task()

    def stop_in_advice(event: object) -> None:
        if isinstance(event, StageProgressed) and event.stage == "advice":
            task.cancel()

    result = train(_config(data), workspace=tmp_path / "ws", on_event=stop_in_advice, task=task)
    run = Path(result.run_dir)
    assert result.status == "cancelled"
    before = (run / "config.json").read_bytes()
    with pytest.raises(CheckpointError, match="still choosing its recipe"):
        resume(run, workspace=tmp_path / "ws")
    assert (run / "config.json").read_bytes() == before
    assert not (run / "advice.json").exists()


def test_adding_views_to_a_clean_recording_equals_recording_them_all(tmp_path: Path) -> None:
    """The advisor's second pass runs only the augmented views; the result is the recording a
    single pass over every view gives."""
    from engine.advice.record import add_views, record
    from engine.advice.split import verified_boundaries
    from engine.config import Device, DeviceConfig
    from engine.data import ImageDataset, build_transform
    from engine.data.scan import scan_folder
    from engine.training.devices import resolve_placement

    data = make_shapes_folder(tmp_path / "shapes", per_class=5)
    train = list(scan_folder(data).samples)
    model = _model().eval()
    pre = model.preprocess
    transforms = (build_transform(pre, train=False), build_transform(pre, train=True))
    ds = ImageDataset(train[:2], transforms[0])
    bounds, _ = verified_boundaries(model, torch.stack([ds[i][0] for i in range(2)]))
    cut = bounds[-3]
    common = dict(
        seed=1,
        placement=resolve_placement(DeviceConfig(device=Device.CPU)),
        channels_last=False,
        workers=0,
        batch_size=4,
    )
    once = record(
        model,
        train,
        train[:3],
        transforms=transforms,
        boundaries=bounds,
        cuts=[cut],
        views=3,
        **common,
    )
    clean = record(
        model,
        train,
        train[:3],
        transforms=transforms,
        boundaries=bounds,
        cuts=[cut],
        views=1,
        **common,
    )
    added = add_views(
        model, clean, train, train_transform=transforms[1], cuts=[cut], views=3, **common
    )
    torch.testing.assert_close(added.features, once.features)
    torch.testing.assert_close(added.activations[cut.module], once.activations[cut.module])
    torch.testing.assert_close(added.val_features, once.val_features)
    assert added.views == 3 and added.pooled.keys() == once.pooled.keys()
