"""House rule: the engine is a library that never loads Qt."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    [
        "engine, engine.config, engine.events, engine.runs, engine.cli",
        "engine.training.trainer, engine.models, engine.data, engine.evaluation",
    ],
)
@pytest.mark.slow
def test_importing_the_engine_loads_no_qt(modules):
    code = (
        f"import sys, {modules}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'desktop')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
