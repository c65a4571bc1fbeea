"""The app started from a terminal: it says where runs go, and SIGTERM / Ctrl+C close it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_terminating_signal_closes_the_app_cleanly(tmp_path, sig) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "--workspace", str(tmp_path / "ws")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _ready_then_signal(proc, sig)
    finally:
        if proc.poll() is None:  # a failed assertion must not leave the app running
            proc.kill()
            proc.wait()


def _ready_then_signal(proc: subprocess.Popen, sig: int) -> None:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # Qt's offscreen plugin may print notes before the ready line
        seen.append(line)
        if "Runs are stored in" in line:
            break
    assert seen and "Runs are stored in" in seen[-1], "".join(seen)
    assert "installed from source" in seen[-1]
    time.sleep(1.0)  # let the event loop run (the device probe starts after 300 ms)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest, rest
