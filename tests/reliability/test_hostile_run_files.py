"""Hostile run and export files (issue 10 follow-up): pipes, links to /dev/zero, .npz bombs,
forged refit_model.json and run.lock. Nothing hangs, nothing eats memory, and each bad file gets
one sentence naming it.

Commands that could hang on a pipe run in a subprocess with a timeout, so a hang fails the test
instead of stalling the suite. Every pipe lives under tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from trained_runs import train_image_run

from engine import run_lock
from engine.cli import main as refit
from engine.runs import RunDir, Workspace
from engine.safe_read import NotReadableError, check_capped, open_capped, read_capped

pytestmark = pytest.mark.slow  # one real run (a few seconds), then only reading
REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 90


def _refit(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,  # a hang on a pipe fails here
        env=env,
        cwd=REPO,
    )


def _one_sentence(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("refit: "), err
    return lines[-1]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A trained, evaluated run and an export of it."""
    from engine.evaluation import evaluate_run
    from engine.export import export_run

    root = tmp_path_factory.mktemp("hostile-runs")
    run = RunDir(train_image_run(root))
    evaluate_run(run, "val")
    export = root / "export"
    export_run(run, ["safetensors"], export)
    image = next((root / "shapes" / "circle").iterdir())
    return run, export, image


def _copy(run: RunDir, tmp_path: Path, name: str) -> RunDir:
    copy = RunDir(tmp_path / "ws" / "runs" / name)
    shutil.copytree(run.path, copy.path)
    return copy


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _zero_link(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


# -- the one safe reader ------------------------------------------------------------------------


def test_safe_reader_refuses_pipes_devices_and_big_files_before_reading(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    sparse = tmp_path / "sparse.json"
    with open(sparse, "wb") as fh:
        fh.truncate(2**40)  # 1 TiB of nothing: refused from its size, never read
    for reader in (read_capped, check_capped, open_capped):
        with pytest.raises(NotReadableError, match="named pipe"):
            reader(fifo, 1024)
        with pytest.raises(NotReadableError, match="a device"):
            reader(zero, 1024)
        with pytest.raises(NotReadableError, match="larger than 1 KiB"):
            reader(sparse, 1024)
        with pytest.raises(FileNotFoundError):
            reader(tmp_path / "missing", 1024)


# -- pipes and /dev/zero in run folders ---------------------------------------------------------

PIPED = {  # file -> whether the run is "damaged" (else it is listed with a note, still usable)
    "state.json": True,
    "config.json": True,
    "summary.json": True,
    "splits.json": True,
    "metrics.jsonl": False,
    "evaluation/val.json": False,
    "evaluation/val-predictions.npz": False,
    "run.lock": False,
}


def test_refit_runs_lists_runs_whose_files_are_pipes_or_links_to_dev_zero(good, tmp_path):
    run, _, _ = good
    cases = {}
    for i, (name, damaging) in enumerate(PIPED.items()):
        for how, make in (("pipe", _fifo), ("zero", _zero_link)):
            copy = _copy(run, tmp_path, f"z{i:02d}-{how}")
            make(copy.path / name)
            cases[copy.run_id] = (name, how, damaging)
    done = _refit("--workspace", str(tmp_path / "ws"), "runs", "--json")
    assert done.returncode == 0, done.stderr
    listed = {r["run_id"]: r for r in json.loads(done.stdout)}
    assert set(cases) <= set(listed)
    for run_id, (name, how, damaging) in cases.items():
        row = listed[run_id]
        said = "named pipe" if how == "pipe" else "a device"
        if name == "run.lock":  # an unreadable lock is no owner: the run stays completed
            assert row["status"] == "completed", row
            continue
        assert row["status"] == ("damaged" if damaging else "completed"), (name, how, row)
        assert any(Path(name).name in p and said in p for p in row["problems"]), (name, row)


def test_pipe_manifest_of_the_last_checkpoint_is_named_and_not_waited_on(good, tmp_path):
    run, _, image = good
    copy = _copy(run, tmp_path, "m")
    (generation,) = (copy.checkpoints).glob("last-*")
    _fifo(generation / "manifest.json")
    ws = str(tmp_path / "ws")
    done = _refit("--workspace", ws, "predict", "m", str(image), "--checkpoint", "last")
    assert done.returncode == 2
    sentence = _one_sentence(done.stderr)
    assert "manifest.json is a named pipe" in sentence


@pytest.mark.parametrize("how", ["pipe", "zero"])
def test_best_checkpoint_that_is_a_pipe_or_dev_zero_is_named_not_called_missing(
    good, tmp_path, how
):
    run, _, image = good
    copy = _copy(run, tmp_path, "b")
    (_fifo if how == "pipe" else _zero_link)(copy.checkpoints / "best.safetensors")
    done = _refit("--workspace", str(tmp_path / "ws"), "predict", "b", str(image))
    assert done.returncode == 2
    sentence = _one_sentence(done.stderr)
    assert "best.safetensors is " + ("a named pipe" if how == "pipe" else "a device") in sentence
    assert "missing" not in sentence


def test_refit_predict_of_a_pipe_or_missing_image_exits_2(good, tmp_path):
    _, export, _ = good
    os.mkfifo(tmp_path / "pipe.png")
    done = _refit("predict", str(export), str(tmp_path / "pipe.png"), str(tmp_path / "gone.png"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout.count("error:") == 2 and "named pipe" in done.stdout


# -- .npz bombs ---------------------------------------------------------------------------------


def _npz_with(members: dict[str, bytes], *, deflate: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def _lying_header(shape: tuple[int, ...]) -> bytes:
    """A .npy member whose header declares ``shape`` but holds 16 bytes."""
    buf = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + b"\0" * 16


def test_crafted_predictions_npz_mark_only_that_run_and_never_allocate(good, tmp_path):
    from engine.evaluation.predictions import PredictionError, SplitPredictions

    run, _, _ = good
    small = {"labels.npy": _npy(np.zeros(2, np.int64)), "probs.npy": _npy(np.zeros((2, 2)))}
    crafted = {
        "shape": _npz_with({**small, "meta.npy": _lying_header((10**13,))}),
        "bomb": _npz_with({**small, "meta.npy": b"\0" * (64 * 2**20)}, deflate=True),
        "objects": _npz_with({**small, "meta.npy": _npy(np.array([{"a": 1}], dtype=object))}),
    }
    said = {
        "shape": "declaring more data than the archive stores",
        "bomb": "compressed far more than any file the app writes",
        "objects": "Python objects (a pickle), which is never loaded",
    }
    copies = {}
    for kind, data in crafted.items():
        copy = _copy(run, tmp_path, f"npz-{kind}")
        (copy.path / "evaluation" / "val-predictions.npz").write_bytes(data)
        copies[kind] = copy
    untouched = _copy(run, tmp_path, "npz-good")
    runs = {r.run_id: r for r in Workspace(tmp_path / "ws").list_runs()}
    assert runs[untouched.run_id].problems == ()
    for kind, copy in copies.items():
        info = runs[copy.run_id]
        assert info.status == "completed", (kind, info)
        assert any(said[kind] in p and "val-predictions.npz" in p for p in info.problems), info
        with pytest.raises(PredictionError, match=re.escape(said[kind])):
            SplitPredictions.load(copy.path / "evaluation" / "val-predictions.npz")


# -- forged refit_model.json --------------------------------------------------------------------

FORGED = {
    "format_version": ("abc", "format_version is not a whole number"),
    "format_version ": ([1], "format_version is not a whole number"),
    "format_version  ": (float("inf"), "format_version is not a whole number"),
    "config": ("x", "config has the wrong type"),
    "classes": ([["a"]], "classes are not a list of names"),
}


@pytest.mark.parametrize("key", list(FORGED))
def test_forged_refit_model_json_gets_one_sentence_naming_it(good, tmp_path, capsys, key):
    _, export, image = good
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    manifest = json.loads((folder / "refit_model.json").read_text())
    value, said = FORGED[key]
    manifest[key.strip()] = value
    text = json.dumps(manifest).replace("Infinity", "1e400")  # what a hostile file holds
    (folder / "refit_model.json").write_text(text)
    assert refit(["predict", str(folder), str(image)]) == 2
    sentence = _one_sentence(capsys.readouterr().err)
    assert "refit_model.json" in sentence and said in sentence


def test_deeply_nested_or_piped_refit_model_json_gets_one_sentence(good, tmp_path, capsys):
    _, export, image = good
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    deep = 200_000
    (folder / "refit_model.json").write_text('{"classes": ' + "[" * deep + "]" * deep + "}")
    assert refit(["predict", str(folder), str(image)]) == 2
    assert "nested too deeply" in _one_sentence(capsys.readouterr().err)
    _fifo(folder / "refit_model.json")
    done = _refit("predict", str(folder), str(image))
    assert done.returncode == 2
    assert "refit_model.json cannot be read: it is a named pipe" in _one_sentence(done.stderr)


def test_export_into_a_folder_with_a_piped_refit_model_json_does_not_hang(good, tmp_path):
    run, _, _ = good
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "refit_model.json")
    done = _refit("export", str(run.path), "--out", str(out), "--format", "safetensors")
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr


def test_dev_null_as_export_folder_is_called_a_device(good, capsys):
    run, _, _ = good
    assert refit(["export", str(run.path), "--out", "/dev/null", "--format", "safetensors"]) == 2
    assert "/dev/null is a device, not a folder" in _one_sentence(capsys.readouterr().err)


# -- forged run.lock, state.json, metrics, refit trust ------------------------------------------


@pytest.mark.parametrize("started", ["1e308", "NaN", "-1", '"x"', "true"])
def test_forged_run_lock_is_no_owner_and_never_an_exception(good, tmp_path, started):
    run, _, _ = good
    copy = _copy(run, tmp_path, "lock")
    text = f'{{"pid": 1, "started": {started}, "host": "elsewhere"}}'
    copy.lock_path.write_text(text)
    assert run_lock.read_owner(copy.lock_path) is None
    (info,) = Workspace(tmp_path / "ws").list_runs()
    assert info.status == "completed"
    far = run_lock.LockOwner(pid=1, started=1e308, host="elsewhere")
    assert "unknown time" in far.describe()


def test_a_status_that_is_not_text_marks_the_run_damaged_with_a_sentence(good, tmp_path):
    run, _, _ = good
    copy = _copy(run, tmp_path, "status")
    state = json.loads(copy.state_path.read_text())
    state["status"] = {"x": 1}
    copy.state_path.write_text(json.dumps(state))
    (info,) = Workspace(tmp_path / "ws").list_runs()
    assert info.status == "damaged"
    assert any("status that is not text" in p for p in info.problems)


def test_one_unreadable_metrics_line_is_noted_in_the_singular(good, tmp_path):
    run, _, _ = good
    copy = _copy(run, tmp_path, "metrics")
    with open(copy.metrics_path, "ab") as fh:
        fh.write(b"\xff garbage\n")
    (info,) = Workspace(tmp_path / "ws").list_runs()
    (note,) = [p for p in info.problems if "metrics.jsonl" in p]
    assert note.startswith("1 line of") and "is skipped (the curves miss it)" in note
    assert "resum" not in note  # a completed run cannot be resumed: promise nothing


def test_refit_trust_of_a_loop_of_links_gets_one_sentence(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert refit(["trust", str(tmp_path / "a")]) == 2
    assert "loop of links" in _one_sentence(capsys.readouterr().err)


def test_resume_takes_over_a_run_lock_that_is_a_pipe(good, tmp_path):
    run, _, _ = good
    copy = _copy(run, tmp_path, "resume")
    state = json.loads(copy.state_path.read_text())
    state.update(status="cancelled", resumable=True)
    copy.state_path.write_text(json.dumps(state))
    config = json.loads(copy.config_path.read_text())
    config["schedule"]["epochs"] = 3
    copy.config_path.write_text(json.dumps(config))
    os.mkfifo(copy.lock_path)
    done = _refit("resume", str(copy.path), "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not copy.lock_path.exists()  # the pipe was moved aside, the real lock released
    assert json.loads(copy.state_path.read_text())["status"] == "completed"
