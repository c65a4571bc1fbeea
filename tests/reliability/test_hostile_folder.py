"""A hostile dataset folder: every entry is used or skipped with a sentence naming it, the scan
finishes in bounded time and memory, training works on it, and nothing in it is written."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import ProblemKind, scan_folder
from reliability.hostile_folder import CLASSES, GOOD_PER_CLASS, make_hostile_folder

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero links are POSIX")

REPO = Path(__file__).resolve().parents[2]
# Runs `refit scan --json` and prints the process's own peak memory (KiB on Linux) last.
_MEASURED_SCAN = """
import resource, sys
from engine.cli import main
code = main(["scan", sys.argv[1], "--json"])
sys.stdout.flush()
# VmHWM is this process's own peak; ru_maxrss also counts the memory of the (large) pytest
# process the child was forked from, since Linux keeps it across exec.
try:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
except (OSError, IndexError):
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("PEAK_KIB", hwm, file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def hostile(tmp_path):
    return make_hostile_folder(tmp_path)


def listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """(mode, size, mtime_ns) of every entry, by lstat: no link followed, no file opened."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
            )
    return out


def entries_to_account_for(root: Path) -> list[str]:
    """Every visible entry that is not a plain folder: files, links, pipes."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # links to folders are listed, not walked
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                found.append(path)
    return found


def test_every_entry_is_used_or_skipped_with_a_sentence_naming_it(hostile):
    before = listing(hostile.root)
    index = scan_folder(hostile.root)
    used = {s.path for s in index.samples}
    told = {p.path: p for p in index.problems if p.path}
    for path in entries_to_account_for(hostile.root):
        rel = Path(path).relative_to(hostile.root).as_posix()
        assert path in used or path in told, f"{rel} was neither used nor named in a problem"
        if path in told:
            assert told[path].message.startswith(rel + " "), told[path].message
    for path, what in hostile.accepted.items():
        assert path in used, f"{what} ({path}) should be used"
    for path, what in hostile.skipped.items():
        assert path in told and path not in used, f"{what} ({path}) should be skipped"
    kind = {Path(p).name: told[p].kind for p in hostile.skipped}
    assert kind["pipe.jpg"] is ProblemKind.NOT_REGULAR
    assert kind["zero.jpg"] is kind["everything"] is kind["escape"] is ProblemKind.LINK_OUTSIDE
    assert kind["up"] is kind["parent"] is kind["loop_a"] is ProblemKind.LINK_LOOP
    assert kind["bomb.png"] is kind["bomb_warn.png"] is ProblemKind.TOO_LARGE
    assert kind["huge.png"] is ProblemKind.FILE_TOO_BIG
    assert "256 MiB" in told[str(hostile.root / "circle" / "huge.png")].message
    real_root = os.path.realpath(hostile.root)
    assert all(os.path.realpath(p).startswith(real_root + os.sep) for p in used)
    counts = index.class_counts()["all"]
    assert index.classes == CLASSES
    assert counts["circle"] == GOOD_PER_CLASS  # nothing from / or from the folder outside
    assert counts["square"] == GOOD_PER_CLASS + 4  # CMYK, 16-bit, palette+alpha, EXIF-rotated
    assert listing(hostile.root) == before


def test_refit_scan_finishes_in_bounded_time_and_memory_without_stderr_noise(hostile):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED_SCAN, str(hostile.root)],
        capture_output=True,
        text=True,
        timeout=60,  # a hang (a FIFO opened, / walked) fails here instead of freezing CI
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["classes"] == list(CLASSES)
    *noise, peak = done.stderr.strip().splitlines()
    assert noise == [], noise  # no DecompressionBombWarning, no traceback
    assert int(peak.split()[1]) < 1024 * 1024, peak  # KiB: a 2 GiB file was never read whole


@pytest.mark.slow  # a full training (with Recommended's advice) on the hostile folder
def test_a_short_training_on_the_hostile_folder_works(hostile, tmp_path):
    from engine.config import DataConfig, ModelConfig, RunConfig, ScheduleConfig
    from engine.events import LogMessage
    from engine.training.trainer import train

    before = listing(hostile.root)
    config = RunConfig(
        seed=0,
        data=DataConfig(path=str(hostile.root), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    logs: list[str] = []
    result = train(
        config,
        workspace=tmp_path / "ws",
        on_event=lambda e: logs.append(e.text) if isinstance(e, LogMessage) else None,
    )
    assert str(result.status) == "completed", result.error
    assert any(t.startswith("circle/pipe.jpg is a named pipe") for t in logs)
    assert listing(hostile.root) == before
