"""`refit` ends without the interpreter teardown, keeping its output, exit code and atexit work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def test_output_exit_code_and_atexit_handlers_survive_the_quick_exit(tmp_path):
    marker = tmp_path / "atexit-ran"
    done = run(
        f"""
        import atexit, sys
        from engine.fast_exit import exit_now
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        sys.stdout.write("unflushed line without a newline")
        sys.stderr.write("and on stderr")
        exit_now(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == "unflushed line without a newline"
    assert done.stderr == "and on stderr"
    assert marker.read_text() == "yes"


def test_a_running_thread_is_waited_for(tmp_path):
    marker = tmp_path / "thread-finished"
    done = run(
        f"""
        import threading, time
        from engine.fast_exit import exit_now
        def work():
            time.sleep(0.5)
            open({str(marker)!r}, "w").write("done")
        threading.Thread(target=work).start()
        exit_now(0)
        """
    )
    assert done.returncode == 0 and marker.read_text() == "done"


@pytest.mark.slow
def test_the_cli_module_exits_with_mains_code():
    done = subprocess.run(
        [sys.executable, "-m", "engine", "train", "/no/such/folder"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("refit: ") and "/no/such/folder" in done.stderr


@pytest.mark.slow
def test_a_reader_that_leaves_early_is_not_an_error():
    listing = subprocess.Popen(
        [sys.executable, "-m", "engine", "backbones"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    listing.stdout.readline()
    listing.stdout.close()  # like `| head -1`
    _, err = listing.communicate(timeout=120)
    assert listing.returncode == 0 and b"BrokenPipe" not in err
