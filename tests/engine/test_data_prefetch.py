"""The prefetching child of `refit train`: its scan and its decoded images are exactly what the
run would have made itself, and every failure falls back to the run's own scan and decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import make_scans_folder

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: start() refuses to fork once threads run (pytest may have some).
CHECK = r"""
import json, os, sys, time
from pathlib import Path
import numpy as np
from engine.data import prefetch, scan_folder
from engine.data.images import load_image
from engine.task import Task

root, min_size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
started = prefetch.start(root, min_per_class=2, min_size=min_size)
child = next(iter(prefetch._children.values()), None)
if mode == "kill":
    os.kill(child.pid, 9)
seen = []
task = Task(lambda p: seen.append((p.done, p.total)), rate_hz=0)
index = prefetch.take_index(root, min_per_class=2, task=task)
own_seen = []
own_task = Task(lambda p: own_seen.append((p.done, p.total)), rate_hz=0)
own = scan_folder(root, min_per_class=2, task=own_task)
out = {"started": started, "index_from_child": index is not None}
out["progress_end"] = seen[-1] if seen else None
out["own_progress_end"] = own_seen[-1]
out["progress_monotonic"] = all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
if index is not None:
    out["same_index"] = index.samples == own.samples and [
        p.message for p in index.problems] == [p.message for p in own.problems]
    time.sleep(1.0)  # let the child finish decoding
    same, hits = True, 0
    for sample in own.samples:
        got = prefetch.take_image(sample.path, min_size)
        want = load_image(sample.path, min_size=min_size)
        if got is not None:
            hits += 1
            same &= got.mode == want.mode and got.size == want.size and np.array_equal(
                np.asarray(got), np.asarray(want))
    out.update(same_pixels=same, hits=hits, samples=len(own.samples))
    out["wrong_size_hit"] = prefetch.take_image(own.samples[0].path, min_size + 1) is not None
out["children_left"] = len(prefetch._children)
out["fds"] = sorted(os.listdir("/proc/self/fd"))
print(json.dumps(out))
"""


# The run's evaluation view made by the child: equal to what the run's own transform makes.
VIEW_CHECK = r"""
import json, sys, time
from engine.data import prefetch, scan_folder, build_transform
from engine.data.images import load_image
from engine.data.view import EvalView
from engine.data.intensity import resolve_intensity
import numpy as np
from engine.preprocess import Preprocess

root, intensity = sys.argv[1], sys.argv[2]
pre = Preprocess(input_size=64, interpolation="bicubic")
started = prefetch.start(root, min_per_class=2, min_size=pre.resize_size,
                         view=EvalView(pre.resize_size, pre.input_size, "bicubic"),
                         intensity=intensity)
index = prefetch.take_index(root, min_per_class=2)
resolved = resolve_intensity(intensity, index.intensity)
transform = build_transform(Preprocess(**{**pre.__dict__, "intensity": resolved}), train=False)
time.sleep(1.0)  # let the child finish
other = EvalView(pre.resize_size + 1, pre.input_size, "bicubic")
out = {"started": started, "stretch": transform.view.stretch, "hits": 0, "same": True,
       "decoded_hits": 0, "other_hits": 0}
for n, sample in enumerate(index.samples):
    if n == 0:  # neither a plain decoding nor another view is handed out for a made view
        out["decoded_hits"] += prefetch.take_image(sample.path, pre.resize_size) is not None
        out["other_hits"] += prefetch.take_view(sample.path, other) is not None
    got = prefetch.take_view(sample.path, transform.view)
    want = transform.view(load_image(sample.path, min_size=pre.resize_size))
    if got is not None:
        out["hits"] += 1
        out["same"] &= got.size == want.size and np.array_equal(np.asarray(got), np.asarray(want))
out["samples"] = len(index.samples)
out["children_left"] = len(prefetch._children)
print(json.dumps(out))
"""


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (300 + 7 * i, 420, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.jpg", quality=90)
        Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8)).save(root / cls / "g.png")
        rgba = rng.integers(0, 255, (80, 100, 4), dtype=np.uint8)
        Image.fromarray(rgba, "RGBA").save(root / cls / "t.png")
        deep = (rng.integers(0, 4095, (64, 64)) * 16).astype(np.uint16)
        Image.fromarray(deep).save(root / cls / "deep.png")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    os.mkfifo(root / "b" / "pipe.jpg")  # the scan must skip it, not hang on it
    return root


def _run(folder: Path, *args: object, script: str = CHECK) -> dict:
    """``script`` in a fresh interpreter with ``folder`` and ``args``; its last line, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_childs_scan_and_images_are_the_runs_own(tmp_path) -> None:
    out = _run(_folder(tmp_path / "data"), 256, "normal")
    assert out["started"] and out["index_from_child"] and out["same_index"]
    # The scan's progress reaches the caller as the run's own scan would report it.
    assert out["progress_end"] == out["own_progress_end"] and out["progress_monotonic"]
    assert out["samples"] == 18  # 2 x (6 JPEGs + 3 PNGs); the broken file and the FIFO are not
    assert out["hits"] == out["samples"] and out["same_pixels"]
    assert not out["wrong_size_hit"]  # decoded for another size: never handed out
    assert out["children_left"] == 0  # every image taken: the child is reaped, its file closed
    assert len(out["fds"]) <= 5, out["fds"]  # stdin/out/err (+ the listing itself)


@pytest.mark.slow
def test_the_childs_views_are_the_runs_own(tmp_path) -> None:
    out = _run(_folder(tmp_path / "data"), "auto", script=VIEW_CHECK)
    assert out["started"] and not out["stretch"]
    assert out["hits"] == out["samples"] == 18 and out["same"]
    assert out["decoded_hits"] == 0 and out["other_hits"] == 0
    assert out["children_left"] == 0


@pytest.mark.slow
def test_the_child_decides_the_intensity_stretch_as_the_run_does(tmp_path) -> None:
    """Dark scans with a few grey levels: `auto` stretches them, in the child's view too."""
    out = _run(make_scans_folder(tmp_path / "scans", per_class=4), "auto", script=VIEW_CHECK)
    assert out["stretch"] and out["hits"] == out["samples"] == 8 and out["same"]


def test_a_child_that_dies_leaves_the_run_to_scan_itself(tmp_path) -> None:
    out = _run(_folder(tmp_path / "data"), 256, "kill")
    assert out["started"] and not out["index_from_child"]
    assert out["children_left"] == 0


def test_nothing_is_prefetched_without_a_start(tmp_path) -> None:
    from engine.data import prefetch

    folder = _folder(tmp_path / "data")
    assert prefetch.take_index(folder, min_per_class=2) is None
    assert prefetch.take_image(str(folder / "a" / "0.jpg"), 256) is None


@pytest.mark.slow
def test_train_gives_the_same_model_with_and_without_prefetching(tmp_path) -> None:
    """`refit train` prefetches in its own process; the run's features and metrics equal those
    of a run whose prefetching is switched off."""
    folder = _folder(tmp_path / "data")
    script = (
        "import sys, runpy\n"
        "import engine.data.prefetch as pf\n"
        "if sys.argv[1] == 'off': pf.start = lambda *a, **k: False\n"
        "sys.argv = ['refit'] + sys.argv[2:]\n"
        "runpy.run_module('engine', run_name='__main__')\n"
    )
    results = {}
    for mode in ("on", "off"):
        ws = tmp_path / f"ws-{mode}"
        done = subprocess.run(
            [sys.executable, "-c", script, mode, "--workspace", str(ws), "train", str(folder),
             "--method", "linear-probe", "--quiet"],
            capture_output=True, text=True, timeout=600,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        run = next((ws / "runs").iterdir())
        probs = np.load(run / "evaluation" / "val-predictions.npz")["probs"]
        results[mode] = (json.loads((run / "summary.json").read_text()), probs)
    assert np.array_equal(results["on"][1], results["off"][1])
    on, off = results["on"][0], results["off"][0]
    assert on.get("val_accuracy") == off.get("val_accuracy")


# The child looks for near-duplicates once (the split is still to be made) and the run takes them.
TWINS_CHECK = r"""
import json, sys
from engine.data import prefetch, scan_folder
from engine.data.leakage import near_duplicate_twins

root = sys.argv[1]
prefetch.start(root, min_per_class=2, min_size=64)
index = prefetch.take_index(root, min_per_class=2)
own = near_duplicate_twins(scan_folder(root, min_per_class=2).samples)
print(json.dumps({"found": index.twins_found, "twins": [list(t) for t in index.twins],
                  "own": [list(t) for t in own]}))
"""


def test_the_childs_near_duplicates_are_the_runs_own(tmp_path) -> None:
    root = tmp_path / "data"
    y, x = np.mgrid[0:120, 0:160]
    for cls, shift in (("a", 0), ("b", 60)):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            smooth = ((x * (i + 1) + y * 2 + shift) % 256).astype(np.uint8)
            Image.fromarray(np.stack([smooth, smooth[::-1], smooth[:, ::-1]], -1)).save(
                root / cls / f"{i}.png"
            )
    original = Image.open(root / "a" / "1.png")
    original.resize((120, 90)).save(root / "b" / "copy_of_a1.jpg", quality=85)
    out = _run(root, script=TWINS_CHECK)
    assert out["found"] and out["twins"] == out["own"]
    assert any("copy_of_a1.jpg" in pair[1] or "copy_of_a1.jpg" in pair[0] for pair in out["twins"])
