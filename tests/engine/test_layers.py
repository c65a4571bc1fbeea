"""House rule: the engine is a library that never loads Qt."""

from __future__ import annotations

import subprocess
import sys


def test_import_engine_loads_no_qt():
    code = (
        "import sys, engine, engine.config, engine.events, engine.runs, engine.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'desktop')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_training_stack_loads_no_qt():
    code = (
        "import sys, engine.training.trainer, engine.models, engine.data\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'shiboken6', 'pyqtgraph', 'desktop')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
