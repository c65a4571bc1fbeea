"""engine/ type-checks: mypy, configured by pyproject.toml's [tool.mypy], finds no errors.

Run by hand: ``mypy`` (or ``mypy engine``) in the repository root. The check keeps its cache in
the repository's .mypy_cache, so after the first run it only reads the files that changed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install -e '.[dev]')",
)


@pytest.mark.slow
def test_engine_has_no_type_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache"), "engine"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode not in (0, 1):  # 2: mypy itself failed (a bad config, a crash)
        raise RuntimeError(f"mypy did not run (exit {done.returncode}):\n{done.stderr}")
    assert done.returncode == 0, f"mypy found type errors in engine/:\n{done.stdout}"
