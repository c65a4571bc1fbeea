"""Frozen forward pass: eager NCHW vs eager channels-last vs onnxruntime, and how to feed it.

Part 1 times the forward pass alone (random inputs, batch 32) of the starter backbone
(EfficientNet-Lite0 without its classifier) in each runtime, with the threads torch uses.
Part 2 times the engine's whole feature pass (decode, resize, forward) over a folder of images
for each number of loader workers and onnxruntime threads, which is how the engine's defaults
(engine/training/loaders.py ``auto_workers``) were chosen.

    python benchmarks/frozen_forward.py [--data DIR] [--images N]

Without ``--data`` it generates 400 photos of about 500x375 (make_photos.py --sizes small).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import machine_lines

BATCH = 32


def forward_only(rounds: int) -> list[tuple[str, float]]:
    """Images per second of the forward pass alone in each runtime."""
    from starter_model import efficientnet_lite0

    from engine.frozen.onnx import OnnxSession, check, export

    net = efficientnet_lite0(num_classes=0).eval()
    x = torch.randn(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = []
    with torch.inference_mode():
        rows.append(("eager NCHW", _rate(net, x, rounds)))
        cl = net.to(memory_format=torch.channels_last)
        rows.append(
            (
                "eager channels_last",
                _rate(cl, x.contiguous(memory_format=torch.channels_last), rounds),
            )
        )
        net = cl.to(memory_format=torch.contiguous_format)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lite0.onnx"
        started = time.perf_counter()
        how = export(net, x[:1], path)
        exported = time.perf_counter() - started
        session = OnnxSession(path, threads=torch.get_num_threads())
        diff = check(session, net, x[:8], argmax=False)
        rows.append(
            (
                f"onnxruntime (export {exported:.1f} s, {how}; diff {diff:.0e})",
                _rate(session, x, rounds),
            )
        )
    return rows


def _rate(fn, x: torch.Tensor, rounds: int) -> float:
    fn(x)  # first call: kernels chosen, memory allocated
    started = time.perf_counter()
    for _ in range(rounds):
        fn(x)
    return rounds * len(x) / (time.perf_counter() - started)


def feed_matrix(folder: Path, images: int) -> list[tuple[str, int, float, float]]:
    """(who decodes, onnxruntime threads, images/s, share of time waiting for images)."""
    from starter_model import efficientnet_lite0

    from engine.config import Precision, Runtime
    from engine.data import ImageDataset, build_transform
    from engine.data.images import IMAGE_EXTENSIONS
    from engine.frozen import FrozenForward
    from engine.preprocess import Preprocess
    from engine.training.devices import Placement
    from engine.training.features import FeedTiming, extract_features
    from engine.training.loaders import feeder_text

    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
    samples = [SimpleNamespace(path=str(f), label=0) for f in files[:images]]
    transform = build_transform(Preprocess(interpolation="bicubic"), train=False)
    dataset = ImageDataset(samples, transform)
    net = efficientnet_lite0(num_classes=0).eval()
    cpu = Placement(device=torch.device("cpu"), precision=Precision.FP32, description="CPU")
    threads = torch.get_num_threads()
    feeders = [(w, 0) for w in (0, 1, 2)] + [(0, t) for t in (1, 2, 3, 4)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ort_threads in sorted({1, threads}):
            torch.set_num_threads(ort_threads)
            fwd = FrozenForward(
                net,
                placement=cpu,
                runtime=Runtime.ONNXRUNTIME,
                cache_dir=Path(tmp),
                key_parts={"cut": "features", "bench": ort_threads},
            )
            fwd(dataset[0][0][None])  # export and check outside the timing
            for workers, decoders in feeders:
                timing = FeedTiming()
                started = time.perf_counter()
                extract_features(
                    fwd,
                    dataset,
                    placement=cpu,
                    channels_last=False,
                    batch_size=64,
                    workers=workers,
                    timing=timing,
                    decode_threads=decoders,
                )
                seconds = time.perf_counter() - started
                total = timing.waited_s + timing.computed_s
                rate = len(dataset) / seconds
                feeder = feeder_text(decoders, workers)
                rows.append((feeder, ort_threads, rate, timing.waited_s / total))
            torch.set_num_threads(threads)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a labeled image folder")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    print("\n".join(machine_lines()))
    print(
        f"\nForward pass only, EfficientNet-Lite0, batch {BATCH}, "
        f"{torch.get_num_threads()} threads:"
    )
    for name, rate in forward_only(args.rounds):
        print(f"  {name:<72} {rate:7.1f} images/s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if folder is None:
            from make_photos import generate

            folder = generate(
                Path(tmp) / "photos", per_class=args.images // 2, seed=0, sizes="small"
            )
        print(
            "\nFeature pass (decode + resize + onnxruntime forward) over "
            f"{args.images} images of {folder}:"
        )
        print(f"  {'images decoded by':<30} ort threads  images/s  waiting for images")
        for feeder, threads, rate, waited in feed_matrix(folder, args.images):
            print(f"  {feeder:<30} {threads:>11}  {rate:8.1f}  {waited:>18.0%}")
    print(f"\nos.cpu_count() = {os.cpu_count()}")


if __name__ == "__main__":
    main()
