"""The Data page's label review: a gallery of likely label errors, run in the job pool."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from dicom_synth import dicom_class_folder
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from synthetic import make_shapes_folder, tree_snapshot

from desktop.data import label_review_view
from desktop.data.label_review_view import PATH_ROLE, THUMB_ROLE, LabelReviewDialog
from desktop.data.page import DataPage
from engine.evaluation.label_review import LabelIssue, LabelReview


def _settle(qtbot, page) -> None:
    """Wait for the page's jobs and decodes (before it is closed: see test_try_it.py)."""
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=60000)
    assert page.grid.model.loader.wait_for_done(10000)
    if page.label_review is not None:
        assert page.label_review.wait_for_thumbnails(10000)


@pytest.fixture
def page(qtbot, ctx):
    page = DataPage(ctx)
    qtbot.addWidget(page, before_close_func=lambda p: _settle(qtbot, p))
    page.resize(1200, 800)
    return page


def open_and_wait(qtbot, page: DataPage, folder: Path) -> None:
    with qtbot.waitSignal(page.ctx.signals.dataset_scanned, timeout=30000):
        page.open_folder(str(folder))
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=20000)


def fake_review(issues_of, seen=None, kept=False):
    """A review function that names the given files (relative paths) as flagged."""

    def review(index, *, window, workspace, task):
        if seen is not None:
            seen.update(window=window, thread=threading.current_thread())
        issues = tuple(
            LabelIssue(path=p, given="square", suggested="circle", confidence=0.9,
                       self_confidence=0.1)
            for p in issues_of(index)
        )  # fmt: skip
        return LabelReview(issues, len(issues), len(index.samples), 5, False, "starter", kept=kept)

    return review


def test_the_button_needs_a_usable_image_scan(qtbot, page, tmp_path):
    assert page.review_labels() is None  # nothing shown yet
    assert not page.review_button.isEnabled()
    open_and_wait(qtbot, page, make_shapes_folder(tmp_path / "s", per_class=4, seed=0))
    assert page.review_button.isEnabled()


def test_gallery_shows_flagged_files_and_opens_them(qtbot, page, tmp_path, monkeypatch):
    root = make_shapes_folder(tmp_path / "s", per_class=4, seed=0)
    open_and_wait(qtbot, page, root)
    flagged = sorted(str(p.relative_to(root)) for p in (root / "square").glob("*.png"))[:2]
    seen: dict = {}
    page.label_review = LabelReviewDialog(
        page.ctx, page, review=fake_review(lambda index: flagged, seen)
    )
    page.ctx.state.update("data", dicom_window="lung")
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
    assert seen["window"] == "lung"
    assert seen["thread"] is not threading.main_thread()
    gallery = dialog.gallery
    assert gallery.count() == 2
    first = gallery.item(0)
    assert first.data(PATH_ROLE) == str(root / flagged[0])
    assert Path(flagged[0]).name in first.text() and "square → circle" in first.text()
    assert "90%" in first.text()
    qtbot.waitUntil(lambda: gallery.item(1).data(THUMB_ROLE), timeout=10000)  # thumbnails
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    gallery.setCurrentRow(1)
    gallery.itemActivated.emit(gallery.item(1))  # a double-click
    dialog.folder_button.click()
    assert [u.toLocalFile() for u in opened] == [str(root / flagged[1]), str(root / "square")]
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == str(root / flagged[1])


def test_no_errors_says_so_with_the_count(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, make_shapes_folder(tmp_path / "s", per_class=3, seed=0))
    page.label_review = LabelReviewDialog(page.ctx, page, review=fake_review(lambda index: []))
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
    assert dialog.status_label.text().startswith("No likely label errors found among 6 images")
    assert dialog.gallery.count() == 0 and not dialog.open_button.isEnabled()
    assert "record this review" not in dialog.status_label.text()


def test_a_review_the_workspace_kept_says_runs_will_record_it(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, make_shapes_folder(tmp_path / "s", per_class=3, seed=0))
    review = fake_review(lambda index: [], kept=True)
    page.label_review = LabelReviewDialog(page.ctx, page, review=review)
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
    assert "Runs of this folder trained from now on record this review." in (
        dialog.status_label.text()
    )


def test_stop_cancels_the_review(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, make_shapes_folder(tmp_path / "s", per_class=3, seed=0))
    release = threading.Event()

    def slow(index, *, window, workspace, task):
        while not release.wait(0.01):
            task.check()  # raises Cancelled once stopped
        return None

    page.label_review = LabelReviewDialog(page.ctx, page, review=slow)
    dialog = page.review_labels()
    assert dialog.busy and dialog.stop_button.isVisible()
    dialog.stop_button.click()
    assert not dialog.busy
    assert "stopped" in dialog.status_label.text()
    release.set()


def test_a_failed_review_is_one_sentence(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, make_shapes_folder(tmp_path / "s", per_class=3, seed=0))

    def failing(index, *, window, workspace, task):
        from engine.evaluation.label_review import ReviewError

        raise ReviewError("The labels cannot be reviewed: add more.")

    page.label_review = LabelReviewDialog(page.ctx, page, review=failing)
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
    assert dialog.status_label.text() == "The labels cannot be reviewed: add more."


def test_dicom_thumbnails_use_the_window(qtbot, page, tmp_path, monkeypatch):
    root = dicom_class_folder(tmp_path / "ct", per_class=3)
    open_and_wait(qtbot, page, root)
    page.ctx.state.update("data", dicom_window="bone")
    windows = []
    real = label_review_view.ImageLoader.request

    def spy(self, path, size, token=0, **kw):
        windows.append(kw.get("window"))
        return real(self, path, size, token, **kw)

    monkeypatch.setattr(label_review_view.ImageLoader, "request", spy)
    page.label_review = LabelReviewDialog(
        page.ctx, page, review=fake_review(lambda index: ["disc/img00.dcm"])
    )
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
    assert windows == ["bone"]
    qtbot.waitUntil(lambda: dialog.gallery.item(0).data(THUMB_ROLE), timeout=10000)


@pytest.mark.slow
def test_planted_label_errors_show_in_the_gallery_and_the_folder_is_untouched(
    qtbot, page, tmp_path
):
    root = make_shapes_folder(tmp_path / "shapes", per_class=30, seed=1)
    moved = sorted((root / "circle").glob("*.png"))[:2]
    for p in moved:
        p.rename(root / "square" / p.name)
    open_and_wait(qtbot, page, root)
    before = tree_snapshot(root)
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=120000)
    shown = {dialog.gallery.item(i).data(PATH_ROLE) for i in range(dialog.gallery.count())}
    assert {str(root / "square" / p.name) for p in moved} <= shown, dialog.status_label.text()
    assert tree_snapshot(root) == before


def test_frames_choice_rescans_with_every_frame_a_sample(qtbot, page, tmp_path):
    import numpy as np
    from dicom_synth import write_dicom

    root = tmp_path / "cines"
    for label in ("a", "b"):
        for i in range(2):
            frames = np.stack([np.full((8, 8), 30 * f + i, np.uint8) for f in range(3)])
            write_dicom(root / label / f"{label}{i}.dcm", frames, window=(128.0, 256.0))
    open_and_wait(qtbot, page, root)
    clinical = page.view.clinical
    assert len(page.index.samples) == 4 and not clinical.frames_combo.isHidden()
    with qtbot.waitSignal(page.ctx.signals.dataset_scanned, timeout=30000):
        clinical.frames_combo.setCurrentIndex(clinical.frames_combo.findData("all"))
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=20000)
    assert str(page.ctx.state.config.data.dicom_frames) == "all"
    assert len(page.index.samples) == 12
    assert all("#frame=" in s.path for s in page.index.samples)
    assert page.dicom  # the window row stays for frames


def test_a_flagged_frame_opens_its_file(qtbot, page, tmp_path, monkeypatch):
    import numpy as np
    from dicom_synth import write_dicom

    root = tmp_path / "cines"
    for label in ("a", "b"):
        for i in range(2):
            frames = np.stack([np.full((8, 8), 30 * f + i, np.uint8) for f in range(3)])
            write_dicom(root / label / f"{label}{i}.dcm", frames, window=(128.0, 256.0))
    page.ctx.state.update("data", dicom_frames="all")
    open_and_wait(qtbot, page, root)
    page.label_review = LabelReviewDialog(
        page.ctx, page, review=fake_review(lambda index: ["a/a1.dcm#frame=2"])
    )
    dialog = page.review_labels()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
    assert "a1.dcm#frame=2" in dialog.gallery.item(0).text()
    qtbot.waitUntil(lambda: dialog.gallery.item(0).data(THUMB_ROLE), timeout=10000)
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    dialog.open_button.click()
    assert [u.toLocalFile() for u in opened] == [str(root / "a" / "a1.dcm")]
