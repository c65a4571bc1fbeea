"""Multi-frame DICOM files and the DICOM window of `refit scan` (generated files)."""

from __future__ import annotations

import json

from dicom_synth import dicom_class_folder

from engine.cli import main


def test_refit_scan_decodes_dicom_with_the_window_asked_for(tmp_path, capsys, monkeypatch):
    root = dicom_class_folder(tmp_path / "ct", per_class=3)
    stats = {}
    for window in ("file", "bone"):
        assert main(["scan", str(root), "--json", "--dicom-window", window]) == 0
        stats[window] = json.loads(capsys.readouterr().out)["intensity"]
    assert stats["file"]["dark"] == 0 < stats["bone"]["dark"]  # of the windowed pixels
    seen = {}

    def fake_review(index, **kw):
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr("engine.evaluation.label_review.review_labels", fake_review)
    main(["scan", str(root), "--json", "--review", "--dicom-window", "bone"])
    assert seen["dicom_window"] == "bone"  # and the review's features are decoded the same way


def test_refit_scan_refuses_a_dicom_window_for_texts(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(6)))
    assert main(["scan", str(table), "--dicom-window", "lung"]) != 0
    assert "--dicom-window applies to images" in capsys.readouterr().err
