"""Shared test set-up: no network, no display, a private workspace per test."""

from __future__ import annotations

import os

# Set before anything imports Qt or Hugging Face libraries.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest


@pytest.fixture(autouse=True)
def _private_workspace(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own REFIT_HOME and per-user config folder (the remote-code
    allow-list), so no test writes into the user's real workspace or settings."""
    home = tmp_path_factory.mktemp("refit-home")
    monkeypatch.setenv("REFIT_HOME", str(home))
    monkeypatch.setenv("REFIT_CONFIG_DIR", str(home / "user-config"))
    return home


@pytest.fixture(autouse=True)
def _collect_in_the_gui_thread(request: pytest.FixtureRequest):
    """Qt tests collect reference cycles in the GUI thread only, as the app does
    (desktop/gc_guard.py): a worker thread's allocations must not destroy an earlier test's
    widgets from that thread."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("qapp")
    from desktop.gc_guard import GuiCollector

    collector = GuiCollector()
    collector.start()
    yield
    collector.stop()  # after the test's threads ended (this fixture is torn down last)
