"""The recipe advisor's recording pass in onnxruntime: one exported graph whose outputs are the
features, the pooled boundaries and the cut maps; the same recording (and advice) as torch's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic import make_shapes_folder

from engine.config import Device, DeviceConfig, ModelConfig, Runtime

TINY = "timm:test_efficientnet"


def _setup(tmp_path: Path):
    from engine.advice.split import verified_boundaries
    from engine.data import ImageDataset, build_transform
    from engine.data.scan import scan_folder
    from engine.models import build_model
    from engine.training.devices import resolve_placement

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=TINY, pretrained=False), 2).eval()
    data = make_shapes_folder(tmp_path / "shapes", per_class=5)
    train = list(scan_folder(data).samples)
    pre = model.preprocess
    transforms = (build_transform(pre, train=False), build_transform(pre, train=True))
    ds = ImageDataset(train[:2], transforms[0])
    bounds, _ = verified_boundaries(model, torch.stack([ds[i][0] for i in range(2)]))
    placement = resolve_placement(DeviceConfig(device=Device.CPU))
    return model, train, transforms, bounds, placement


def _taps(model, bounds, cuts, placement, cache: Path, runtime=Runtime.ONNXRUNTIME):
    from engine.frozen.taps import TapForward

    lines: list[tuple[str, str]] = []
    taps = TapForward(
        model,
        full=[c.module for c in cuts],
        pooled=[b.module for b in bounds],
        placement=placement,
        runtime=runtime,
        cache_dir=cache,
        key_parts={"backbone": TINY, "test": True},
        log=lambda text, level: lines.append((level, text)),
        what="the recipe advisor's pass",
    )
    return taps, lines


def _record(model, train, transforms, bounds, cuts, placement, views, taps=None):
    from engine.advice.record import record

    return record(
        model,
        train,
        train[:3],
        transforms=transforms,
        boundaries=bounds,
        cuts=cuts,
        views=views,
        seed=1,
        placement=placement,
        channels_last=False,
        workers=0,
        batch_size=4,
        taps=taps,
    )


def _assert_same(got, want) -> None:
    """Equal within the export check's tolerance (activations are kept in half precision)."""
    close = dict(rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(got.features, want.features, **close)
    torch.testing.assert_close(got.val_features, want.val_features, **close)
    assert got.pooled.keys() == want.pooled.keys() and got.pooled
    for m in want.pooled:
        torch.testing.assert_close(got.pooled[m], want.pooled[m], **close)
    assert got.activations.keys() == want.activations.keys() and got.activations
    for m in want.activations:
        torch.testing.assert_close(got.activations[m], want.activations[m], **close)
        torch.testing.assert_close(got.val_activations[m], want.val_activations[m], **close)
    assert torch.equal(got.labels, want.labels) and got.views == want.views


def test_the_onnxruntime_recording_is_the_torch_one(tmp_path: Path) -> None:
    """record() and add_views() through one exported graph give torch's recording: features,
    pooled depths, cut maps and the validation images' features and maps."""
    from engine.advice.record import add_views

    model, train, transforms, bounds, placement = _setup(tmp_path)
    cuts = [bounds[-3], bounds[-4]]
    want = _record(model, train, transforms, bounds, cuts, placement, views=2)
    taps, lines = _taps(model, bounds, cuts, placement, tmp_path / "onnx")
    clean = _record(model, train, transforms, bounds, cuts, placement, views=1, taps=taps)
    assert taps.name == "onnxruntime"
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1  # one graph for every output
    assert [level for level, _ in lines] == ["info"] and "checked against torch" in lines[0][1]
    got = add_views(
        model,
        clean,
        train,
        train_transform=transforms[1],
        cuts=cuts,
        views=2,
        seed=1,
        placement=placement,
        channels_last=False,
        workers=0,
        batch_size=4,
        taps=taps,
    )
    _assert_same(got, want)
    # the torch runner's outputs are whole maps, onnxruntime's pooled ones are pooled already
    assert taps.outputs[bounds[0].module].ndim == 2
    assert taps.outputs[cuts[0].module].ndim == 4


def test_a_failed_check_falls_back_to_torch_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.frozen.onnx as onnx_module

    model, train, transforms, bounds, placement = _setup(tmp_path)
    cuts = [bounds[-3]]
    want = _record(model, train, transforms, bounds, cuts, placement, views=1)
    monkeypatch.setattr(onnx_module, "TOLERANCE", -1.0)  # every output "differs"
    taps, lines = _taps(model, bounds, cuts, placement, tmp_path / "onnx")
    got = _record(model, train, transforms, bounds, cuts, placement, views=1, taps=taps)
    assert taps.name == "torch"
    assert len(lines) == 1 and lines[0][0] == "warning"
    assert lines[0][1].startswith("The recipe advisor's pass runs in torch: onnxruntime's")
    assert not list((tmp_path / "onnx").glob("*.onnx"))  # a graph that failed is not kept
    torch.testing.assert_close(got.features, want.features)
    torch.testing.assert_close(got.activations, want.activations)


def test_runtime_torch_never_exports(tmp_path: Path) -> None:
    model, train, transforms, bounds, placement = _setup(tmp_path)
    taps, lines = _taps(model, bounds, [bounds[-3]], placement, tmp_path / "onnx", Runtime.TORCH)
    _record(model, train[:4], transforms, bounds, [bounds[-3]], placement, views=1, taps=taps)
    assert taps.name == "torch" and not lines and not (tmp_path / "onnx").exists()


def test_a_runner_missing_a_cut_is_refused(tmp_path: Path) -> None:
    model, train, transforms, bounds, placement = _setup(tmp_path)
    taps, _ = _taps(model, bounds, [bounds[-3]], placement, tmp_path / "onnx")
    with pytest.raises(ValueError, match="does not record"):
        _record(model, train, transforms, bounds, [bounds[-4]], placement, views=1, taps=taps)


@pytest.mark.slow
def test_refit_train_gives_the_same_advice_in_both_runtimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`refit train DIR` (Recommended) chooses the same recipe, from the same depth scores and
    trials, whether the advisor's passes (the clean views, then the augmented ones for the
    trials) ran in torch or onnxruntime."""
    from engine.advice import recommend
    from engine.cli import main as refit

    monkeypatch.setattr(recommend, "PROBE_GOOD_ENOUGH", 1.01)  # always try a partial fine-tune
    monkeypatch.setattr(recommend, "TRIAL_EPOCHS", 1)
    monkeypatch.setattr(recommend, "FINAL_EPOCHS", 1)
    monkeypatch.setattr(recommend, "TRIED_GROUPS", (2,))
    monkeypatch.setattr(recommend, "AUGMENTED_VIEWS", 1)
    monkeypatch.setattr(recommend, "holdout_probe", lambda *a: -1.0)  # the probe "loses"
    data = make_shapes_folder(tmp_path / "shapes", per_class=10)
    advice = {}
    for runtime in ("torch", "onnxruntime"):
        ws = tmp_path / f"ws-{runtime}"
        args = ["--workspace", str(ws), "train", str(data), "--backbone", TINY, "--seed", "1"]
        args += ["--no-pretrained", "--runtime", runtime, "--workers", "0", "--quiet"]
        assert refit(args) == 0
        (run,) = (ws / "runs").iterdir()
        advice[runtime] = json.loads((run / "advice.json").read_text())
    want, got = advice["torch"], advice["onnxruntime"]
    assert got["method"] == want["method"] and got["reason"] == want["reason"]
    assert (got["last_n"], got["cut"]) == (want["last_n"], want["cut"])
    assert [t["trained_groups"] for t in got["trials"]] == [2]
    for a, b in zip(got["trials"], want["trials"], strict=True):
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=0.06)  # one held-out image
    for a, b in zip(got["depths"], want["depths"], strict=True):
        assert a["cv_accuracy"] == pytest.approx(b["cv_accuracy"], abs=0.06)
    assert list((tmp_path / "ws-onnxruntime" / "cache" / "onnx").glob("*.onnx"))
    assert not (tmp_path / "ws-torch" / "cache" / "onnx").exists()


def test_a_prefix_only_graph_stops_at_the_cut(tmp_path: Path) -> None:
    """features=False (a cached-prefix run): the graph holds only the layers up to the cut and
    gives torch's activations there."""
    from engine.frozen.taps import TapForward

    model, train, transforms, bounds, placement = _setup(tmp_path)
    cut = bounds[1]
    want = _record(model, train, transforms, [], [cut], placement, views=1)
    sizes = {}
    for features in (True, False):
        taps = TapForward(
            model,
            full=[cut.module],
            pooled=[],
            placement=placement,
            runtime=Runtime.ONNXRUNTIME,
            cache_dir=tmp_path / f"onnx-{features}",
            key_parts={"backbone": TINY},
            features=features,
        )
        got = _record(model, train, transforms, [], [cut], placement, views=1, taps=taps)
        assert taps.name == "onnxruntime"
        (path,) = (tmp_path / f"onnx-{features}").glob("*.onnx")
        sizes[features] = path.stat().st_size
        torch.testing.assert_close(
            got.activations[cut.module], want.activations[cut.module], rtol=1e-3, atol=1e-3
        )
    assert got.features.shape == (len(train), 0)
    assert sizes[False] < sizes[True] / 2  # the later layers' weights are not in it
