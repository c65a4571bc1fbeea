"""Scanning folders: one test per problem kind, layouts, hidden files, progress and cancel."""

from __future__ import annotations

import os
import shutil

import pytest
from data_fixtures import image, jpeg_bytes, make_folder, make_split_folder, save
from PIL import Image

from engine.data import (
    DatasetError,
    ProblemKind,
    scan_folder,
)
from engine.task import Cancelled, Task


def only(index, kind):
    found = [p for p in index.problems if p.kind is kind]
    assert len(found) == 1, index.problems
    assert "\n" not in found[0].message
    return found[0]


def test_a_flat_folder_gives_sorted_classes_and_absolute_paths(tmp_path):
    root = make_folder(tmp_path / "d", {"dogs": 3, "cats": 2})
    index = scan_folder(root)
    assert index.classes == ("cats", "dogs")
    assert not index.has_splits and not index.problems and index.fatal_problem() is None
    assert index.class_counts() == {"all": {"cats": 2, "dogs": 3}}
    assert all(os.path.isabs(s.path) and s.split is None for s in index.samples)
    assert [index.classes[s.label] for s in index.samples] == ["cats"] * 2 + ["dogs"] * 3
    assert len({s.digest for s in index.samples}) == 5
    assert all(len(s.digest) == 32 for s in index.samples)
    index.raise_if_unusable()


def test_split_folders_are_recognised_case_insensitively(tmp_path):
    root = make_split_folder(
        tmp_path / "d",
        {
            "Training": {"a": 3, "b": 3},
            "VALID": {"a": 1, "b": 1},
            "test": {"a": 1, "b": 2},
        },
    )
    index = scan_folder(root)
    assert index.has_splits and index.classes == ("a", "b")
    assert index.class_counts() == {
        "train": {"a": 3, "b": 3},
        "val": {"a": 1, "b": 1},
        "test": {"a": 1, "b": 2},
    }
    assert {s.split for s in index.samples} == {"train", "val", "test"}


def test_a_class_named_train_with_images_keeps_the_flat_layout(tmp_path):
    root = make_folder(tmp_path / "d", {"train": 2, "bus": 2})
    index = scan_folder(root)
    assert not index.has_splits and index.classes == ("bus", "train")


def test_hidden_files_and_folders_are_ignored_silently(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini", "cats/.DS_Store", "cats/Thumbs.db"):
        (root / junk).write_bytes(b"junk")
    save(image(50), root / ".git" / "x.png")
    save(image(51), root / "__MACOSX" / "cats" / "._img.png")
    save(image(52), root / ".ipynb_checkpoints" / "y.png")
    save(image(53), root / "cats" / ".hidden" / "z.png")
    save(image(54), root / "cats" / ".img_hidden.png")
    index = scan_folder(root)
    assert index.classes == ("cats", "dogs") and len(index.samples) == 4
    assert index.problems == ()


def test_images_in_subfolders_of_a_class_count_for_that_class(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 1, "dogs": 2})
    save(image(40), root / "cats" / "2019" / "a.png")
    index = scan_folder(root)
    assert index.class_counts() == {"all": {"cats": 2, "dogs": 2}}


def test_missing_folder_raises_one_sentence(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        scan_folder(tmp_path / "nope")
    assert "nope" in str(err.value) and "\n" not in str(err.value)
    assert ProblemKind.MISSING_FOLDER == "missing-folder"
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"file\.png is a single file, not a dataset; choose"):
        scan_folder(tmp_path / "file.png")


def test_empty_dataset_is_an_error(tmp_path):
    root = tmp_path / "d"
    save(image(0), root / "loose.png")
    index = scan_folder(root)
    fatal = index.fatal_problem()
    assert fatal is not None and fatal.kind is ProblemKind.EMPTY_DATASET
    assert fatal.severity == "error" and index.problems[0] is fatal
    assert "no class folders" in fatal.message and str(root) in fatal.message
    with pytest.raises(DatasetError, match="subfolder named after the class"):
        index.raise_if_unusable()


def test_single_class_is_an_error(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 3})
    problem = only(scan_folder(root), ProblemKind.SINGLE_CLASS)
    assert problem.severity == "error"
    assert "only one class" in problem.message and "'cats'" in problem.message
    assert "at least two classes" in problem.message


def test_a_class_with_too_few_images_is_left_out(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 3, "dogs": 1, "owls": 2})
    index = scan_folder(root)
    problem = only(index, ProblemKind.TOO_FEW)
    assert problem.severity == "warning" and problem.path == str(root / "dogs")
    assert problem.message == (
        "Class 'dogs' has 1 usable image (the minimum is 2); it is left out. Add more examples "
        "or lower the minimum."
    )
    assert index.classes == ("cats", "owls")
    assert {index.classes[s.label] for s in index.samples} == {"cats", "owls"}
    assert scan_folder(root, min_per_class=1).classes == ("cats", "dogs", "owls")
    # Leaving a class out can leave a single class: that is an error that says why.
    fatal = scan_folder(root, min_per_class=3).fatal_problem()
    assert fatal.kind is ProblemKind.SINGLE_CLASS and "enough images" in fatal.message


def test_empty_file(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    (root / "cats" / "zero.png").write_bytes(b"")
    problem = only(scan_folder(root), ProblemKind.EMPTY_FILE)
    assert problem.message.startswith("cats/zero.png is empty (0 bytes)")
    assert "skipped" in problem.message and problem.path == str(root / "cats" / "zero.png")


def test_not_an_image_by_extension_or_by_content(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    (root / "cats" / "notes.txt").write_text("a note")
    (root / "dogs" / "fake.jpg").write_text("this is text, not a JPEG")
    index = scan_folder(root)
    found = sorted(
        (p for p in index.problems if p.kind is ProblemKind.NOT_IMAGE), key=lambda p: p.message
    )
    assert [p.message.split(" ")[0] for p in found] == ["cats/notes.txt", "dogs/fake.jpg"]
    assert ".txt files are not read" in found[0].message and "ignored" in found[0].message
    assert "is not an image" in found[1].message
    assert len(index.samples) == 4


def test_unreadable_damaged_image_and_broken_link(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 3)
    os.symlink(tmp_path / "gone.png", root / "dogs" / "link.png")
    index = scan_folder(root)
    bad = {p.path: p for p in index.problems}
    link = bad[str(root / "dogs" / "link.png")]
    assert link.kind is ProblemKind.UNREADABLE and link.message.startswith("dogs/link.png ")
    assert "broken link" in link.message
    broken = bad[str(root / "cats" / "broken.jpg")]
    assert broken.kind in (ProblemKind.UNREADABLE, ProblemKind.TRUNCATED)
    assert broken.message.startswith("cats/broken.jpg ") and "skipped" in broken.message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_permission_denied(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    locked = save(image(9), root / "cats" / "locked.png")
    locked.chmod(0)
    try:
        problem = only(scan_folder(root), ProblemKind.UNREADABLE)
    finally:
        locked.chmod(0o644)
    assert "cats/locked.png" in problem.message and "permission denied" in problem.message


def test_truncated_jpeg_and_png(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    big = Image.effect_noise((64, 64), 60).convert("RGB")
    data = jpeg_bytes(big, quality=95)
    (root / "cats" / "IMG_0042.jpg").write_bytes(data[: len(data) // 2])
    save(big, tmp_path / "full.png")
    png = (tmp_path / "full.png").read_bytes()
    (root / "dogs" / "half.png").write_bytes(png[: len(png) // 2])
    index = scan_folder(root)
    found = {p.path: p for p in index.problems if p.kind is ProblemKind.TRUNCATED}
    jpg = found[str(root / "cats" / "IMG_0042.jpg")]
    assert jpg.message == (
        "cats/IMG_0042.jpg is truncated (the image data ends early); it will be skipped. "
        "Re-export or remove the file."
    )
    assert str(root / "dogs" / "half.png") in found
    assert len(index.samples) == 4


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    save(Image.new("RGB", (100, 100), "white"), root / "cats" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    problem = only(scan_folder(root), ProblemKind.TOO_LARGE)
    assert problem.message.startswith("cats/huge.png has 100x100 pixels")
    assert "safety limit" in problem.message and "skipped" in problem.message


def test_duplicate_in_a_class_keeps_the_first_by_path(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    shutil.copy(root / "cats" / "img_000.png", root / "cats" / "zz_copy.png")
    index = scan_folder(root)
    problem = only(index, ProblemKind.DUPLICATE)
    assert problem.message == "cats/zz_copy.png is a copy of cats/img_000.png; the copy is skipped."
    assert problem.path == str(root / "cats" / "zz_copy.png")
    assert str(root / "cats" / "img_000.png") in {s.path for s in index.samples}
    assert index.class_counts()["all"]["cats"] == 2


def test_same_image_in_two_classes_is_left_out(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    shutil.copy(root / "cats" / "img_000.png", root / "dogs" / "puppy.png")
    index = scan_folder(root)
    problem = only(index, ProblemKind.CONFLICTING_LABELS)
    assert "cats/img_000.png and dogs/puppy.png" in problem.message
    assert "different classes" in problem.message and "left out" in problem.message
    assert index.class_counts() == {"all": {"cats": 2, "dogs": 3}}


def test_same_image_in_train_and_val_is_left_out_of_val(tmp_path):
    root = make_split_folder(tmp_path / "d", {"train": {"a": 3, "b": 3}, "val": {"a": 2, "b": 2}})
    shutil.copy(root / "train" / "a" / "img_001.png", root / "val" / "a" / "leak.png")
    index = scan_folder(root)
    problem = only(index, ProblemKind.IN_TWO_SPLITS)
    assert problem.path == str(root / "val" / "a" / "leak.png")
    assert "val/a/leak.png is the same image as train/a/img_001.png" in problem.message
    assert "left out of val" in problem.message
    assert index.class_counts()["val"]["a"] == 2


def test_stray_files_are_reported_and_ignored(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    save(image(30), root / "loose.png")
    problem = only(scan_folder(root), ProblemKind.STRAY_FILE)
    assert problem.message == "loose.png is not inside a class folder; it is ignored."
    split = make_split_folder(tmp_path / "s", {"train": {"a": 2, "b": 2}, "val": {"a": 1}})
    (split / "train" / "readme.txt").write_text("x")
    (split / "extras").mkdir()
    (split / "valid").mkdir()
    (split / "README.md").write_text("x")
    messages = {p.message for p in scan_folder(split).problems}
    assert "train/readme.txt is not inside a class folder; it is ignored." in messages
    assert "extras is not a train, val or test folder; it is ignored." in messages
    assert "valid is a second val folder; it is ignored." in messages
    assert "README.md is not inside a class folder; it is ignored." in messages


def test_links_inside_are_followed_links_outside_and_back_up_are_not(tmp_path):
    outside = make_folder(tmp_path / "elsewhere", {"owls": 2}, start=10)
    root = make_folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    (root / "dogs" / "more").mkdir()
    save(image(20), root / "dogs" / "more" / "m.png")
    os.symlink(outside / "owls", root / "owls")
    os.symlink(root / "cats", root / "cats" / "loop")
    os.symlink(root / "dogs" / "more", root / "dogs" / "again")  # inside: followed once
    index = scan_folder(root)
    assert index.classes == ("cats", "dogs")
    assert index.class_counts() == {"all": {"cats": 2, "dogs": 3}}
    by_path = {p.path: p for p in index.problems}
    owls = by_path[str(root / "owls")]
    assert owls.kind is ProblemKind.LINK_OUTSIDE
    assert owls.message.startswith("owls is a link to ") and "outside the dataset" in owls.message
    loop = by_path[str(root / "cats" / "loop")]
    assert loop.kind is ProblemKind.LINK_LOOP and "holds the link" in loop.message
    again = by_path[str(root / "dogs" / "again")]  # the second way into the same folder
    assert again.kind is ProblemKind.LINK_LOOP and "already read" in again.message


def test_progress_is_reported_and_thinned(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    calls = []
    for workers in (1, 3):
        calls.clear()
        task = Task(lambda p: calls.append((p.done, p.total)), rate_hz=0)
        scan_folder(root, task=task, workers=workers)
        assert calls[0] == (0, 6) and calls[-1] == (6, 6)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_cancel_raises_cancelled(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    task = Task()
    task.cancel()
    for workers in (1, 2):
        with pytest.raises(Cancelled):
            scan_folder(root, task=task, workers=workers)


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    root = make_folder(tmp_path / "d", {"cats": 4, "dogs": 4})
    (root / "cats" / "zero.jpg").write_bytes(b"")
    shutil.copy(root / "dogs" / "img_000.png", root / "dogs" / "copy.png")
    assert scan_folder(root, workers=1) == scan_folder(root, workers=4)
