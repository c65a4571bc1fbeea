"""Likely label errors: group-aware folds, the confident-learning flags, and the review of a
folder with planted mistakes (engine and `refit scan --review`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic import make_shapes_folder, make_text_table, tree_snapshot

from engine.cli import main
from engine.data import scan_folder, scan_text_source
from engine.evaluation.label_review import (
    ReviewError,
    class_thresholds,
    out_of_fold_probabilities,
    rank_label_issues,
    review_folds,
    review_labels,
)
from engine.task import Cancelled, Task


def test_group_folds_keep_each_patient_on_one_side():
    # 12 patients, 3 images each; label by patient; two images have no group (their own unit)
    groups: list[str | None] = [f"p{i // 3}" for i in range(36)] + [None, None]
    labels = [(i // 3) % 2 for i in range(36)] + [0, 1]
    folds = review_folds(labels, groups, seed=1)
    assert len(folds) >= 2
    held_count = np.zeros(len(labels), dtype=int)
    for train, held in folds:
        assert set(train).isdisjoint(held)
        train_groups = {groups[i] for i in train if groups[i] is not None}
        held_groups = {groups[i] for i in held if groups[i] is not None}
        assert train_groups.isdisjoint(held_groups)  # no patient vouches for itself
        held_count[held] += 1
    assert (held_count == 1).all()  # every image predicted out-of-fold exactly once


def test_plain_folds_are_stratified_and_group_folds_count_patients_not_images():
    labels = [0] * 20 + [1] * 10
    folds = review_folds(labels, [None] * 30)
    assert len(folds) == 5
    for _train, held in folds:
        assert sorted(np.bincount(np.asarray(labels)[held]).tolist()) == [2, 4]
    # many images, but class 1 comes from a single patient: no fold can hold it out
    assert review_folds(labels, ["a"] * 10 + ["b"] * 10 + ["c"] * 10) == []
    assert review_folds([0, 0, 1], [None] * 3) == []


def test_flags_only_examples_the_data_contradicts_lowest_self_confidence_first():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    probs = np.array(
        [
            [0.9, 0.1],
            [0.95, 0.05],
            [0.2, 0.8],  # labeled 0, looks like 1: flagged
            [0.6, 0.4],  # labeled 0, unsure: below t_0 but 0.4 < t_1, not flagged
            [0.1, 0.9],
            [0.05, 0.95],
            [0.97, 0.03],  # labeled 1, looks like 0: flagged, the most suspicious
            [0.2, 0.8],
        ]
    )
    t = class_thresholds(probs, labels)
    assert t[0] == pytest.approx((0.9 + 0.95 + 0.2 + 0.6) / 4)
    assert rank_label_issues(probs, labels) == [6, 2]
    assert rank_label_issues(probs, labels, by="normalized_margin") == [6, 2]
    clean = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    assert rank_label_issues(clean, [0, 0, 1, 1]) == []
    with pytest.raises(ValueError, match="ranking"):
        rank_label_issues(probs, labels, by="loss")


def test_out_of_fold_logistic_regression_finds_flipped_labels_in_features():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 16))
    x = np.concatenate([rng.normal(c, 1.0, (30, 16)) for c in centers])
    y = np.repeat(np.arange(3), 30)
    flipped = [5, 40, 77]
    y[5], y[40], y[77] = 1, 2, 0
    folds = review_folds(y.tolist(), [None] * len(y))
    probs = out_of_fold_probabilities(x, y.tolist(), 3, folds)
    assert np.allclose(probs.sum(1), 1.0)
    assert set(flipped) <= set(rank_label_issues(probs, y.tolist())[:6])


def test_a_cancelled_task_stops_between_folds():
    task = Task()
    task.cancel()
    folds = review_folds([0] * 10 + [1] * 10, [None] * 20)
    with pytest.raises(Cancelled):
        out_of_fold_probabilities(np.zeros((20, 3)), [0] * 10 + [1] * 10, 2, folds, task=task)


def test_texts_and_unusable_datasets_are_refused_in_one_sentence(tmp_path):
    texts = scan_text_source(str(make_text_table(tmp_path / "t.csv", per_class=6)))
    with pytest.raises(ReviewError, match="images"):
        review_labels(texts, workspace=tmp_path / "ws")
    one = make_shapes_folder(tmp_path / "one", per_class=1)
    with pytest.raises(ReviewError, match="at least 2"):
        review_labels(scan_folder(str(one), min_per_class=1), workspace=tmp_path / "ws")


def _planted(root):
    """40 circles and 40 squares, then 3 circles moved into the square folder."""
    make_shapes_folder(root, per_class=40, seed=1)
    moved = sorted((root / "circle").glob("*.png"))[:3]
    for p in moved:
        p.rename(root / "square" / p.name)
    return [f"square/{p.name}" for p in moved]


@pytest.mark.slow
def test_planted_label_errors_rank_at_the_top_and_the_folder_is_untouched(tmp_path):
    root = tmp_path / "shapes"
    planted = _planted(root)
    before = tree_snapshot(root)
    ws = tmp_path / "ws"
    review = review_labels(scan_folder(str(root)), workspace=ws, top=6, task=Task())
    top = [i.path for i in review.issues]
    assert set(planted) <= set(top), top
    for issue in review.issues:
        if issue.path in planted:
            assert (issue.given, issue.suggested) == ("square", "circle")
            assert issue.confidence > issue.self_confidence
    assert review.reviewed == 80 and not review.grouped
    assert tree_snapshot(root) == before  # nothing written into the dataset
    (cache,) = (ws / "cache" / "features").glob("review-*.safetensors")
    stamp = cache.stat().st_mtime_ns
    again = review_labels(scan_folder(str(root)), workspace=ws, top=6)
    assert cache.stat().st_mtime_ns == stamp  # the second review read the cached features
    assert again.issues == review.issues


@pytest.mark.slow
def test_a_clean_dataset_flags_few(tmp_path):
    root = make_shapes_folder(tmp_path / "clean", per_class=40, seed=2)
    review = review_labels(scan_folder(str(root)), workspace=tmp_path / "ws")
    assert review.flagged <= 4, review.issues


@pytest.mark.slow
def test_refit_scan_review_prints_the_planted_files(tmp_path, capsys):
    root = tmp_path / "shapes"
    planted = _planted(root)
    ws = str(tmp_path / "ws")
    code = main(["scan", str(root), "--review", "--top", "6", "--workspace", ws])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    for rel in planted:
        line = next(line for line in lines if line.startswith(str(root / rel)))
        assert "labeled 'square', looks like 'circle'" in line
    assert "Runs of this folder trained from now on record this review" in out
    code = main(["scan", str(root), "--review", "--top", "6", "--workspace", ws, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert set(planted) <= {i["path"] for i in data["label_review"]["issues"]}
    assert data["label_review"]["kept"] is True
    assert list((tmp_path / "ws" / "reviews").glob("*.json"))


def test_refit_scan_review_of_texts_says_why_in_one_line(tmp_path, capsys):
    table = make_text_table(tmp_path / "t.csv", per_class=6)
    code = main(["scan", str(table), "--review", "--workspace", str(tmp_path / "ws")])
    out = capsys.readouterr().out
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("review:")]
    assert "works on images" in line
    code = main(["scan", str(table), "--review", "--json", "--workspace", str(tmp_path / "ws")])
    assert "works on images" in json.loads(capsys.readouterr().out)["label_review"]["error"]
    assert code == 1
