"""Explanations: Grad-CAM heatmaps for image runs, word influence for text runs (through captum).

Grad-CAM reads one spatial map of the backbone, found by a dry forward pass rather than by layer
names, so it works for any convnet or vision transformer the catalog can build:

- convnets: the last module whose output is a [B, C, h, w] map larger than 1x1 (NHWC maps, as
  Swin gives, are turned around), i.e. the final feature map before pooling;
- vision transformers: the patch tokens entering the last block of the main list of repeated
  blocks, without class, distillation or register tokens, laid out on the patch grid. The input of
  the last block rather than its output, because with class-token pooling only the class token
  of the last block's output reaches the head, while its input reaches it through attention.

The map is routed through a small probe module by temporary hooks, so captum always sees a
[B, C, h, w] tensor; the model's weights, requires_grad flags and eval mode are left as they were.
"""

from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from engine.evaluation.explain_text import (
    ExplainError,
    TokenInfluence,
    explain_mode,
    token_influence,
)
from engine.evaluation.predict import Predictor
from engine.modalities import modality_of
from engine.models.classifier import Classifier
from engine.task import Task, as_task

__all__ = [
    "ExplainError",
    "Heatmap",
    "TokenInfluence",
    "can_explain",
    "image_heatmaps",
    "overlay",
    "token_influence",
]

_BATCH = 8

# matplotlib's "inferno" at nine evenly spaced points; interpolated to a 256-entry table.
_INFERNO = (
    (0, 0, 4),
    (31, 12, 72),
    (85, 15, 109),
    (136, 34, 106),
    (186, 54, 85),
    (227, 89, 51),
    (249, 140, 10),
    (249, 201, 50),
    (252, 255, 164),
)


@dataclass(frozen=True)
class Heatmap:
    """Where the model looked for ``target`` in one image (Grad-CAM)."""

    ref: str
    target: str
    probability: float  # the model's probability of ``target`` for this image
    image: Image.Image  # what the model saw: resized + center-cropped RGB, not normalized
    cam: np.ndarray  # float32 [H, W] in [0, 1], the size of ``image``
    method: str


@dataclass(frozen=True)
class _Spot:
    """Where Grad-CAM reads: a module (by name in the backbone) and how its tensor is laid out."""

    name: str
    kind: str  # "nchw" or "nhwc": the module's output; "tokens": the input of a block
    prefix: int = 0  # tokens: class/distillation/register tokens before the patch tokens


_SPOTS: weakref.WeakKeyDictionary[nn.Module, tuple[int, _Spot | None]] = weakref.WeakKeyDictionary()


class _Probe(nn.Module):
    """The [B, C, h, w] map captum hooks; an identity that only exists during an explanation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def can_explain(predictor: Predictor) -> str:
    """An empty string when the run's predictions can be explained, else one sentence why not.

    For an image run the first call runs the backbone once on a blank image to find its map.
    """
    try:
        import captum.attr  # noqa: F401
    except ImportError:
        return "Explanations need the captum package; install it with: pip install captum."
    own = modality_of(predictor).explain_problem(predictor)
    if own is not None:
        return own
    if _spot(predictor) is None:
        return (
            f"{predictor.model.entry.display_name} gives neither a spatial feature map nor patch "
            "tokens, so Refit Studio cannot draw where it looks."
        )
    return ""


def image_heatmaps(
    predictor: Predictor,
    paths: Sequence[str],
    *,
    target: int | None = None,
    task: Task | None = None,
) -> list[Heatmap]:
    """One Grad-CAM heatmap per image, for class index ``target`` (None: the predicted class).

    Raises ImageError (one sentence naming the file) for an unreadable image and ExplainError
    for a text run or a backbone with no map to read. ``task`` gets ``(done, total)`` images
    and is checked before the first image and between batches (raising Cancelled).
    """
    from engine.data import load_image
    from engine.data.images import window_of

    task = as_task(task)
    task.check_cancelled()

    modality = modality_of(predictor)
    if not modality.heatmaps:
        raise ExplainError(f"Heatmaps explain image runs; this run reads {modality.noun}.")
    if target is not None and not 0 <= target < len(predictor.classes):
        raise ExplainError(
            f"There is no class number {target}; the run has {len(predictor.classes)}."
        )
    spot = _spot(predictor)
    if spot is None:
        raise ExplainError(can_explain(predictor))
    view = predictor.transform.view  # what the model sees, before it becomes a tensor
    min_size = getattr(predictor.transform, "min_size", None)
    window = window_of(predictor.transform)  # the run's DICOM window
    out: list[Heatmap] = []
    for batch in _batched([str(p) for p in paths], _BATCH):
        task.check_cancelled()
        originals = [load_image(p, min_size=min_size, window=window) for p in batch]
        seen = [view(im) for im in originals]
        x = torch.stack([predictor.transform.finish(im) for im in seen]).to(predictor.device)
        cams, targets, probs = _grad_cam(predictor.model, spot, x, target)
        for ref, im, cam, t, prob in zip(batch, seen, cams, targets, probs, strict=True):
            out.append(
                Heatmap(
                    ref=ref,
                    target=predictor.classes[t],
                    probability=prob,
                    image=im,
                    cam=_normalized(_resized(cam, im.size)),
                    method=_method(spot),
                )
            )
            task.report(len(out), len(paths))
    return out


def overlay(hm: Heatmap, alpha: float = 0.45) -> Image.Image:
    """The image with the heatmap blended over it in an inferno-like colormap."""
    alpha = min(max(float(alpha), 0.0), 1.0)
    base = np.asarray(hm.image.convert("RGB"), dtype=np.float32)
    cam = np.clip(np.nan_to_num(hm.cam), 0.0, 1.0)
    if cam.shape != base.shape[:2]:
        cam = _resized(cam, hm.image.size)
    colors = _lut()[np.rint(cam * 255).astype(np.uint8)]
    blended = (1.0 - alpha) * base + alpha * colors
    return Image.fromarray(np.rint(blended).clip(0, 255).astype(np.uint8), mode="RGB")


# -- Grad-CAM -----------------------------------------------------------------------------------


def _grad_cam(
    model: Classifier, spot: _Spot, x: torch.Tensor, target: int | None
) -> tuple[np.ndarray, list[int], list[float]]:
    """Grad-CAMs [B, h, w] after ReLU, the target class of each image and its probability."""
    from captum.attr import LayerGradCam

    probe = _Probe()
    with explain_mode(model):
        x = x.clone()  # an inference-mode caller's tensor cannot enter autograd
        with torch.no_grad():
            probs = model(x).float().softmax(dim=1)
        if target is None:
            targets = probs.argmax(dim=1)
        else:
            targets = torch.full((x.shape[0],), target, dtype=torch.long, device=x.device)
        with _routed(model.backbone, spot, probe):
            cam = LayerGradCam(model, probe).attribute(x, target=targets)
    cam = torch.relu(cam.detach().float()[:, 0])
    chosen = probs.gather(1, targets[:, None])[:, 0]
    return cam.cpu().numpy(), targets.tolist(), chosen.tolist()


@contextmanager
def _routed(backbone: nn.Module, spot: _Spot, probe: _Probe) -> Iterator[None]:
    """Send the spot's map through ``probe`` while the context lasts (hooks, removed after)."""
    module = backbone.get_submodule(spot.name)
    if spot.kind == "tokens":
        first = _first_parameter(module)

        def pre_hook(mod: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args:
                return (_through_grid(args[0], spot.prefix, probe), *args[1:]), kwargs
            kwargs = dict(kwargs)
            kwargs[first] = _through_grid(kwargs[first], spot.prefix, probe)
            return args, kwargs

        handle = module.register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:

        def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            if spot.kind == "nhwc":
                return probe(out.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            return probe(out)

        handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _through_grid(tokens: torch.Tensor, prefix: int, probe: _Probe) -> torch.Tensor:
    """Patch tokens [B, N, D] -> probe([B, D, h, w]) -> tokens again, prefix tokens untouched."""
    b, n, d = tokens.shape
    side = math.isqrt(n - prefix)
    if side * side != n - prefix:
        raise ExplainError(f"The {n - prefix} patch tokens do not form a square grid.")
    grid = tokens[:, prefix:].transpose(1, 2).reshape(b, d, side, side)
    patches = probe(grid).flatten(2).transpose(1, 2)
    return torch.cat([tokens[:, :prefix], patches], dim=1)


def _first_parameter(module: nn.Module) -> str:
    params = list(inspect.signature(module.forward).parameters)
    return params[0] if params else "hidden_states"


# -- finding the map ----------------------------------------------------------------------------


def _spot(predictor: Predictor) -> _Spot | None:
    """The backbone's Grad-CAM spot, found once per model (again if its layers change)."""
    model = predictor.model
    size = int(model.preprocess.input_size)
    key = hash((size, id(model.backbone), sum(1 for _ in model.backbone.modules())))
    cached = _SPOTS.get(model)
    if cached is None or cached[0] != key:
        with explain_mode(model):
            cached = (key, _find_spot(model.backbone, size, predictor.device))
        _SPOTS[model] = cached
    return cached[1]


def _find_spot(backbone: nn.Module, size: int, device: torch.device) -> _Spot | None:
    """Record every module's output on a blank image, then pick the map (see the module doc)."""
    records: list[tuple[str, tuple[int, ...]]] = []  # (name, output shape) in completion order

    def recorder(name: str) -> Any:
        def hook(mod: nn.Module, args: tuple, out: Any) -> None:
            if isinstance(out, tuple | list) and out:
                out = out[0]
            if isinstance(out, torch.Tensor):
                records.append((name, tuple(out.shape)))

        return hook

    handles = [
        module.register_forward_hook(recorder(name))
        for name, module in backbone.named_modules()
        if name and not isinstance(module, nn.Identity)
    ]
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, 3, size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    conv = _last_map(records)
    block = _last_block(backbone, records)
    if block is not None and (conv is None or block[0] > conv[0]):
        return _Spot(block[1], "tokens", _prefix(backbone, records[block[0]][1][1]))
    return conv[1] if conv is not None else None


def _last_map(records: list[tuple[str, tuple[int, ...]]]) -> tuple[int, _Spot] | None:
    for index in range(len(records) - 1, -1, -1):
        name, shape = records[index]
        if len(shape) != 4:
            continue
        if shape[2] == shape[3] > 1:
            return index, _Spot(name, "nchw")
        if shape[1] == shape[2] > 1:
            return index, _Spot(name, "nhwc")
    return None


def _last_block(
    backbone: nn.Module, records: list[tuple[str, tuple[int, ...]]]
) -> tuple[int, str] | None:
    """(record index, name) of the last block of the biggest list of token blocks, if any."""
    tokens = {name: i for i, (name, shape) in enumerate(records) if len(shape) == 3}
    best: tuple[int, str] | None = None
    best_size = -1
    for name, module in backbone.named_modules():
        if not isinstance(module, nn.ModuleList | nn.Sequential) or len(module) < 2:
            continue
        child = next(reversed(module._modules))  # torchvision names them encoder_layer_<i>
        last = f"{name}.{child}" if name else child
        if last not in tokens:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = (tokens[last], last), size
    return best


def _prefix(backbone: nn.Module, n: int) -> int:
    """How many of ``n`` tokens come before the patches: the model's own count, else the
    fewest that leave a square grid."""
    for module in backbone.modules():
        count = getattr(module, "num_prefix_tokens", None)
        if isinstance(count, int) and 0 <= count < n:
            return count
    for prefix in range(0, min(n, 17)):
        side = math.isqrt(n - prefix)
        if side > 1 and side * side == n - prefix:
            return prefix
    return 1


def _method(spot: _Spot) -> str:
    name = spot.name.replace("base_model.model.", "")  # the names inside a LoRA wrapper
    where = f"the patch tokens entering {name}" if spot.kind == "tokens" else name
    return f"Grad-CAM (captum LayerGradCam on {where})"


# -- images -------------------------------------------------------------------------------------


def _resized(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A [h, w] map bilinearly upsampled to the image's (width, height), negatives cut."""
    from captum.attr import LayerAttribution

    t = torch.as_tensor(np.ascontiguousarray(cam), dtype=torch.float32)[None, None]
    up = LayerAttribution.interpolate(t, (size[1], size[0]), interpolate_mode="bilinear")
    return up[0, 0].clamp(min=0.0).numpy().astype(np.float32)


def _normalized(cam: np.ndarray) -> np.ndarray:
    """Scaled to a maximum of 1; an all-zero map stays zeros."""
    peak = float(cam.max(initial=0.0))
    return (cam / peak).astype(np.float32) if peak > 0 else np.zeros_like(cam, dtype=np.float32)


def _lut() -> np.ndarray:
    anchors = np.asarray(_INFERNO, dtype=np.float32)
    at = np.linspace(0.0, 1.0, len(anchors))
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(grid, at, anchors[:, c]) for c in range(3)], axis=1)


def _batched(items: list[str], n: int) -> Iterator[list[str]]:
    for start in range(0, len(items), n):
        yield items[start : start + n]
