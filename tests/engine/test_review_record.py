"""Label reviews kept in the workspace and recorded by later runs of the same folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from synthetic import make_shapes_folder
from test_training import tiny_config

from engine.data import scan_folder
from engine.data.index import Sample
from engine.evaluation.review_record import checked_review, record_path, review_of, save_review
from engine.evaluation.reviewer import _label_review

CLASSES = ("cat", "dog")


def _samples(n: int) -> list[Sample]:
    return [Sample(f"/data/{i}.png", i % 2, None, f"digest{i:04d}") for i in range(n)]


def _save(ws: Path, samples: list[Sample], root: str = "/data") -> Path | None:
    index = SimpleNamespace(root=root, samples=samples, classes=CLASSES)
    review = SimpleNamespace(reviewed=len(samples), flagged=3, backbone="efficientnet_lite0")
    return save_review(ws, index, review)


def test_a_run_counts_the_images_the_review_saw_with_their_present_labels(tmp_path):
    ws, samples = tmp_path / "ws", _samples(10)
    path = _save(ws, samples)
    assert path == record_path(ws, "/data") and path is not None and path.is_file()
    assert "digest0001" not in path.read_text()  # hashes only, no digest or file name
    same = review_of(ws, "/data", samples, CLASSES)
    assert same is not None
    assert (same["covered"], same["images"], same["reviewed"], same["flagged"]) == (10, 10, 10, 3)
    relabelled = [*samples[:9], Sample("/data/9.png", 0, None, "digest0009")]  # dog -> cat
    added = [*samples, Sample("/data/new.png", 1, None, "digestnew")]
    assert review_of(ws, "/data", relabelled, CLASSES)["covered"] == 9
    assert review_of(ws, "/data", added, CLASSES)["covered"] == 10
    assert review_of(ws, "/elsewhere", samples, CLASSES) is None  # another folder
    assert review_of(tmp_path / "other-ws", "/data", samples, CLASSES) is None


@pytest.mark.parametrize(
    "edit",
    [
        {"date": "2026-13-45"},
        {"date": "yesterday"},
        {"reviewed": -1},
        {"flagged": True},
        {"flagged": 10**15},
        {"backbone": ["list"]},
        {"images": "not base64!"},
        {"images": "AAAA"},  # 3 bytes: not whole 8-byte hashes
    ],
)
def test_a_review_file_edited_by_someone_else_counts_as_no_review(tmp_path, edit):
    ws = tmp_path / "ws"
    path = _save(ws, _samples(4))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, **edit}))
    assert review_of(ws, "/data", _samples(4), CLASSES) is None


def test_a_review_path_that_is_a_fifo_a_device_link_or_too_large_is_not_read(tmp_path, monkeypatch):
    import engine.evaluation.review_record as rr

    ws = tmp_path / "ws"
    path = _save(ws, _samples(4))
    monkeypatch.setattr(rr, "RECORD_LIMIT", 16)
    assert review_of(ws, "/data", _samples(4), CLASSES) is None
    monkeypatch.undo()
    path.unlink()
    os.mkfifo(path)
    assert review_of(ws, "/data", _samples(4), CLASSES) is None  # no hang
    path.unlink()
    path.symlink_to("/dev/zero")  # endless bytes behind a link
    assert review_of(ws, "/data", _samples(4), CLASSES) is None
    path.unlink()
    # a new review replaces a planted link, never writes through it
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    path.symlink_to(target)
    assert _save(ws, _samples(4)) == path and not path.is_symlink()
    assert target.read_text() == "keep me"
    assert review_of(ws, "/data", _samples(4), CLASSES) is not None


def test_the_report_says_what_the_review_saw_in_months_and_counts():
    base = {"date": "2026-12-06", "backbone": "efficientnet_lite0", "reviewed": 80, "flagged": 3}
    all_seen = _label_review({**base, "covered": 80, "images": 80})
    assert all_seen.startswith("A label review in 2026-12 saw all 80 images with these labels")
    assert "flagged 3 of the 80" in all_seen and "2026-12-06" not in all_seen
    some = _label_review({**base, "covered": 70, "images": 80})
    assert "saw 70 of the 80 images" in some and "added or relabelled since" in some
    assert "treat the labels as not reviewed" in _label_review({**base, "covered": 0, "images": 8})
    none = _label_review(None)
    assert none.startswith("No label review of these images is recorded")
    # a summary edited by someone else
    assert _label_review({**base, "covered": "80", "images": 80}) == none
    odd = {**base, "backbone": "x\x1b[2J<b>" + "y" * 500, "covered": 1, "images": 1}
    hostile = _label_review(odd)
    assert "\x1b" not in hostile and len(hostile) < 500
    assert checked_review({**base}) == base  # a review file's own fields


@pytest.mark.slow  # a label review and a training run
def test_a_run_after_a_label_review_records_it_and_the_report_says_so(tmp_path):
    from engine.config import Method
    from engine.evaluation.label_review import review_labels
    from engine.runs import Workspace
    from engine.training.trainer import train

    root = make_shapes_folder(tmp_path / "shapes", per_class=12, seed=3)
    ws = tmp_path / "ws"
    config = tiny_config(root, method=Method.LINEAR_PROBE, epochs=1)
    before = train(config, workspace=ws)
    assert "label_review" not in Workspace(ws).open_run(Path(before.run_dir).name).summary()
    review = review_labels(scan_folder(str(root)), workspace=ws, pretrained=False)
    after = train(config, workspace=ws)
    record = Workspace(ws).open_run(Path(after.run_dir).name).summary()["label_review"]
    assert record["covered"] == record["images"] == 24
    assert record["reviewed"] == review.reviewed and record["flagged"] == review.flagged
    assert _label_review(record).startswith("A label review in ")
