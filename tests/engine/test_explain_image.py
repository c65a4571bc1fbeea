"""Grad-CAM heatmaps: they point at the region that drives the class, on convnets and vision
transformers (LoRA too), and explaining never changes the model."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from synthetic import make_shapes_folder
from torch import nn

from engine.config import AdaptConfig, Method, ModelConfig
from engine.data import ImageError, build_transform, load_image
from engine.evaluation.explain import (
    ExplainError,
    Heatmap,
    can_explain,
    image_heatmaps,
    overlay,
    token_influence,
)
from engine.evaluation.predict import Predictor
from engine.models import build_model
from engine.models.lora import apply_lora

QUADRANTS = ("tl", "tr", "bl", "br")


def predictor_of(model, classes=("blob", "plain")) -> Predictor:
    """A Predictor around a model in memory, set up as Predictor(run) sets up a trained one."""
    predictor = Predictor.__new__(Predictor)
    predictor.classes = list(classes)
    predictor.device = torch.device("cpu")
    predictor.model = model.eval()
    predictor.modality = model.modality
    predictor.transform = build_transform(model.preprocess, train=False)
    return predictor


def blob_image(path, corner: str, size: int) -> str:
    """A grey square with a red disc near one corner ("tl", "tr", "bl" or "br")."""
    image = Image.new("RGB", (size, size), (235, 235, 235))
    r, near, far = size // 8, size // 5, size - size // 5
    cx = near if corner[1] == "l" else far
    cy = near if corner[0] == "t" else far
    ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=(210, 30, 30))
    image.save(path)
    return str(path)


def quadrant_share(cam: np.ndarray, corner: str) -> float:
    h, w = cam.shape
    rows = slice(0, h // 2) if corner[0] == "t" else slice(h // 2, h)
    cols = slice(0, w // 2) if corner[1] == "l" else slice(w // 2, w)
    return float(cam[rows, cols].sum() / cam.sum())


def blob_detector(backbone: str, tmp_path, *, pretrained: bool) -> Predictor:
    """A classifier whose head reads "red disc" vs "plain grey": the head is the difference of
    the backbone's features on disc images (discs in two other corners) and on a plain image."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, pretrained=pretrained), 2)
    predictor = predictor_of(model)
    size = model.preprocess.input_size
    plain = tmp_path / "plain.png"
    Image.new("RGB", (size, size), (235, 235, 235)).save(plain)
    examples = [blob_image(tmp_path / f"fit_{c}.png", c, size) for c in ("tr", "bl")]
    x = torch.stack([predictor.transform(load_image(p)) for p in [*examples, plain]])
    with torch.no_grad():
        features = model.eval().forward_features(x)
        direction = features[:2].mean(0) - features[2]
        model.head[1].weight.copy_(torch.stack([direction, -direction]))
        model.head[1].bias.zero_()
    return predictor


def snapshot(model: nn.Module) -> dict:
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "flags": {k: p.requires_grad for k, p in model.named_parameters()},
        "modes": {k: m.training for k, m in model.named_modules()},
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["flags"] == before["flags"]
    assert after["modes"] == before["modes"]
    assert after["weights"].keys() == before["weights"].keys()
    for key, value in before["weights"].items():
        assert torch.equal(after["weights"][key], value), key


@pytest.fixture(scope="module")
def starter_blobs(tmp_path_factory):
    return blob_detector("efficientnet_lite0", tmp_path_factory.mktemp("starter"), pretrained=True)


def test_starter_heatmap_lies_on_the_disc_that_drives_the_class(starter_blobs, tmp_path):
    for corner in ("tl", "br"):
        [hm] = image_heatmaps(starter_blobs, [blob_image(tmp_path / f"{corner}.png", corner, 224)])
        assert hm.target == "blob" and hm.probability > 0.9
        shares = {q: quadrant_share(hm.cam, q) for q in QUADRANTS}
        assert shares[corner] > 0.6, shares
        assert max(shares, key=shares.get) == corner
        assert hm.method == "Grad-CAM (captum LayerGradCam on bn2)"


def test_heatmap_is_what_the_model_saw_normalised_to_one(starter_blobs, tmp_path):
    path = tmp_path / "wide.png"
    image = Image.new("RGB", (400, 260), (235, 235, 235))
    ImageDraw.Draw(image).ellipse([150, 90, 230, 170], fill=(210, 30, 30))
    image.save(path)
    [hm] = image_heatmaps(starter_blobs, [str(path)])
    assert hm.ref == str(path)
    assert hm.image.mode == "RGB" and hm.image.size == (224, 224)
    assert hm.cam.shape == (224, 224) and hm.cam.dtype == np.float32
    assert hm.cam.min() >= 0.0 and hm.cam.max() == pytest.approx(1.0)
    # normalising the heatmap's image gives exactly the tensor the model classified
    pre = starter_blobs.model.preprocess
    seen = torch.from_numpy(np.array(hm.image)).permute(2, 0, 1).float() / 255
    seen = (seen - torch.tensor(pre.mean)[:, None, None]) / torch.tensor(pre.std)[:, None, None]
    assert torch.allclose(seen, starter_blobs.transform(load_image(path)), atol=1e-5)


def test_heatmaps_report_each_image_and_stop_when_cancelled(starter_blobs, tmp_path):
    from engine.task import Cancelled, Task

    paths = [blob_image(tmp_path / f"{c}.png", c, 224) for c in ("tl", "br")]
    seen = []
    image_heatmaps(starter_blobs, paths, task=Task(seen.append, rate_hz=0))
    assert [(p.done, p.total) for p in seen] == [(1, 2), (2, 2)]
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        image_heatmaps(starter_blobs, paths, task=task)


def test_vision_transformer_heatmap_reads_the_patch_grid(tmp_path):
    predictor = blob_detector("timm:test_vit", tmp_path, pretrained=False)
    size = predictor.model.preprocess.input_size
    paths = [blob_image(tmp_path / f"{c}.png", c, size) for c in ("tl", "br")]
    heatmaps = image_heatmaps(predictor, paths)
    for hm, corner in zip(heatmaps, ("tl", "br"), strict=True):
        assert hm.cam.shape == (size, size)
        assert quadrant_share(hm.cam, corner) > 0.6
        assert hm.method == "Grad-CAM (captum LayerGradCam on the patch tokens entering blocks.5)"


@pytest.mark.parametrize("backbone", ["timm:test_efficientnet", "timm:test_vit"])
def test_explaining_a_frozen_model_in_train_mode_changes_nothing(backbone, tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, pretrained=False), 3)
    for p in model.backbone.parameters():
        p.requires_grad_(False)  # as a linear probe leaves it
    predictor = predictor_of(model, ("a", "b", "c"))
    model.train()
    before = snapshot(model)
    path = blob_image(tmp_path / "x.png", "tl", 64)
    with torch.inference_mode():  # a caller in inference mode still gets gradients
        [hm] = image_heatmaps(predictor, [path], target=2)
    assert hm.target == "c" and hm.cam.max() == pytest.approx(1.0)
    assert_unchanged(model, before)
    assert model.training


@pytest.mark.parametrize(
    ("backbone", "method_ends"),
    [
        ("timm:test_efficientnet", "on bn2)"),
        ("timm:test_convnext", "on stages)"),
        ("resnet18", "on layer4)"),
    ],
)
def test_the_last_feature_map_is_found_without_layer_names(backbone, method_ends, tmp_path):
    torch.manual_seed(0)
    predictor = predictor_of(build_model(ModelConfig(backbone=backbone, pretrained=False), 2))
    assert can_explain(predictor) == ""
    paths = [blob_image(tmp_path / f"{c}.png", c, 96) for c in ("tl", "br")]
    heatmaps = image_heatmaps(predictor, paths)
    size = predictor.model.preprocess.input_size
    assert [hm.ref for hm in heatmaps] == paths
    for hm in heatmaps:
        assert hm.method.endswith(method_ends)
        assert hm.cam.shape == (size, size) and 0.0 <= hm.cam.min() <= hm.cam.max() <= 1.0
        assert np.isfinite(hm.cam).all()


def test_lora_vision_transformers_explain_and_keep_their_adapters(tmp_path):
    from transformers import ViTConfig, ViTModel

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
    path = blob_image(tmp_path / "x.png", "tl", 64)
    for backbone, where in (("timm:test_vit", "blocks.5"), (str(hf_vit), "model.layers.1")):
        torch.manual_seed(0)
        model = build_model(ModelConfig(backbone=backbone, pretrained=False), 2)
        apply_lora(model, AdaptConfig(method=Method.LORA))
        with torch.no_grad():  # adapters that do something, as after training
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.1)
        predictor = predictor_of(model)
        before = snapshot(model)
        [hm] = image_heatmaps(predictor, [path], target=1)
        assert hm.method.endswith(f"the patch tokens entering {where})")
        assert hm.target == "plain" and hm.cam.max() == pytest.approx(1.0)
        assert_unchanged(model, before)


@pytest.mark.slow
def test_torchvision_vit_uses_its_last_encoder_layer(tmp_path):
    predictor = predictor_of(build_model(ModelConfig(backbone="vit_b_16", pretrained=False), 2))
    [hm] = image_heatmaps(predictor, [blob_image(tmp_path / "x.png", "tl", 224)])
    assert hm.method.endswith("entering encoder.layers.encoder_layer_11)")
    assert hm.cam.shape == (224, 224)


def test_a_head_that_ignores_the_image_gives_an_all_zero_map(tmp_path):
    model = build_model(ModelConfig(backbone="timm:test_efficientnet", pretrained=False), 2)
    with torch.no_grad():
        model.head[1].weight.zero_()
    [hm] = image_heatmaps(predictor_of(model), [blob_image(tmp_path / "x.png", "tl", 64)])
    assert hm.cam.shape == (160, 160)
    assert not hm.cam.any()
    assert np.asarray(overlay(hm)).shape == (160, 160, 3)


def test_overlay_blends_a_dark_to_bright_colormap():
    image = Image.new("RGB", (4, 2), (100, 150, 200))
    cam = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]], dtype=np.float32)
    hm = Heatmap(ref="x", target="a", probability=0.9, image=image, cam=cam, method="m")
    assert overlay(hm, alpha=0.0).tobytes() == image.tobytes()
    full = np.asarray(overlay(hm, alpha=1.0)).astype(int)
    assert full[0, 0].sum() < 30  # cold: near black
    assert full[0, 3].tolist() == [252, 255, 164]  # hot: pale yellow
    assert full[1, 0].sum() < full[1, 1].sum() < full[1, 3].sum()
    half = np.asarray(overlay(hm)).astype(int)
    assert overlay(hm).size == image.size
    expected = np.rint(0.55 * np.array([100, 150, 200]) + 0.45 * np.array([252, 255, 164]))
    assert half[0, 3].tolist() == expected.astype(int).tolist()


def test_what_cannot_be_explained_says_so_in_one_sentence(tmp_path, monkeypatch):
    model = build_model(ModelConfig(backbone="timm:test_efficientnet", pretrained=False), 2)
    predictor = predictor_of(model)
    # pooled to 1x1 at once: no spatial map and no tokens
    model.backbone = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, model.num_features)
    )
    sentence = can_explain(predictor)
    assert sentence.endswith("cannot draw where it looks.") and sentence.count(". ") == 0
    with pytest.raises(ExplainError, match="cannot draw where it looks"):
        image_heatmaps(predictor, [blob_image(tmp_path / "x.png", "tl", 64)])
    with pytest.raises(ExplainError, match="reads images"):
        token_influence(predictor, "some text")
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    assert can_explain(predictor) == (
        "Explanations need the captum package; install it with: pip install captum."
    )


def test_an_unreadable_image_is_named_in_the_error(tmp_path):
    predictor = predictor_of(
        build_model(ModelConfig(backbone="timm:test_efficientnet", pretrained=False), 2)
    )
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match=r"broken\.png"):
        image_heatmaps(predictor, [str(bad)])
    with pytest.raises(ExplainError, match="no class number 5"):
        image_heatmaps(predictor, [blob_image(tmp_path / "x.png", "tl", 64)], target=5)


def test_a_trained_run_explains_its_validation_images(tmp_path):
    from engine.config import DataConfig, RunConfig, ScheduleConfig
    from engine.runs import RunDir
    from engine.training.trainer import train

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=6)
    config = RunConfig(
        seed=1,
        data=DataConfig(path=str(shapes), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    result = train(config, workspace=tmp_path / "ws")
    predictor = Predictor(RunDir(result.run_dir))
    assert can_explain(predictor) == ""
    images = sorted(str(p) for p in shapes.rglob("*.png"))[:3]
    heatmaps = image_heatmaps(predictor, images)
    predicted = [p.top[0] for p in predictor.predict(images)]
    for hm, (name, prob) in zip(heatmaps, predicted, strict=True):
        assert hm.target == name and hm.probability == pytest.approx(prob, abs=1e-5)
        assert hm.cam.shape == (160, 160)
