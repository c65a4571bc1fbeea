"""The Data page with texts: table files with a column picker and preview, .txt class folders."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.data.page import DataPage
from desktop.data.text_view import problem_rows

MESSAGES = {
    "billing": ["I was charged twice", "Refund my last invoice", "Why is my bill so high"],
    "login": ["Cannot sign in", "Password reset mail never came", "Account locked again"],
    "shipping": ["Parcel is late", "Tracking number does not work", "Box arrived damaged"],
}


def write_csv(path: Path, *, blank_label_row: bool = False) -> Path:
    """id, message, category, priority: the category is the obvious label column."""
    rows = []
    for category, texts in MESSAGES.items():
        for i, text in enumerate(texts):
            rows.append([str(len(rows) + 1), text, category, "high" if i % 2 else "low"])
    if blank_label_row:
        rows.insert(3, ["99", "Where is my order", "", "low"])  # spreadsheet row 5
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "message", "category", "priority"])
        writer.writerows(rows)
    return path


def snapshot(path: Path) -> tuple[int, int]:
    return path.stat().st_size, path.stat().st_mtime_ns


@pytest.fixture
def page(qtbot, ctx):
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    yield page
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    assert page.text_view.wait_for_preview(10000)


def open_and_wait(qtbot, page: DataPage, source: Path) -> None:
    with qtbot.waitSignal(page.ctx.signals.dataset_scanned, timeout=30000):
        page.open_folder(str(source))
    qtbot.waitUntil(lambda: not page.ctx.pool.busy, timeout=20000)


def open_and_fail(qtbot, page: DataPage, source: Path) -> None:
    page.open_folder(str(source))
    qtbot.waitUntil(lambda: not page.ctx.pool.busy and not page.scanning, timeout=30000)


def choose(combo, name: str) -> None:
    """Pick an entry as a user does (``activated`` fires only for user choices)."""
    combo.setCurrentIndex(combo.findText(name))
    combo.activated.emit(combo.currentIndex())


def class_rows(page: DataPage) -> dict[str, int]:
    table = page.class_table
    return {table.item(r, 0).text(): int(table.item(r, 1).text()) for r in range(table.rowCount())}


def test_csv_columns_are_guessed_previewed_and_go_into_the_config(qtbot, page, ctx, tmp_path):
    data = write_csv(tmp_path / "tickets.csv")
    before = snapshot(data)
    open_and_wait(qtbot, page, data)

    source = page.text_view.source
    assert source.isVisibleTo(page) and page.text_view.isVisibleTo(page)
    assert not page.grid.isVisibleTo(page)  # no thumbnails for texts
    assert source.chosen() == ("message", "category")
    assert (ctx.state.config.data.text_column, ctx.state.config.data.label_column) == (
        "message",
        "category",
    )
    model = source.model
    assert model.rowCount() == 9 and model.columnCount() == 4
    assert model.headerData(0, Qt.Orientation.Vertical) == "2"  # spreadsheet numbering
    assert model.index(0, 1).data() == "I was charged twice"
    assert model.headerData(1, Qt.Orientation.Horizontal) == "message  (text)"
    assert model.headerData(2, Qt.Orientation.Horizontal) == "category  (label)"
    assert model.index(0, 1).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert model.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) is None

    assert class_rows(page) == {"billing": 3, "login": 3, "shipping": 3}
    assert page.class_table.horizontalHeaderItem(1).text() == "Texts"
    assert page.summary_label.text().startswith("9 texts in 3 classes")
    examples = page.text_view.examples
    assert "Cannot sign in" in examples.shown_texts()
    assert page.continue_button.isEnabled()
    assert snapshot(data) == before  # the user's file is only read


def test_choosing_another_label_column_rescans(qtbot, page, ctx, tmp_path):
    open_and_wait(qtbot, page, write_csv(tmp_path / "tickets.csv"))
    with qtbot.waitSignal(ctx.signals.dataset_scanned, timeout=30000) as blocker:
        choose(page.text_view.source.label_combo, "priority")
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)

    assert ctx.state.config.data.label_column == "priority"
    assert blocker.args[0].classes == ("high", "low")
    assert class_rows(page) == {"high": 3, "low": 6}
    model = page.text_view.source.model
    assert model.headerData(3, Qt.Orientation.Horizontal) == "priority  (label)"
    assert model.headerData(2, Qt.Orientation.Horizontal) == "category"
    assert model.rowCount() == 9  # the preview stays


def test_same_column_twice_is_refused_without_a_scan(qtbot, page, ctx, tmp_path):
    open_and_wait(qtbot, page, write_csv(tmp_path / "tickets.csv"))
    choose(page.text_view.source.label_combo, "message")
    assert not page.scanning
    assert ctx.state.config.data.label_column == "category"
    assert "two different columns" in page.text_view.source.caption.text()


def test_unclear_columns_ask_the_user_then_scan(qtbot, page, ctx, tmp_path):
    data = tmp_path / "pairs.csv"
    # Two short columns with few values: either could be the label.
    rows = "".join(f"note number {i},x{i % 2},y{i % 2}\n" for i in range(8))
    data.write_text("left,right,other\n" + rows)
    open_and_fail(qtbot, page, data)
    assert page.index is None
    assert "is not clear" in page.banner.text()
    assert "choose it in the Label column box" in page.banner.text()  # not the CLI's flags
    assert page.text_view.source.isVisibleTo(page)
    assert page.text_view.source.model.rowCount() == 8
    assert not page.continue_button.isEnabled()

    source = page.text_view.source
    choose(source.text_combo, "left")  # scans again; the label is still not clear
    qtbot.waitUntil(lambda: not ctx.pool.busy and not page.scanning, timeout=30000)
    assert page.index is None and "label is not clear" in page.banner.text()
    assert source.chosen() == ("left", "")
    with qtbot.waitSignal(ctx.signals.dataset_scanned, timeout=30000):
        choose(source.label_combo, "right")
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    assert class_rows(page) == {"x0": 4, "x1": 4}
    assert not page.banner_box.isVisibleTo(page)


def test_choosing_one_column_lets_the_engine_guess_the_other(qtbot, page, ctx, tmp_path):
    data = tmp_path / "notes.csv"  # the text is clear (longest), the label is not
    rows = "".join(f"customer wrote about item {i},x{i % 2},y{i % 3}\n" for i in range(12))
    data.write_text("note,code_a,code_b\n" + rows)
    open_and_fail(qtbot, page, data)
    with qtbot.waitSignal(ctx.signals.dataset_scanned, timeout=30000):
        choose(page.text_view.source.label_combo, "code_b")
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=20000)
    assert page.text_view.source.chosen() == ("note", "code_b")
    assert (ctx.state.config.data.text_column, ctx.state.config.data.label_column) == (
        "note",
        "code_b",
    )
    assert class_rows(page) == {"y0": 4, "y1": 4, "y2": 4}


def test_a_named_column_that_is_missing_gets_a_sentence(qtbot, page, ctx, tmp_path):
    data = write_csv(tmp_path / "tickets.csv")
    open_and_wait(qtbot, page, data)
    # The file is edited outside the app: its label column is renamed; Scan Again.
    data.write_text(data.read_text().replace("category", "topic_name"))
    page.rescan_button.click()
    qtbot.waitUntil(lambda: not ctx.pool.busy and not page.scanning, timeout=30000)

    assert page.index is None
    assert "has no column 'category'" in page.banner.text()
    assert "Label column box" in page.banner.text()
    combo = page.text_view.source.label_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "id",
        "message",
        "topic_name",
        "priority",
    ]
    assert not page.continue_button.isEnabled()


@pytest.mark.parametrize(
    ("name", "content", "sentence"),
    [
        ("binary.csv", b"\x00\x01\x02PK\x03\x04" * 50, "is not a text file"),
        ("empty.tsv", b"   \n", "is empty"),
        ("broken.jsonl", b"not json\n[1, 2]\n", "holds no JSON objects"),
    ],
)
def test_a_bad_table_file_shows_one_sentence(qtbot, page, ctx, tmp_path, name, content, sentence):
    bad = tmp_path / name
    bad.write_bytes(content)
    open_and_fail(qtbot, page, bad)
    assert sentence in page.banner.text()
    assert page.stack.currentWidget() is page.empty_state
    assert page.index is None and not page.continue_button.isEnabled()
    assert bad.read_bytes() == content


def test_a_missing_table_file_says_so(qtbot, page, tmp_path):
    open_and_fail(qtbot, page, tmp_path / "nowhere.csv")
    assert "does not exist" in page.banner.text()


def test_a_table_problem_shows_its_rows_in_the_preview(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, write_csv(tmp_path / "tickets.csv", blank_label_row=True))
    problems = page.problem_list
    row = next(r for r in range(problems.count()) if "no label" in problems.item(r).text())
    problems.setCurrentRow(row)
    qtbot.keyClick(problems, Qt.Key.Key_Return)

    source = page.text_view.source
    assert [r[0] for r in source.model.rows] == [5]
    assert source.model.index(0, 1).data() == "Where is my order"
    assert "the problem you chose" in source.caption.text()
    assert source.first_rows_button.isVisibleTo(page)
    source.first_rows_button.click()
    assert source.model.rowCount() == 10


def test_problem_rows_are_read_from_the_sentence():
    assert problem_rows("Row 12 of a.csv has no label; it is skipped.") == [12]
    assert problem_rows("3 rows of a.csv have no text (rows 4, 9, 12); they are skipped.") == [
        4,
        9,
        12,
    ]
    assert problem_rows("Line 3 of a.jsonl is not a JSON object; it is skipped.") == [3]
    assert problem_rows("Class 'x' has 1 usable text (the minimum is 2).") == []


def make_text_folder(root: Path) -> Path:
    for cls, texts in MESSAGES.items():
        folder = root / cls
        folder.mkdir(parents=True)
        for i, text in enumerate(texts):
            (folder / f"{cls}_{i}.txt").write_text(text, encoding="utf-8")
    (root / "login" / "empty.txt").write_bytes(b"")
    return root


def test_a_folder_of_txt_files_scans_as_texts(qtbot, page, ctx, tmp_path):
    root = make_text_folder(tmp_path / "tickets")
    open_and_wait(qtbot, page, root)

    assert page.modality == "text"
    assert class_rows(page) == {"billing": 3, "login": 3, "shipping": 3}
    assert not page.text_view.source.isVisibleTo(page)  # no columns to choose in a folder
    assert page.text_view.examples.isVisibleTo(page)
    assert (ctx.state.config.data.text_column, ctx.state.config.data.label_column) == ("", "")
    assert page.split_settings.min_spin.suffix() == " texts"

    examples = page.text_view.examples
    page.class_table.itemDoubleClicked.emit(page.class_table.item(1, 0))  # login
    assert examples.filter_combo.currentData() == "login"
    assert sorted(examples.shown_texts()) == sorted(MESSAGES["login"])

    problems = page.problem_list
    row = next(r for r in range(problems.count()) if "empty.txt" in problems.item(r).text())
    problems.setCurrentRow(row)
    qtbot.keyClick(problems, Qt.Key.Key_Return)
    dialog = page.text_view.preview()
    assert dialog.isVisible() and str(root / "login" / "empty.txt") in dialog.path_label.text()
    qtbot.waitUntil(lambda: dialog.text_edit.toPlainText() == "[The file is empty.]", timeout=5000)
    dialog.close()


def test_an_example_opens_in_full(qtbot, page, tmp_path):
    open_and_wait(qtbot, page, make_text_folder(tmp_path / "tickets"))
    examples = page.text_view.examples
    examples.table.activated.emit(examples.table.model().index(0, 1))
    dialog = page.text_view.preview()
    assert dialog.text_edit.toPlainText() == examples.shown_texts()[0]
    assert "Class: billing" in dialog.path_label.text()
    dialog.close()


def test_an_image_folder_after_a_table_shows_thumbnails_again(qtbot, page, tmp_path):
    from test_data_page import make_dataset

    open_and_wait(qtbot, page, write_csv(tmp_path / "tickets.csv"))
    open_and_wait(qtbot, page, make_dataset(tmp_path / "pets", {"cats": 3, "dogs": 3}))
    assert page.modality == "image"
    assert page.grid.isVisibleTo(page) and not page.text_view.isVisibleTo(page)
    assert page.class_table.horizontalHeaderItem(1).text() == "Images"
    assert page.text_view.source.table is None
    assert page.grid.model.loader.wait_for_done(10000)
