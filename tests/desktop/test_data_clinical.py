"""The Data page's clinical settings: the DICOM window (shown for DICOM data only, with a
preview in the chosen window), patients per split from a group key, leakage in the problems,
and a manifest CSV as the data source."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_synth import dicom_class_folder, disc_slice, write_dicom
from PIL import Image, ImageDraw
from PySide6.QtWidgets import QLabel, QLineEdit
from test_data_page import make_dataset, open_and_wait, snapshot

from desktop.data.page import DataPage


@pytest.fixture
def page(qtbot, ctx):
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 850)
    page.show()
    yield page
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    assert page.grid.model.loader.wait_for_done(10000)
    assert page.view.clinical.wait_for_preview(10000)
    if page._preview is not None:
        assert page._preview.wait_for_image(10000)


def patient_images(root: Path, patients: dict[str, dict[str, int]], split: str = "") -> Path:
    """``P<id>_<n>.png`` pictures, different for each patient: {class: {patient: images}}."""
    for cls, per_patient in patients.items():
        folder = root / split / cls if split else root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for pid, n in per_patient.items():
            for i in range(n):
                shade = (int(pid[1:]) * 37 + i * 11 + 60 * (split == "val")) % 200
                img = Image.new("RGB", (40 + i, 40), (shade, 90 if cls == "a" else 170, 40))
                ImageDraw.Draw(img).rectangle(
                    (i, 5, 20 + i, 25 - 8 * (split == "val")), fill=(250, 250, 250)
                )
                img.save(folder / f"{pid}_{i}.png")
    return root


def set_group_pattern(qtbot, page: DataPage, pattern: str) -> None:
    clinical = page.view.clinical
    with qtbot.waitSignal(page.ctx.signals.dataset_scanned, timeout=30000):
        clinical.group_combo.setCurrentIndex(clinical.group_combo.findData("pattern"))
        clinical.pattern_edit.setText(pattern)
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=20000)


def wait_for_preview(qtbot, clinical):
    qtbot.waitUntil(lambda: not clinical.preview_image().isNull(), timeout=20000)
    return clinical.preview_image()


def shown_texts(page: DataPage) -> str:
    """Every text the page shows: labels, line edits, table cells, problems, tooltips."""
    parts = [page.summary_label.text(), page.banner.text()]
    parts += [w.text() for w in page.findChildren(QLabel)]
    parts += [w.text() for w in page.findChildren(QLineEdit)]
    table = page.class_table
    for r in range(table.rowCount()):
        for c in range(table.columnCount()):
            parts.append(table.item(r, c).text())
    for r in range(page.problem_list.count()):
        item = page.problem_list.item(r)
        parts += [item.text(), item.toolTip()]
    return "\n".join(parts)


def test_window_choice_only_for_dicom_and_it_changes_preview_and_config(qtbot, page, tmp_path):
    folder = dicom_class_folder(tmp_path / "ct", per_class=3)
    before = snapshot(folder)
    open_and_wait(qtbot, page, folder)
    clinical = page.view.clinical

    assert page.dicom and clinical.dicom
    assert clinical.window_combo.isVisible() and clinical.preview.isVisible()
    assert "DICOM" in page.summary_label.text()
    assert page.class_table.rowCount() == 2 and not page.problem_list.count()
    first = wait_for_preview(qtbot, clinical)

    clinical.window_combo.setCurrentIndex(clinical.window_combo.findData("lung"))
    assert str(page.ctx.state.config.data.dicom_window) == "lung"
    lung = wait_for_preview(qtbot, clinical)
    assert lung.size() == first.size()
    assert lung != first  # -300 HU: black in the file's 40/400 window, grey in the lung window
    assert "Lung" in clinical.preview_caption.text()
    assert page.grid.model.dicom_window == "lung"  # the thumbnails follow the window too

    # The preview window decodes in the chosen window too, and again when it changes.
    dialog = page.show_preview(clinical.preview_path)
    qtbot.waitUntil(lambda: not dialog.image_label.pixmap().isNull(), timeout=20000)
    in_lung = dialog.image_label.pixmap().toImage()
    clinical.window_combo.setCurrentIndex(clinical.window_combo.findData("file"))
    qtbot.waitUntil(
        lambda: (
            not dialog.image_label.pixmap().isNull()
            and dialog.image_label.pixmap().toImage() != in_lung
        ),
        timeout=20000,
    )
    assert dialog.dicom_window == "file"
    assert snapshot(folder) == before  # the user's data is read-only


def test_window_follows_the_config_and_is_hidden_for_pictures(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, make_dataset(tmp_path / "pets", {"cats": 3, "dogs": 3}))
    clinical = page.view.clinical
    assert not page.dicom
    assert not clinical.window_combo.isVisible() and not clinical.preview.isVisible()
    assert clinical.group_combo.isVisible()  # patients matter for any images
    assert "DICOM" not in page.summary_label.text()

    page.ctx.state.update("data", dicom_window="bone")  # e.g. a run's config opened
    assert clinical.window_combo.currentData() == "bone"


def test_group_pattern_shows_patients_per_split(qtbot, page, ctx, tmp_path):
    root = patient_images(tmp_path / "xr", {"a": {"P1": 3, "P2": 2}, "b": {"P3": 4, "P4": 1}})
    open_and_wait(qtbot, page, root)
    table = page.class_table
    assert table.patient_columns == []
    assert "patient" not in page.split_settings.mode_label.text()
    assert "patient" not in page.summary_label.text()

    set_group_pattern(qtbot, page, r"(P\d+)_")

    assert ctx.state.config.data.group_by == r"pattern:(P\d+)_"
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Class", "Images", "Patients"]
    rows = {table.item(r, 0).text(): (table.item(r, 1).text(), table.item(r, 2).text())
            for r in range(table.rowCount())}  # fmt: skip
    assert rows == {"a": ("5", "2"), "b": ("5", "2")}
    assert page.summary_label.text().startswith("10 images in 2 classes from 4 patients")
    assert "Each patient's images stay on one side" in page.split_settings.mode_label.text()


def test_pattern_without_a_group_is_explained_and_not_used(qtbot, page, ctx, tmp_path):
    root = patient_images(tmp_path / "xr", {"a": {"P1": 2}, "b": {"P2": 2}})
    open_and_wait(qtbot, page, root)
    clinical = page.view.clinical
    clinical.group_combo.setCurrentIndex(clinical.group_combo.findData("pattern"))
    assert clinical.pattern_edit.isVisible()
    clinical.pattern_edit.setText(r"P\d+")  # no capture group
    assert "capture group" in clinical.group_hint.text()
    assert ctx.state.config.data.group_by == ""
    clinical.pattern_edit.setText(r"(P\d+")  # not a regex at all
    assert "not a valid regex" in clinical.group_hint.text()
    assert ctx.state.config.data.group_by == ""
    assert not page._rescan_timer.isActive()


def test_patient_in_two_split_folders_and_near_duplicate_are_problems(qtbot, page, tmp_path):
    root = tmp_path / "split"
    patient_images(root, {"a": {"P1": 2, "P2": 2}, "b": {"P3": 2, "P4": 2}}, split="train")
    patient_images(root, {"a": {"P5": 2}, "b": {"P3": 1}}, split="val")  # P3 again
    copy = Image.open(root / "train" / "a" / "P1_0.png").resize((80, 80))
    copy.save(root / "val" / "a" / "P9_0.png")  # a resized copy across the split
    open_and_wait(qtbot, page, root)
    set_group_pattern(qtbot, page, r"(P\d+)_")

    headers = [page.class_table.horizontalHeaderItem(c).text()
               for c in range(page.class_table.columnCount())]  # fmt: skip
    assert headers == ["Class", "Train", "Train\npatients", "Validation",
                       "Validation\npatients", "Total"]  # fmt: skip
    messages = [page.problem_list.item(r).text() for r in range(page.problem_list.count())]
    assert any("has images in train and val" in m for m in messages), messages
    assert any("P1_0.png" in m and "P9_0.png" in m for m in messages), messages
    assert "problem" in page.problems_title.text().lower()


def test_dicom_patients_never_show_their_identifiers(qtbot, page, tmp_path):
    root = tmp_path / "ct"
    for i in range(8):
        cls = "disc" if i % 2 else "none"
        write_dicom(root / cls / f"img{i}.dcm", disc_slice(i, disc=bool(i % 2)),
                    bits_stored=12, intercept=-1024.0, slope=1.0,
                    PatientID=f"MRN-77{i // 4}", PatientName="Roe^Richard")  # fmt: skip
    open_and_wait(qtbot, page, root)
    clinical = page.view.clinical
    with qtbot.waitSignal(page.ctx.signals.dataset_scanned, timeout=30000):
        clinical.group_combo.setCurrentIndex(clinical.group_combo.findData("dicom"))
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=20000)

    assert page.ctx.state.config.data.group_by == "dicom"
    assert page.class_table.patient_columns == [2]
    assert "from 2 patients" in page.summary_label.text()
    texts = shown_texts(page)
    assert "MRN-77" not in texts and "Roe" not in texts


def test_manifest_csv_is_an_image_source_with_its_groups(qtbot, page, tmp_path):
    root = patient_images(tmp_path / "m", {"a": {"P1": 2, "P2": 2}, "b": {"P3": 3}})
    rows = ["file,label,group"] + [
        f"{p.relative_to(root).as_posix()},{p.parent.name},{p.name.split('_')[0]}"
        for p in sorted(root.rglob("*.png"))
    ]
    csv = root / "manifest.csv"
    csv.write_text("\n".join(rows) + "\n")
    open_and_wait(qtbot, page, csv)

    assert page.modality == "image"
    assert page.grid.model.rowCount() == 7
    assert page.class_table.patient_columns == [2]
    patients = {page.class_table.item(r, 0).text(): page.class_table.item(r, 2).text()
                for r in range(2)}  # fmt: skip
    assert patients == {"a": "2", "b": "1"}
    assert page.view.clinical.isVisible()
