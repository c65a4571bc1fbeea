"""The hostile folder through `refit train`'s prefetching child: the same split, the same
problems and the same model as the run scanning and decoding it itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reliability.hostile_folder import make_hostile_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="prefetching forks (Linux only)"),
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (
    "import sys, runpy\n"
    "import engine.data.prefetch as pf\n"
    "if sys.argv[1] == 'off': pf.start = lambda *a, **k: False\n"
    "sys.argv = ['refit'] + sys.argv[2:]\n"
    "runpy.run_module('engine', run_name='__main__')\n"
)


def test_the_hostile_folder_trains_the_same_with_and_without_prefetching(tmp_path) -> None:
    hostile = make_hostile_folder(tmp_path)
    runs = {}
    for mode in ("on", "off"):
        ws = tmp_path / f"ws-{mode}"
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode, "--workspace", str(ws), "train",
             str(hostile.root), "--method", "linear-probe", "--quiet"],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stdout + done.stderr
        runs[mode] = (next((ws / "runs").iterdir()), done.stdout)
    (on, on_out), (off, off_out) = runs["on"], runs["off"]
    assert json.loads((on / "splits.json").read_text()) == json.loads(
        (off / "splits.json").read_text()
    )
    # The same problems are reported, one sentence each, in the same order.
    problems = [line for line in on_out.splitlines() if line.startswith("warning")]
    assert len(problems) >= len(hostile.skipped) // 2, on_out[-2000:]
    assert problems == [line for line in off_out.splitlines() if line.startswith("warning")]
    probs_on = np.load(on / "evaluation" / "val-predictions.npz")["probs"]
    probs_off = np.load(off / "evaluation" / "val-predictions.npz")["probs"]
    assert np.array_equal(probs_on, probs_off)
