"""The backbone's features made early by `refit train`'s prefetching child (engine/frozen/early.py):
made without torch from the pixels the run would make, only with an export this user's key
signed for these weights, and giving the run the model it would have trained without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.view import normalised_batch
from engine.frozen.early import EarlySpec, find_export
from engine.frozen.records import record_path, signed_record, write_record

ROOT = Path(__file__).resolve().parents[2]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PARTS = {"cut": "features", "backbone": "b", "pretrained": True, "weights": "w:1", "input_size": 8}


def test_the_normalised_batch_has_the_bits_torchvision_makes() -> None:
    from engine.data.transforms import build_transform
    from engine.preprocess import Preprocess

    finish = build_transform(Preprocess(input_size=32), train=False).finish
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    images.append(Image.new("RGB", (32, 32), (255, 0, 128)))  # the extremes of the range
    ours = normalised_batch(images, MEAN, STD)
    import torch

    theirs = torch.stack([finish(image) for image in images]).numpy()
    assert ours.dtype == np.float32 and ours.shape == (4, 3, 32, 32)
    assert np.array_equal(ours, theirs)


def _export(folder: Path, name: str, parts: dict, *, data: bytes = b"onnx bytes") -> Path:
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    path.write_bytes(data)
    record = {"sha256": hashlib.sha256(data).hexdigest(), "weights": "fp", "difference": 1e-6}
    assert write_record(path, {**record, "parts": parts})
    return path


def _spec(folder: Path, **parts: object) -> EarlySpec:
    return EarlySpec(str(folder), {**PARTS, **parts}, MEAN, STD, 1)


def test_the_child_finds_the_export_its_signed_record_describes(tmp_path) -> None:
    folder = tmp_path / "onnx"
    path = _export(folder, "k1", {**PARTS, "torch": "2", "onnxruntime": "1.0", "v": 1})
    _export(folder, "k2", {**PARTS, "input_size": 16, "torch": "2", "onnxruntime": "1.0", "v": 1})
    found = find_export(_spec(folder), "1.0")
    assert found is not None and found[0] == path and found[1] == b"onnx bytes"
    assert find_export(_spec(folder, input_size=16), "1.0")[0].name == "k2.onnx"
    assert find_export(_spec(folder, backbone="other"), "1.0") is None
    assert find_export(_spec(folder), "1.1") is None  # another onnxruntime: exported again
    assert find_export(_spec(tmp_path / "missing"), "1.0") is None


def test_the_child_refuses_unsigned_forged_and_replaced_exports(tmp_path) -> None:
    folder = tmp_path / "onnx"
    parts = {**PARTS, "torch": "2", "onnxruntime": "1.0", "v": 1}
    replaced = _export(folder, "replaced", parts)
    replaced.write_bytes(b"other bytes")  # the record names the bytes that were checked
    forged = _export(folder, "forged", parts)
    record = json.loads(record_path(forged).read_text())
    record["parts"]["backbone"] = "b"  # unchanged parts, but a signature made by nobody
    record["signature"] = "0" * 64
    record_path(forged).write_text(json.dumps(record))
    planted = folder / "planted.onnx"
    planted.write_bytes(b"onnx bytes")
    record_path(planted).write_text(json.dumps({"sha256": "x", "parts": parts}))
    assert signed_record(forged) is None and signed_record(planted) is None
    assert find_export(_spec(folder), "1.0") is None


def test_the_child_makes_no_key_when_there_is_none(tmp_path) -> None:
    from engine.frozen.records import KEY_NAME
    from engine.trust import allow_list_path

    key = allow_list_path().parent / KEY_NAME
    key.unlink(missing_ok=True)
    folder = tmp_path / "onnx"
    folder.mkdir()
    (folder / "a.onnx").write_bytes(b"x")
    record_path(folder / "a.onnx").write_text(json.dumps({"parts": PARTS, "signature": "s"}))
    assert find_export(_spec(folder), "1.0") is None
    assert not key.exists()


# A run of `refit train` in a fresh interpreter (prefetching forks only there: pytest has threads).
TRAIN = r"""
import sys, runpy
sys.argv = ['refit'] + sys.argv[1:]
runpy.run_module('engine', run_name='__main__')
"""


def _train(
    folder: Path, workspace: Path, *before: str, script: str = TRAIN
) -> tuple[str, np.ndarray, Path]:
    """`refit train FOLDER --method linear-probe` run by ``script`` (given ``before`` first)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *before, "--workspace", str(workspace), "train",
         str(folder), "--method", "linear-probe"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    run = sorted((workspace / "runs").iterdir())[-1]
    probs = np.load(run / "evaluation" / "val-predictions.npz")["probs"]
    return done.stdout + done.stderr, probs, run


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for n, cls in enumerate(("dark", "light")):
        (root / cls).mkdir(parents=True)
        for i in range(24):
            base = 40 + 120 * n
            pixels = rng.normal(base, 30, (120 + i, 160, 3)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.jpg", quality=90)
    return root


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
def test_a_run_with_the_export_cached_takes_the_childs_features_and_trains_the_same(
    tmp_path,
) -> None:
    folder = _folder(tmp_path / "data")
    workspace = tmp_path / "ws"
    first_log, first, _ = _train(folder, workspace)  # exports, checks and signs the backbone
    assert "exported" in first_log and "while the run started" not in first_log
    for cached in (workspace / "cache" / "features").iterdir():
        cached.unlink()  # the features are computed again; the export is reused
    second_log, second, _ = _train(folder, workspace)
    assert "images went through it while the run started" in second_log
    # The same pixels, the same network: the same predictions (onnxruntime on one thread in the
    # child, two in the run: equal to float32 rounding).
    np.testing.assert_allclose(second, first, atol=1e-5)
    assert np.array_equal(second.argmax(1), first.argmax(1))

    # Records that do not vouch for these weights: the run computes every image itself.
    (record,) = (workspace / "cache" / "onnx").glob("*.checked.json")
    export = record.with_name(record.name.replace(".checked.json", ".onnx"))
    signed = signed_record(export)
    write_record(export, {**signed, "weights": "other weights"})
    for cached in (workspace / "cache" / "features").iterdir():
        cached.unlink()
    third_log, third, _ = _train(folder, workspace)
    assert "while the run started" not in third_log
    assert "checked against torch on" in third_log  # checked again, against these weights
    np.testing.assert_allclose(third, first, atol=1e-5)


# The child waits for a backbone's first export, runs it once the run has made and checked it,
# and its features are the run's own (a fresh interpreter: prefetching forks only there).
FIRST_EXPORT = r"""
import contextlib, json, os, signal, sys, time
from pathlib import Path
import numpy as np
from engine.config import RunConfig
from engine.data import prefetch
from engine.data.view import EvalView
from engine.frozen.early import EarlySpec
from engine.frozen.keys import backbone_parts
from engine.models.catalog import listed_entry

root, cache, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]


def held() -> list[str]:  # this process's pipes and memory files, beyond stdin/out/err
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if int(fd) > 2 and ("pipe:" in target or "refit-prefetch" in target):
                out.append(target)
    return sorted(out)


before = held()
config = RunConfig()
pre = listed_entry(config.model.backbone).preprocess
view = EvalView(pre.resize_size, pre.input_size, pre.interpolation)
spec = EarlySpec(str(cache), backbone_parts(config, pre.input_size), pre.mean, pre.std, 1)
prefetch.start(root, min_per_class=2, min_size=pre.resize_size, view=view, early=spec)
index = prefetch.take_index(root, min_per_class=2)
deadline = time.monotonic() + 60
while not prefetch.waiting_for_export(view) and time.monotonic() < deadline:
    time.sleep(0.05)
out = {"waited": prefetch.waiting_for_export(view)}

import torch
from engine.data import build_transform
from engine.frozen import FrozenForward
from engine.models import build_model
from engine.training.devices import resolve_placement

from engine.config import Device, DeviceConfig
from engine.data.images import load_image

model = build_model(config.model, num_classes=2)
transform = build_transform(model.preprocess, train=False)
finish = transform.finish
paths = [s.path for s in index.samples]
first = torch.stack([finish(prefetch.peek_view(p, view)) for p in paths[:4]])
cpu = resolve_placement(DeviceConfig(device=Device.CPU))
parts = backbone_parts(config, pre.input_size)
forward = FrozenForward(model.backbone, placement=cpu, runtime="auto", cache_dir=cache,
    key_parts=parts)
forward.open_session(first)
child = next(iter(prefetch._children.values()))
if mode in ("finish", "at-once", "some"):  # the run hands its threads over and waits
    while mode == "finish" and child.export is None and time.monotonic() < deadline + 60:
        time.sleep(0.01)  # at-once: right after its export, as a run whose imports are done
    shown = []
    wanted = set(paths[:16]) if mode == "some" else None  # the run needs only these
    prefetch.finish_features(view, threads=2, accept=forward.accepts, progress=shown.append,
                             check=lambda: None, found_s=prefetch.FOUND_S, paths=wanted)
    out["finished"], out["widened"], out["shown"] = child.finished, child.threads, shown
elif mode == "test-folder":  # which images the child runs the network on
    while child.export is None and time.monotonic() < deadline + 60:
        time.sleep(0.01)
    prefetch.finish_features(view, threads=2, accept=forward.accepts, progress=lambda n: None,
                             check=lambda: None)
    out["folders"] = sorted({os.path.relpath(p, root).split(os.sep)[0] for p in child.features})
    out["computed"] = len(child.features)
    prefetch.discard()
    print(json.dumps(out))
    sys.exit(0)
elif mode in ("kill", "sigstop"):  # the child dies or hangs while the run waits for it
    prefetch.STALL_S = 1.0
    while child.export is None and time.monotonic() < deadline + 60:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
    prefetch.finish_features(view, threads=2, accept=forward.accepts, progress=lambda n: None,
                             check=lambda: None)
    taken = prefetch.take_features(view)
    out["rows"] = 0 if taken is None else len(taken[1])
    prefetch.discard()
    out["gone"] = not os.path.exists(f"/proc/{child.pid}")
    out["held"], out["before"] = held(), before
    print(json.dumps(out))
    sys.exit(0)
elif mode in ("cancel", "cancel-at-once"):  # at once: while the child looks for the export
    class Stop(Exception):
        pass
    def stop():
        raise Stop()
    while mode == "cancel" and child.export is None and time.monotonic() < deadline + 60:
        time.sleep(0.01)
    try:
        prefetch.finish_features(view, threads=2, accept=forward.accepts, progress=print,
                                 check=stop, found_s=prefetch.FOUND_S)
    except Stop:
        out["raised"] = True
    out["children"] = len(prefetch._children)
    out["held"], out["before"] = held(), before
    print(json.dumps(out))
    sys.exit(0)
while not child.finished and time.monotonic() < deadline + 60:
    time.sleep(0.05)
export, rows = prefetch.take_features(view)
out["accepted"] = forward.accept_early(export, len(rows))
out["rows"] = len(rows)
own = forward(torch.stack([transform(load_image(p, min_size=pre.resize_size)) for p in paths]))
mine = np.stack([rows[p] for p in paths])
out["largest"] = float(np.abs(mine - own.numpy()).max())
out["samples"] = len(paths)
out["widened_at_end"] = child.threads
prefetch.discard()
out["held"], out["before"] = held(), before
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
@pytest.mark.parametrize("mode", ["wait", "finish", "at-once", "some"])
def test_the_child_runs_the_first_export_as_soon_as_the_run_has_checked_it(
    tmp_path, mode: str
) -> None:
    out = _first_export(tmp_path, mode)
    assert out["waited"] and out["accepted"]
    assert out["rows"] == out["samples"] == 48
    assert out["largest"] < 1e-4  # the same pixels through the same export
    assert out["held"] == out["before"]  # the child's pipes and memory file are closed
    if mode in ("finish", "at-once"):  # asked for the run's threads, it finished them all
        assert out["finished"] and out["widened"] == 2
        assert out["shown"] == sorted(out["shown"]) and out["shown"][-1] == 48
    if mode == "some":  # the run waited for the images it needs, and counted only those
        assert out["widened_at_end"] == 2  # (the child may say so after the run stopped waiting)
        assert out["shown"] == sorted(out["shown"]) and out["shown"][-1] == 16


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
@pytest.mark.parametrize("mode", ["cancel", "cancel-at-once"])
def test_a_run_cancelled_while_the_child_finishes_ends_the_child(tmp_path, mode: str) -> None:
    out = _first_export(tmp_path, mode)
    assert out["raised"] and out["children"] == 0
    assert out["held"] == out["before"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
@pytest.mark.parametrize("mode", ["kill", "sigstop"])
def test_a_child_killed_or_stopped_while_the_run_waits_leaves_nothing_behind(
    tmp_path, mode: str
) -> None:
    out = _first_export(tmp_path, mode)
    assert out["waited"]
    assert out["rows"] < 48  # it did not finish: the run computes the rest itself
    assert out["gone"]  # no stopped child left: ended and reaped
    assert out["held"] == out["before"]  # its pipes and its memory file are closed


def _first_export(tmp_path: Path, mode: str, folder: Path | None = None) -> dict:
    folder = folder or _folder(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-c", FIRST_EXPORT, str(folder), str(tmp_path / "onnx"), mode],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# While it waits for a first export that does not come, the child normalises its views ahead, up
# to its cap; the rows it hands out are, bit for bit, what the run's transform makes of each image.
AHEAD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from engine.config import RunConfig
from engine.data import prefetch
from engine.data.view import EvalView
from engine.frozen.early import BATCH, EarlySpec
from engine.frozen.keys import backbone_parts
from engine.models.catalog import listed_entry

root, cache, cap_batches = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
config = RunConfig()
pre = listed_entry(config.model.backbone).preprocess
view = EvalView(pre.resize_size, pre.input_size, pre.interpolation)
row_bytes = 3 * pre.input_size * pre.input_size * 4
if cap_batches:
    prefetch.NORMALISED_CAP = cap_batches * BATCH * row_bytes  # the child inherits it
spec = EarlySpec(str(cache), backbone_parts(config, pre.input_size), pre.mean, pre.std, 1)
prefetch.start(root, min_per_class=2, min_size=pre.resize_size, view=view, early=spec)
index = prefetch.take_index(root, min_per_class=2)
paths = [s.path for s in index.samples]
child = next(iter(prefetch._children.values()))
expected = min(len(paths), cap_batches * BATCH) if cap_batches else len(paths)
deadline = time.monotonic() + 60
while len(child.normalised) < expected and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.3)  # a child past its cap makes no more
rows = prefetch.take_normalised(paths, view)

import torch
from engine.data import build_transform
from engine.data.images import load_image
from engine.models import build_model

transform = build_transform(build_model(config.model, num_classes=2).preprocess, train=False)
equal = [
    torch.equal(transform(load_image(p, min_size=pre.resize_size)), torch.from_numpy(rows[p]))
    for p in paths if p in rows
]
again = prefetch.take_normalised(paths, view)
print(json.dumps({"rows": len(rows), "equal": all(equal) and len(equal) == len(rows),
                  "again": len(again), "samples": len(paths)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
@pytest.mark.parametrize("cap_batches", [0, 2])
def test_a_waiting_child_makes_the_runs_input_rows_ahead_up_to_its_cap(
    tmp_path, cap_batches: int
) -> None:
    folder = _folder(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-c", AHEAD, str(folder), str(tmp_path / "onnx"), str(cap_batches)],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["samples"] == 48
    assert out["rows"] == (48 if cap_batches == 0 else 2 * 16)
    assert out["equal"]  # the run's own transform, bit for bit
    assert out["again"] == 0  # handed out once


# A run whose child never sees the export (it looks in another folder): the child normalises every
# view while it waits, the run only runs the network on those rows, and trains the model a run
# without prefetching trains.
READY = r"""
import dataclasses, sys, runpy
import engine.cli.train as cli
import engine.data.prefetch as pf
mode, elsewhere = sys.argv[1], sys.argv[2]
if mode == "off":
    pf.start = lambda *a, **k: False
else:
    own = cli._early_spec
    cli._early_spec = lambda *a: dataclasses.replace(own(*a), cache_dir=elsewhere)
sys.argv = ["refit"] + sys.argv[3:]
runpy.run_module("engine", run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
def test_a_run_only_runs_the_network_on_rows_the_child_made_ahead(tmp_path) -> None:
    folder = _folder(tmp_path / "data")
    out = {}
    for mode in ("ahead", "off"):
        elsewhere = str(tmp_path / "elsewhere")
        log, probs, _ = _train(folder, tmp_path / f"ws-{mode}", mode, elsewhere, script=READY)
        out[mode] = (log, probs)
    assert "network's input of 48 more images while it waited" in out["ahead"][0]
    assert "while it waited" not in out["off"][0]
    np.testing.assert_array_equal(out["ahead"][1], out["off"][1])


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)")
def test_the_child_leaves_a_test_folder_out_of_the_backbone_pass(tmp_path) -> None:
    """A test folder's images are never in a run's feature pass: the child does not spend the
    run's threads on them (the run waits for the child's features)."""
    data = tmp_path / "data"
    _folder(data / "train")
    rng = np.random.default_rng(2)
    for n, cls in enumerate(("dark", "light")):
        (data / "test" / cls).mkdir(parents=True)
        for i in range(8):
            pixels = rng.normal(40 + 120 * n, 30, (120, 160, 3)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(data / "test" / cls / f"t{i}.jpg", quality=90)
    out = _first_export(tmp_path, "test-folder", data)
    assert out["folders"] == ["train"] and out["computed"] == 48
    log, _, run = _train(data, tmp_path / "ws")
    assert "48 images went through it in a second process" in log, log[-3000:]
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["test"]) == 16  # the test folder is the run's test split, untouched
