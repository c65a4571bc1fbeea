"""The Data page: scanning in the background, thumbnails, problems, split settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import Qt

from desktop.data.page import DataPage
from desktop.widgets.thumbnails import PixmapCache

COLOURS = {"cats": (200, 60, 60), "dogs": (60, 160, 60), "fish": (60, 60, 200)}


def make_dataset(root: Path, per_class: dict[str, int], *, split: str | None = None) -> Path:
    """PIL-drawn pictures, all different: one folder per class (under ``split``/ when given)."""
    shift = {None: 0, "train": 0, "val": 40, "test": 80}[split]
    for cls, n in per_class.items():
        folder = root / split / cls if split else root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = Image.new("RGB", (48 + i + shift, 40), COLOURS.get(cls, (128, 128, 128)))
            ImageDraw.Draw(img).ellipse((4 + i % 10, 4, 30, 30), fill=(250, 250, 250))
            img.save(folder / f"{cls}_{i:03d}.png")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def page(qtbot, ctx):
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    yield page
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    # Thumbnail and preview decodes run in QThreadPools: none may outlive the test.
    assert page.grid.model.loader.wait_for_done(10000)
    if page._preview is not None:
        assert page._preview.wait_for_image(10000)


def open_and_wait(qtbot, page: DataPage, folder: Path) -> None:
    with qtbot.waitSignal(page.ctx.signals.dataset_scanned, timeout=30000):
        page.open_folder(str(folder))
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=20000)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = make_dataset(tmp_path / "pets", {"cats": 5, "dogs": 4, "fish": 3})
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "cats" / "notes.txt").write_text("taken on Tuesday")
    return root


def test_empty_state_offers_folder_and_sample(qtbot, page, ctx):
    assert page.stack.currentWidget() is page.empty_state
    assert not page.continue_button.isEnabled()
    with qtbot.waitSignal(ctx.signals.choose_folder_requested):
        page.empty_state.open_button.click()
    with qtbot.waitSignal(ctx.signals.sample_requested):
        page.empty_state.sample_button.click()


def test_open_folder_shows_classes_counts_and_problems(qtbot, page, ctx, dataset):
    before = snapshot(dataset)
    open_and_wait(qtbot, page, dataset)

    assert ctx.state.config.data.path == str(dataset)
    table = page.findChild(type(page.class_table), "classTable")
    assert table.rowCount() == 3
    rows = {table.item(r, 0).text(): int(table.item(r, 1).text()) for r in range(3)}
    assert rows == {"cats": 5, "dogs": 4, "fish": 3}
    assert page.summary_label.text() == "12 images in 3 classes"
    assert page.chart.total("cats") == 5

    messages = [page.problem_list.item(r).text() for r in range(page.problem_list.count())]
    assert any("broken.jpg" in m for m in messages)
    assert any("notes.txt" in m for m in messages)
    assert page.continue_button.isEnabled()
    with qtbot.waitSignal(ctx.signals.show_page_requested) as blocker:
        page.continue_button.click()
    assert blocker.args == ["Model"]
    assert snapshot(dataset) == before  # the user's data is read-only


def test_split_folders_are_used_and_lock_the_shares(qtbot, page, tmp_path):
    root = tmp_path / "split"
    make_dataset(root, {"cats": 4, "dogs": 3}, split="train")
    make_dataset(root, {"cats": 2, "dogs": 2}, split="val")
    open_and_wait(qtbot, page, root)

    assert "uses the folder's train/val split" in page.summary_label.text()
    headers = [page.class_table.horizontalHeaderItem(c).text() for c in range(4)]
    assert headers == ["Class", "Train", "Validation", "Total"]
    assert page.class_table.item(0, 3).text() == "6"
    settings = page.split_settings
    assert "Using the folder's train/ val/ split" in settings.mode_label.text()
    assert not settings.val_spin.isEnabled()
    assert settings.test_spin.isEnabled()  # no test/ folder: a share can still be carved


def test_thumbnails_load_in_the_background(qtbot, page, dataset):
    open_and_wait(qtbot, page, dataset)
    model = page.grid.model
    assert model.rowCount() == 12
    index = model.index(0)
    with qtbot.waitSignal(model.dataChanged, timeout=20000):  # tells the view to repaint it
        first = model.data(index, Qt.ItemDataRole.DecorationRole)
        assert first.cacheKey() == model.placeholder().cacheKey()

    def real_pixmap() -> bool:
        pixmap = model.data(index, Qt.ItemDataRole.DecorationRole)
        return pixmap.cacheKey() not in (model.placeholder().cacheKey(), model.broken().cacheKey())

    qtbot.waitUntil(real_pixmap, timeout=20000)
    pixmap = model.data(index, Qt.ItemDataRole.DecorationRole)
    assert (pixmap.width(), pixmap.height()) == (model.size, model.size)


def test_class_filter_limits_the_grid(qtbot, page, dataset):
    open_and_wait(qtbot, page, dataset)
    combo = page.grid.filter_combo
    combo.setCurrentIndex(combo.findData("fish"))
    assert page.grid.model.rowCount() == 3
    path = str(dataset / "cats" / "cats_000.png")
    assert page.grid.select_path(path)  # switches back to all classes to show it
    assert combo.currentData() is None
    assert page.grid.view.currentIndex().row() == page.grid.model.row_of(path)


def test_problem_without_thumbnail_opens_preview(qtbot, page, dataset, monkeypatch):
    open_and_wait(qtbot, page, dataset)
    opened = []
    monkeypatch.setattr(
        "desktop.data.image_preview.QDesktopServices.openUrl", lambda url: opened.append(url)
    )
    row = next(
        r
        for r in range(page.problem_list.count())
        if "broken.jpg" in page.problem_list.item(r).text()
    )
    page.problem_list.setCurrentRow(row)
    qtbot.keyClick(page.problem_list, Qt.Key.Key_Return)
    dialog = page._preview
    assert dialog is not None and dialog.isVisible()
    assert str(dataset / "dogs" / "broken.jpg") in dialog.path_label.text()
    assert "broken.jpg" in dialog.problem_label.text()
    qtbot.waitUntil(lambda: "cannot be shown" in dialog.image_label.text(), timeout=20000)
    dialog.folder_button.click()
    assert opened and opened[0].toLocalFile() == str(dataset / "dogs")
    dialog.close()


def test_thumbnail_activation_opens_preview_with_image(qtbot, page, dataset):
    open_and_wait(qtbot, page, dataset)
    path = str(dataset / "fish" / "fish_001.png")
    with qtbot.waitSignal(page.grid.image_activated) as blocker:
        page.grid.view.activated.emit(page.grid.model.index(page.grid.model.row_of(path)))
    assert blocker.args == [path]
    dialog = page._preview
    qtbot.waitUntil(lambda: not dialog.image_label.pixmap().isNull(), timeout=20000)
    assert "Class: fish" in dialog.path_label.text()
    dialog.close()


def test_missing_folder_shows_the_sentence(qtbot, page, ctx, tmp_path):
    missing = tmp_path / "nowhere"
    page.open_folder(str(missing))
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=30000)
    qtbot.waitUntil(lambda: page.banner_box.isVisibleTo(page), timeout=5000)
    assert "does not exist" in page.banner.text()
    assert str(missing) in page.banner.text()
    assert page.stack.currentWidget() is page.empty_state
    assert not page.continue_button.isEnabled()
    assert not page.scanning


def test_single_class_is_not_usable(qtbot, page, tmp_path):
    root = make_dataset(tmp_path / "one", {"cats": 3})
    open_and_wait(qtbot, page, root)
    assert page.index is not None and page.index.fatal_problem() is not None
    assert "only one class" in page.banner.text()
    assert not page.continue_button.isEnabled()


def test_second_folder_cancels_the_first_scan(qtbot, page, ctx, tmp_path, monkeypatch):
    import engine

    slow = make_dataset(tmp_path / "slow", {"cats": 2, "dogs": 2})
    fast = make_dataset(tmp_path / "fast", {"fish": 2, "dogs": 3})
    real_scan = engine.scan_folder
    started = threading.Event()
    cancelled = []

    def scan(root, *, task, **kwargs):
        if Path(root) == slow:
            started.set()
            cancelled.append(task.cancel_event.wait(20))
            # Return a result anyway, as a scan that finished just as it was replaced would.
        return real_scan(root, task=None, **kwargs)

    monkeypatch.setattr(engine, "scan_folder", scan)
    scanned = []
    ctx.signals.dataset_scanned.connect(scanned.append)
    page.open_folder(str(slow))
    qtbot.waitUntil(started.is_set, timeout=20000)
    open_and_wait(qtbot, page, fast)
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)

    assert cancelled == [True]
    assert [index.root for index in scanned] == [str(fast)]
    assert page.index.root == str(fast)
    assert ctx.state.config.data.path == str(fast)
    assert page.class_table.rowCount() == 2


def test_stop_button_stops_the_scan(qtbot, page, ctx, tmp_path, monkeypatch):
    import engine

    root = make_dataset(tmp_path / "slow", {"cats": 2, "dogs": 2})

    def scan(root, *, task, **kwargs):
        task.cancel_event.wait(20)
        task.check()  # raises engine.task.Cancelled

    monkeypatch.setattr(engine, "scan_folder", scan)
    page.open_folder(str(root))
    assert page.scanning and page.stack.currentWidget() is page.scan_progress
    page.scan_progress.stop_button.click()
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    assert not page.scanning
    assert "stopped" in page.banner.text()


def test_split_settings_update_the_config(qtbot, page, ctx, dataset):
    from engine.config import DataConfig, field_help

    settings = page.findChild(type(page.split_settings), "splitSettings")
    meta = field_help(DataConfig, "val_fraction")
    assert settings.val_spin.minimum() == pytest.approx(100 * meta["min"])
    assert settings.val_spin.maximum() == pytest.approx(100 * meta["max"])
    assert settings.val_spin.toolTip() == meta["help"]

    settings.val_spin.setValue(30)
    settings.test_spin.setValue(10)
    settings.seed_spin.setValue(7)
    data = ctx.state.config.data
    assert (data.val_fraction, data.test_fraction, data.split_seed) == (0.3, 0.1, 7)

    ctx.state.update("data", val_fraction=0.15)  # e.g. a saved run's config was loaded
    assert settings.val_spin.value() == 15


def test_raising_the_class_minimum_rescans(qtbot, page, ctx, dataset):
    open_and_wait(qtbot, page, dataset)
    with qtbot.waitSignal(ctx.signals.dataset_scanned, timeout=30000) as blocker:
        page.split_settings.min_spin.setValue(5)
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    assert ctx.state.config.data.min_per_class == 5
    assert blocker.args[0].classes == ("cats",)  # dogs has 4 usable images, fish 3
    assert page.class_table.rowCount() == 1
    assert not page.continue_button.isEnabled()  # one class left: cannot train


def test_pixmap_cache_forgets_the_least_recently_used(qapp):
    from PySide6.QtGui import QPixmap

    cache = PixmapCache(capacity=2)
    for name in "abc":
        if name == "c":
            cache.get("a")
        cache.put(name, QPixmap(1, 1))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_a_thresholded_export_is_shown_stretched_not_black(tmp_path):
    """Three grey levels (0-2 of 255) look black; the thumbnail shows what training sees."""
    from PIL import Image

    from desktop.widgets.image_loader import decode_for_display

    pixels = [[(x // 8 + y // 8) % 3 for x in range(64)] for y in range(64)]
    img = Image.new("L", (64, 64))
    img.putdata([v for row in pixels for v in row])
    path = tmp_path / "scan.png"
    img.save(path)
    shown = decode_for_display(str(path), 48)
    brightest = max(shown.pixelColor(x, y).red() for x in range(48) for y in range(48))
    assert brightest > 200
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (30, 120, 200)).save(photo)  # flat colour: left as it is
    assert decode_for_display(str(photo), 48).pixelColor(5, 5).blue() == 200
