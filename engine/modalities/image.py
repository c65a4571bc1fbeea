"""Images: labeled image folders, pixel transforms, Grad-CAM heatmaps, pixel_values exports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data import DatasetError, Sample, prefetch
from engine.data.manifest_scan import scan_image_source
from engine.modalities.base import parts
from engine.task import Task, as_task

STARTER = "efficientnet_lite0"


class ImageModality:
    """Labeled image files (a folder per class)."""

    name = "image"
    noun = "images"
    singular = "image"
    starter = STARTER
    alternatives = (
        f"choose a checkpoint file instead, or use the offline starter backbone {STARTER}"
    )
    input_names: tuple[str, ...] = ("pixel_values",)
    has_intensity = True
    caches_prefix = True
    scan_progress = True
    prefetches = True
    runs_frozen_in_onnxruntime = True
    hf_backbones_only = False
    heatmaps = True
    word_influence = False
    accepts_text = False
    lora_pooling = "backbone"

    def __repr__(self) -> str:
        return "<modality image>"

    # -- data -----------------------------------------------------------------------------------

    def scan(
        self,
        source: str,
        *,
        min_per_class: int,
        text_column: str | None = None,
        label_column: str | None = None,
        task: Task | None = None,
    ) -> Any:
        return scan_image_source(source, min_per_class=min_per_class, task=task)

    def scan_for_run(
        self,
        config: RunConfig,
        *,
        task: Task | None,
    ) -> Any:
        from engine.data.manifest import is_image_manifest
        from engine.data.scan import scan_folder

        staged = as_task(task)
        path, least = config.data.path, config.data.min_per_class
        # The scan decodes DICOM files with the run's window (its intensity statistics are those
        # of the pixels the run trains on); nothing process-wide is set.
        window = str(config.data.dicom_window)
        index = None
        if not is_image_manifest(path):
            index = prefetch.take_index(path, min_per_class=least, window=window, task=staged)
            if index is None:
                index = scan_folder(path, min_per_class=least, task=staged, window=window)
        return scan_image_source(
            path,
            min_per_class=least,
            group_by=config.data.group_by,
            task=staged,
            index=index,
            frames=str(config.data.dicom_frames),
            window=window,
        )

    def rows(self, samples: Sequence[Any]) -> list[list]:
        # A grouped sample keeps its salted group hash (never the raw key) as a fourth item, so
        # an evaluation can resample patients; rows of ungrouped samples stay as before.
        return [
            [s.path, s.label, s.digest] + ([s.group] if s.group is not None else [])
            for s in samples
        ]

    def samples(self, rows: Sequence[Sequence[Any]], split: str) -> tuple[Any, ...]:
        return tuple(_sample(row, split) for row in rows)

    def check_resumable(self, data: Any, run_id: str) -> None:
        from engine.data.dicom import split_frame

        # A frame's path (data.dicom_frames "all") is its file's with "#frame=N" appended.
        missing = [
            s.path
            for s in data.train + data.val
            if not Path(s.path).is_file() and not Path(split_frame(s.path)[0]).is_file()
        ]
        if missing:
            raise DatasetError(
                f"{len(missing)} images of this run are gone (first: {missing[0]}); the run "
                "cannot be resumed on the same data."
            )

    def refs(self, root: str, samples: Sequence[Any]) -> list[str]:
        return [resolve_path(root, s.path) for s in samples]

    # -- models and training --------------------------------------------------------------------

    def reads(self, entry: Any) -> str:
        return f"{entry.preprocess.input_size}px"

    def build_backbone(self, entry: Any, config: Any, *, load_weights: bool) -> Any:
        return parts().build_image_backbone(entry, config, load_weights=load_weights)

    def starter_weights(self) -> Any:
        return parts().starter_file()

    def transforms(self, preprocess: Any, augment: Any) -> tuple[Any, Any] | None:
        from engine.data import build_transform

        return (
            build_transform(preprocess, train=False),
            build_transform(
                preprocess,
                train=True,
                preset=augment.preset,
                hflip=augment.hflip,
                vflip=augment.vflip,
            ),
        )

    def token_limit(self, model: Any, max_length: int) -> int:
        return 0

    def random_batch(
        self, model: Any, batch: int, *, tokens: int, device: Any, channels_last: bool
    ) -> Any:
        import torch

        size = model.preprocess.input_size
        x = torch.randn(batch, 3, size, size, device=device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def pipeline(self, frozen_backbone: bool) -> Any:
        return parts().FeaturePipeline if frozen_backbone else parts().ImagePipeline

    def advise(self, ctx: Any, model: Any) -> Any:
        return parts().recommend_image(ctx, model)

    def default_epochs(self, config: RunConfig) -> int | None:
        return None

    def state_facts(self, *, max_length: int, intensity: str) -> dict[str, Any]:
        return {"intensity": intensity}

    # -- predictions and explanations -------------------------------------------------------------

    def prepare_predictor(self, predictor: Any) -> None:
        import dataclasses

        from engine.data import build_transform
        from engine.data.intensity import stored_intensity

        # The run's resolved intensity stretch and DICOM window: prediction, evaluation, Try it
        # and export all see the pixels the model was trained on. The window travels in the
        # transform (every decode of this predictor passes it), never through process state.
        window = str(predictor.config.data.dicom_window)
        predictor.model.preprocess = dataclasses.replace(
            predictor.model.preprocess,
            intensity=stored_intensity(predictor.run.state()),
            dicom_window=window,
            dicom_frames=str(predictor.config.data.dicom_frames),
        )
        predictor.transform = build_transform(predictor.model.preprocess, train=False)

    def split_probs(
        self, predictor: Any, run: Any, refs: Sequence[str], batch_size: int, task: Task
    ) -> Any:
        _channels_last(predictor, run)
        return _image_probs(predictor, refs, batch_size, task)

    def classify(
        self,
        predictor: Any,
        files: Sequence[str],
        *,
        texts: Sequence[str],
        text_column: str | None,
        top_k: int,
    ) -> list[Any]:
        return list(predictor.predict(files, top_k=top_k))

    def explain_problem(self, predictor: Any) -> str | None:
        return None

    # -- export ---------------------------------------------------------------------------------

    def check_inputs(self, predictor: Any, val: Sequence[Any], limit: int) -> tuple[tuple, str]:
        import torch

        from engine.data import ImageError, load_image

        min_size = getattr(predictor.transform, "min_size", None)
        tensors = []
        for sample in val:
            try:
                image = load_image(sample.path, min_size=min_size, window=_window(predictor))
                tensors.append(predictor.transform(image))
            except (ImageError, OSError):
                continue
            if len(tensors) >= limit:
                break
        if tensors:
            return (torch.stack(tensors),), f"{len(tensors)} validation images"
        size = predictor.model.preprocess.input_size
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(4, 3, size, size, generator=generator)
        return (noise,), "4 random images (the validation images are no longer on this computer)"

    def logits_module(self, model: Any) -> Any:
        return parts().ImageLogits(model)

    def input_facts(self, model: Any, max_length: int | None) -> dict[str, Any]:
        from engine.data.intensity import PERCENTILE, WINDOW

        pre = model.preprocess
        shape = ["batch", 3, pre.input_size, pre.input_size]
        stretch = pre.intensity == PERCENTILE
        first = (
            f"stretch intensity: take the {WINDOW[0]:g} and {WINDOW[1]:g} percentiles of the "
            "image's luma (0.299 R + 0.587 G + 0.114 B, 0-255), map them linearly to 0 and 255 "
            "and clip, the same map for R, G and B; "
            if stretch
            else ""
        )
        return {
            "preprocess": {
                "input_size": pre.input_size,
                "mean": list(pre.mean),
                "std": list(pre.std),
                "interpolation": pre.interpolation,
                "crop_pct": pre.crop_pct,
                "resize_size": pre.resize_size,
                "intensity": pre.intensity,
                "intensity_window": list(WINDOW) if stretch else None,
                # DICOM inputs: the window (engine/data/dicom.py) applied before everything.
                "dicom_window": pre.dicom_window,
                # Multi-frame DICOM inputs: "middle" frame, or the mean over "all" frames.
                "dicom_frames": pre.dicom_frames,
                "steps": (
                    f"RGB; {first}resize the short side to {pre.resize_size} "
                    f"({pre.interpolation}); center-crop {pre.input_size}x{pre.input_size}; "
                    "scale to [0, 1]; subtract mean and divide by std per channel"
                ),
            },
            "inputs": {self.input_names[0]: {"shape": shape, "dtype": "float32"}},
        }

    def manifest_problems(self, manifest: dict[str, Any]) -> list[str]:
        return []  # preprocess_of says what is wrong with the preprocessing when it is read

    def card_input(self, state: dict[str, Any]) -> str | None:
        return "- Input: RGB images (see refit_model.json for the preprocessing)"

    def hf_source_folder(self, entry: Any) -> Any:
        return parts().hf_folder(entry.name, need_weights=False)

    def hf_pooling(self, model: Any) -> str | None:
        return None

    def hf_backbone_class(self) -> Any:
        return parts().HFBackbone

    def copies_preprocessor(self) -> bool:
        return True

    def open_exported(self, exported: Any) -> None:
        from engine.data import build_transform

        exported.transform = build_transform(parts().preprocess_of(exported.manifest), train=False)


def _sample(row: Sequence[Any], split: str) -> Sample:
    """One image row of splits.json ([path, label, digest] or [path, label, digest, group]);
    ValueError for a row of another length (RunData.read names the damaged file)."""
    if len(row) not in (3, 4):
        raise ValueError(f"an image row holds {len(row)} items, not 3 or 4")
    group = row[3] if len(row) == 4 else None
    return Sample(
        path=row[0],
        label=int(row[1]),
        split=split,
        digest=row[2],
        group=None if group is None else str(group),
    )


def resolve_path(root: str, path: str) -> str:
    """An image path of splits.json as an absolute path (relative ones are under the root)."""
    p = Path(path)
    return str(p if p.is_absolute() else Path(root) / p)


def _channels_last(predictor: Any, run: Any) -> None:
    """Conv nets run channels-last as in training (much faster on CPUs as well)."""
    import torch

    entry = getattr(predictor.model, "entry", None)
    if getattr(entry, "is_convnet", False) and run.config().device.channels_last:
        predictor.model.to(memory_format=torch.channels_last)
        predictor.channels_last = True


def _window(predictor: Any) -> str:
    """The DICOM window of a predictor's transform (its run's ``data.dicom_window``)."""
    from engine.data.images import window_of

    return window_of(predictor.transform)


def _image_probs(predictor: Any, paths: Sequence[str], batch_size: int, task: Task) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    transform = predictor.transform
    min_size = getattr(transform, "min_size", None)

    def tensor(path: str) -> torch.Tensor:
        from engine.data import ImageError, load_image

        try:
            return transform(load_image(path, min_size=min_size, window=_window(predictor)))
        except (ImageError, OSError) as exc:
            raise parts().PredictionError(
                f"The image {path} cannot be read any more ({exc}); put it back, or train a new "
                "run on the data as it is now."
            ) from exc

    out = np.zeros((len(paths), len(predictor.classes)), np.float32)
    total = len(paths)
    task.report(0, total)
    predictor.prepare_runtime(total)
    # Decoding releases the GIL: a few threads keep the model fed without worker processes.
    with (
        ThreadPoolExecutor(max_workers=4, thread_name_prefix="refit-eval") as pool,
        torch.inference_mode(),
    ):
        for start in range(0, total, batch_size):
            task.check_cancelled()
            chunk = paths[start : start + batch_size]
            x = torch.stack(list(pool.map(tensor, chunk)))
            out[start : start + len(chunk)] = predictor.image_probs(x)
            task.report(start + len(chunk), total)
    return out


IMAGE = ImageModality()
