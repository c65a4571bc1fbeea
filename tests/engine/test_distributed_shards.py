"""Jobs of several processes share the frozen passes: the recipe advisor's recording passes
(``--method auto``) and a cached frozen prefix's activations are computed in shards over the
ranks and gathered in dataset order (real 2-process Gloo jobs on the CPU under torchrun).

Tolerances: the gathered activations and features are a 1-process pass's (the same rows of the
same images and augmentation draws through the same network in eval mode) up to float rounding:
torch's CPU convolutions take other vectorised paths for a batch of other images (measured: one
row of 30 off by 1.4e-9, one half-precision activation by one unit in the last place), so they
are compared with torch.testing.assert_close's default tolerances and the 1-process pass runs on
one thread as each torchrun process does (OMP_NUM_THREADS=1). The recipe chosen must be the
1-process run's; the advisor's trial fits (which train, on rank 0 alone) may differ in the
last digits of their loss, because a torchrun process computes with one thread
(OMP_NUM_THREADS=1) and sums in another order. A cached-prefix run trains on the same global
batches as one process; its validation metrics get test_distributed.py's tolerance (batch-norm
statistics over each rank's half of a batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from synthetic import make_shapes_folder
from test_distributed import (
    ROOT,
    epoch_lines,
    events_of,
    refit,
    stopped_job,
    tiny_config,
    two_processes,
)

from engine.config import AdaptConfig, Method, RunConfig
from engine.events import LogMessage, RunEnded, RunStarted, RunStatus
from engine.runs import RunDir
from engine.training.trainer import train

HERE = Path(__file__).resolve().parent


@pytest.fixture
def one_thread():
    """The 1-process run computes on one thread, as each torchrun process does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_noise_folder(root: Path, per_class: int, size: int = 32) -> Path:
    """Two classes of random-noise images: a probe cannot separate them, so the advisor records
    augmented views and tries partial fine-tunes."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_the_sharded_recording_passes_gather_a_one_process_recording(tmp_path, one_thread):
    from sharded_record_job import recordings

    from engine.distributed import SINGLE

    data = make_shapes_folder(tmp_path / "shapes", per_class=5)
    out = tmp_path / "out"
    out.mkdir()
    job = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(HERE / "sharded_record_job.py"),
            str(data),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    want = recordings(data, SINGLE)
    assert want["features"].shape[0] == 3 * 10 and want["val_features"].shape[0] == 3
    ran = []
    for rank in (0, 1):
        got = torch.load(out / f"rank{rank}.pt", weights_only=True)
        ran.append(int(got.pop("ran")))
        assert got.keys() == want.keys()
        for name, tensor in want.items():
            torch.testing.assert_close(got[name], tensor, msg=f"rank {rank}: {name} differs")
    # each rank ran its share: 10 clean views, 20 augmented ones and 3 validation images in all
    assert ran == [17, 16]


@pytest.mark.slow
def test_a_two_process_recommended_run_chooses_the_one_process_recipe(tmp_path, one_thread):
    data = make_noise_folder(tmp_path / "noise", per_class=10)
    config = tiny_config(data, method=Method.AUTO)
    one = train(config, workspace=tmp_path / "ws1")
    run, events = two_processes(config, tmp_path / "ws2", tmp_path)
    assert run.state()["status"] == "completed"
    ones = RunDir(one.run_dir)
    assert RunConfig.load(run.config_path) == RunConfig.load(ones.config_path)
    advice = [json.loads((r.path / "advice.json").read_text()) for r in (ones, run)]
    assert advice[0]["trials"], "the advisor tried no partial fine-tune: the passes were not shared"
    for a in advice:  # the trials train (rank 0 alone): their numbers may differ in the last digits
        for trial in a.pop("trials"):
            assert trial["group"] and trial["trained_groups"] >= 2
        a.pop("seconds")
        a.pop("lr_curve", None)
    assert advice[0] == advice[1]  # the same features: the same depths, probe scores, recipe
    assert [p.name for p in run.path.glob("advice*")] == ["advice.json"]
    logs = [e.text for e in events if isinstance(e, LogMessage)]
    assert sum("Recommended recipe" in text for text in logs) == 1  # rank 0 alone said it
    # Every rank holds the gathered recording: the probe trains on it, with no second pass,
    # and rank 0 caches the very features a 1-process run caches.
    assert not any("Computing backbone features" in text for text in logs)
    caches = [
        sorted((tmp_path / ws / "cache" / "features").glob("*.safetensors"))
        for ws in ("ws1", "ws2")
    ]
    assert [p.name for p in caches[0]] == [p.name for p in caches[1]] and caches[0]
    for a, b in zip(*caches, strict=True):
        torch.testing.assert_close(load_file(str(b))["features"], load_file(str(a))["features"])


def prefix_config(data: Path, epochs: int = 2) -> RunConfig:
    config = tiny_config(data, method=Method.LAST_N, epochs=epochs)
    return config.replace(adapt=AdaptConfig(method=Method.LAST_N, last_n=2, cache_prefix=True))


@pytest.mark.slow
def test_a_two_process_cached_prefix_run_reaches_the_metrics_of_one(tmp_path, one_thread):
    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    config = prefix_config(data)
    lines: list[str] = []
    one = train(
        config,
        workspace=tmp_path / "ws1",
        on_event=lambda e: lines.append(e.text) if isinstance(e, LogMessage) else None,
    )
    assert any("Computing the frozen layers" in text for text in lines)
    run, events = two_processes(config, tmp_path / "ws2", tmp_path)
    assert isinstance(events[-1], RunEnded) and events[-1].status is RunStatus.COMPLETED
    assert any(
        isinstance(e, LogMessage) and "Computing the frozen layers" in e.text for e in events
    )
    assert run.state()["feature_cache"] is False and run.state()["frozen_groups"]
    ones, twos = epoch_lines(RunDir(one.run_dir)), epoch_lines(run)
    assert [r["epoch"] for r in twos] == [0, 1]
    for a, b in zip(ones, twos, strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) < 0.05
        assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 1 / 6 + 1e-9  # 6 validation images


@pytest.mark.slow
def test_a_stopped_cached_prefix_job_resumes_with_two_processes(tmp_path):
    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    run, ws = stopped_job(prefix_config(data, epochs=5), tmp_path, after_epoch=1)
    again = refit("resume", run.run_id, "--workspace", str(ws), "--nproc", "2", "--events-jsonl")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    events = events_of(out)
    assert any(  # a resumed run computes the frozen layers' activations again (sharded)
        isinstance(e, LogMessage) and "Computing the frozen layers" in e.text for e in events
    )
    assert [r["epoch"] for r in epoch_lines(run)] == list(range(5))
    started = [e for e in events if isinstance(e, RunStarted)]
    assert started and started[0].start_epoch >= 2
    assert run.state()["status"] == "completed"
