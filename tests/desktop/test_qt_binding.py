"""Guards against a broken Qt binding: PySide6 6.12.0 leaks a reference to None per call."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_qt_calls_do_not_drop_references_to_none(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
    # Other threads may hold or drop a few references meanwhile; a leak is one per call.
    assert abs(sys.getrefcount(None) - before) < 500
