"""Which build is running: `refit --version`, the About box and the status bar read it."""

from __future__ import annotations

import json
import sys

import pytest

from engine import edition as edition_mod
from engine.cli import main


def test_a_source_install_says_so() -> None:
    assert edition_mod.edition() == "installed from source"
    assert "installed from source" in edition_mod.version_line()


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ({"edition": "cpu"}, "CPU/Apple edition"),
        ({"edition": "nvidia"}, "NVIDIA GPU edition"),
        ({"edition": "quantum"}, "packaged, edition unknown"),
        (["cpu"], "packaged, edition unknown"),
        (None, "packaged, edition unknown"),  # no marker file
    ],
)
def test_a_bundle_reads_its_marker(tmp_path, monkeypatch, marker, expected) -> None:
    if marker is not None:
        (tmp_path / edition_mod.MARKER).write_text(json.dumps(marker), encoding="utf-8")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert edition_mod.edition() == expected


def test_a_broken_marker_is_not_fatal(tmp_path, monkeypatch) -> None:
    (tmp_path / edition_mod.MARKER).write_bytes(b"\xff\x00not json")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert edition_mod.edition() == "packaged, edition unknown"


def test_refit_version_prints_version_edition_and_torch(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Refit Studio ")
    assert "installed from source" in out and "torch 2." in out
