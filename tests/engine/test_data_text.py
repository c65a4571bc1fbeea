"""Scanning text sources: folders and tables, column guessing, encodings, problems, splits."""

from __future__ import annotations

import json
import os

import pytest

from engine.data import DatasetError, ProblemKind, split_samples
from engine.data.text import TextProblemKind, scan_text_source, split_text_samples, text_digest


def only(index, kind):
    found = [p for p in index.problems if p.kind == kind]
    assert len(found) == 1, index.problems
    assert "\n" not in found[0].message
    return found[0]


def write(path, content, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding=encoding, newline="")
    return path


def make_text_folder(root, classes):
    for cls, texts in classes.items():
        for i, text in enumerate(texts):
            write(root / cls / f"{i:02d}.txt", text)
    return root


def rows(n_per_class=3):
    return [
        (f"text number {i} of {cls}", cls) for cls in ("neg", "pos") for i in range(n_per_class)
    ]


def test_a_class_folder_of_txt_files(tmp_path):
    root = make_text_folder(tmp_path / "d", {"pos": ["good", "great\n"], "neg": ["bad", "awful"]})
    index = scan_text_source(root)
    assert index.classes == ("neg", "pos") and not index.has_splits
    assert not index.problems and index.fatal_problem() is None
    assert index.class_counts() == {"all": {"neg": 2, "pos": 2}}
    assert [s.text for s in index.samples] == ["bad", "awful", "good", "great"]
    assert index.samples[0].origin == str(root / "neg" / "00.txt")
    assert index.text_column is None and index.source == str(root)
    assert all(len(s.digest) == 32 for s in index.samples)


def test_a_cancelled_task_stops_a_folder_scan(tmp_path):
    from engine.task import Cancelled, Task

    root = make_text_folder(tmp_path / "d", {"pos": ["good", "great"], "neg": ["bad", "awful"]})
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        scan_text_source(root, task=task)


def test_split_folders(tmp_path):
    root = tmp_path / "d"
    make_text_folder(root / "train", {"a": ["a1", "a2"], "b": ["b1", "b2"]})
    make_text_folder(root / "Validation", {"a": ["a3"], "b": ["b3"]})
    index = scan_text_source(root)
    assert index.has_splits
    assert index.class_counts() == {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}}


def test_folder_problems_are_one_sentence_each(tmp_path):
    root = make_text_folder(
        tmp_path / "d",
        {"pos": ["good", "great", " \n", "\t", "good"], "neg": ["bad", "awful", "great"]},
    )
    write(root / "pos" / "empty.txt", b"")
    write(root / "pos" / "junk.txt", b"ab\x00cd")
    write(root / "pos" / "notes.md", "x")
    write(root / "stray.txt", "x")
    index = scan_text_source(root)
    assert only(index, ProblemKind.EMPTY_FILE).message == (
        "pos/empty.txt is empty; it will be skipped. Copy the file again or remove it."
    )
    assert only(index, TextProblemKind.NOT_TEXT).message == (
        "pos/junk.txt is not a text file (it contains NUL bytes); it will be skipped."
    )
    assert only(index, TextProblemKind.EMPTY_TEXT).message == (
        "2 files have no text (only white space) (pos/02.txt, pos/03.txt); they are skipped."
    )
    assert only(index, ProblemKind.DUPLICATE).message == (
        "pos/04.txt repeats an earlier text with the same label; the copy is skipped."
    )
    conflict = only(index, ProblemKind.CONFLICTING_LABELS).message
    assert conflict.startswith("2 files have the same text under different labels")
    assert "('neg', 'pos') (neg/02.txt, pos/01.txt); every copy is left out." in conflict
    assert [s.text for s in index.samples] == ["bad", "awful"]
    # pos keeps one text: below the minimum of 2, so it is left out and one class remains.
    assert only(index, ProblemKind.TOO_FEW).message == (
        "Class 'pos' has 1 usable text (the minimum is 2); it is left out. "
        "Add more examples or lower the minimum."
    )
    fatal = only(index, ProblemKind.SINGLE_CLASS)
    assert fatal.severity == "error" and "only one class with enough texts ('neg')" in fatal.message
    with pytest.raises(DatasetError, match="at least two classes"):
        index.raise_if_unusable()
    strays = [p.message for p in index.problems if p.kind == ProblemKind.STRAY_FILE]
    assert strays == [
        "pos/notes.md is not a .txt file (.md files are not read); it is ignored.",
        "stray.txt is not inside a class folder; it is ignored.",
    ]


def test_a_text_in_two_splits_is_left_out_of_val(tmp_path):
    root = tmp_path / "d"
    make_text_folder(root / "train", {"a": ["a1", "a2"], "b": ["b1", "b2"]})
    make_text_folder(root / "val", {"a": ["a1", "a3"], "b": ["b3"]})
    index = scan_text_source(root)
    assert only(index, ProblemKind.IN_TWO_SPLITS).message == (
        "val/a/00.txt repeats a text of an earlier split; it is left out so that the "
        "evaluation stays honest."
    )
    assert index.class_counts()["val"] == {"a": 1, "b": 1}


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_with_comma_or_semicolon_and_quoted_newlines(tmp_path, delimiter):
    lines = [f"id{delimiter}review{delimiter}sentiment"]
    lines += [f'{i}{delimiter}"{t}, really"{delimiter}{c}' for i, (t, c) in enumerate(rows())]
    lines.append(f'9{delimiter}"two\nlines; here"{delimiter}pos')
    path = write(tmp_path / "data.csv", "\r\n".join(lines) + "\r\n")
    index = scan_text_source(path)
    assert (index.text_column, index.label_column) == ("review", "sentiment")
    assert index.classes == ("neg", "pos") and not index.problems
    assert index.samples[0].text == "text number 0 of neg, really"
    assert index.samples[-1].text == "two\nlines; here"
    assert index.samples[-1].origin == "data.csv:row 8"


def test_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path / "d.tsv", "text\tlabel\n" + "".join(f"{t}\t{c}\n" for t, c in rows()))
    index = scan_text_source(tsv)
    assert index.class_counts() == {"all": {"neg": 3, "pos": 3}}
    jsonl = write(
        tmp_path / "d.jsonl",
        "\n".join(json.dumps({"sentence": t, "y": int(c == "pos")}) for t, c in rows())
        + "\nnot json\n",
    )
    index = scan_text_source(jsonl)
    assert index.classes == ("0", "1") and len(index.samples) == 6
    assert index.samples[1].origin == "d.jsonl:line 2"
    assert only(index, TextProblemKind.BAD_LINE).message == (
        "Line 7 of d.jsonl is not a JSON object; it is skipped."
    )


def test_columns_are_guessed_from_their_values(tmp_path):
    body = "".join(f"{i},{t} with many more words in it,{c}\n" for i, (t, c) in enumerate(rows()))
    index = scan_text_source(write(tmp_path / "d.csv", "a,b,c\n" + body))
    assert (index.text_column, index.label_column) == ("b", "c")


def test_ambiguous_or_missing_columns_are_errors_naming_the_columns(tmp_path):
    body = "".join(f"{t},{t} too,{c}\n" for t, c in rows())
    path = write(tmp_path / "d.csv", "a,b,c\n" + body)
    with pytest.raises(DatasetError) as err:
        scan_text_source(path)
    assert str(err.value) == (
        "d.csv has the columns 'a', 'b', 'c' and which one holds the text is not clear; "
        "choose with --text-column."
    )
    assert scan_text_source(path, text_column="b").label_column == "c"
    with pytest.raises(DatasetError) as err:
        scan_text_source(path, label_column="kind")
    assert str(err.value) == (
        "d.csv has no column 'kind' (its columns are 'a', 'b', 'c'); "
        "choose one of them with --label-column."
    )


def test_utf8_bom_is_read_silently_and_cp1252_is_reported(tmp_path):
    content = "text,label\n" + "".join(f"café {t},{c}\n" for t, c in rows())
    index = scan_text_source(write(tmp_path / "bom.csv", content, encoding="utf-8-sig"))
    assert index.text_column == "text" and not index.problems
    assert index.samples[0].text.startswith("café")
    index = scan_text_source(write(tmp_path / "win.csv", content + "“quoted”,pos\n", "cp1252"))
    assert only(index, TextProblemKind.ENCODING).message == (
        "win.csv is not UTF-8; it was read as Windows-1252. Save it as UTF-8 to be sure."
    )
    assert index.samples[-1].text == "“quoted”"


def test_table_problems_are_aggregated_with_row_numbers(tmp_path):
    data = rows(4) + [("", "pos")] * 7 + [("no label", "")] + [("text number 0 of neg", "neg")]
    data += [("same words", "neg"), ("same  words ", "pos"), ("lonely", "odd")]
    path = write(tmp_path / "d.csv", "text,label\n" + "".join(f"{t},{c}\n" for t, c in data))
    index = scan_text_source(path)
    assert only(index, TextProblemKind.EMPTY_TEXT).message == (
        "7 rows of d.csv have no text (rows 10, 11, 12, 13, 14, …); they are skipped."
    )
    assert only(index, TextProblemKind.MISSING_LABEL).message == (
        "Row 17 of d.csv has no label; it is skipped."
    )
    assert only(index, ProblemKind.DUPLICATE).message == (
        "Row 18 of d.csv repeats an earlier text with the same label; the copy is skipped."
    )
    assert only(index, ProblemKind.CONFLICTING_LABELS).message == (
        "2 rows of d.csv have the same text under different labels ('neg', 'pos') "
        "(rows 19, 20); every copy is left out. Give each text one label only."
    )
    assert "Class 'odd' has 1 usable text" in only(index, ProblemKind.TOO_FEW).message
    assert index.classes == ("neg", "pos") and index.fatal_problem() is None


def test_no_usable_rows_is_fatal(tmp_path):
    index = scan_text_source(write(tmp_path / "d.csv", "text,label\n , a\n"))
    fatal = only(index, ProblemKind.EMPTY_DATASET)
    assert fatal.severity == "error"
    assert fatal.message.endswith("has no classes; give every row a text and a label.")
    with pytest.raises(DatasetError, match="is empty"):
        scan_text_source(write(tmp_path / "e.csv", ""))
    with pytest.raises(DatasetError, match=r"e\.xlsx is a spreadsheet.*save the sheet as CSV"):
        scan_text_source(write(tmp_path / "e.xlsx", "x"))
    with pytest.raises(DatasetError, match=r"e\.bin is not a folder or a \.csv, \.tsv or \.jsonl"):
        scan_text_source(write(tmp_path / "e.bin", "x"))


def test_stratified_split_is_deterministic_and_keeps_copies_together(tmp_path):
    data = [(f"sample {i} {c}", c) for c in ("a", "b") for i in range(10)]
    path = write(tmp_path / "d.csv", "text,label\n" + "".join(f"{t},{c}\n" for t, c in data))
    index = scan_text_source(path)
    first = split_samples(index, val_fraction=0.2, seed=3)
    assert split_text_samples(index, val_fraction=0.2, seed=3) == first
    assert [index.classes[s.label] for s in first.val].count("a") == 2
    assert len(first.val) == 4 and len(first.train) == 16
    # The same text in train and val folders is one group: split leakage is impossible.
    root = tmp_path / "f"
    make_text_folder(root / "train", {"a": ["x", "y", "z"], "b": ["u", "v", "w"]})
    make_text_folder(root / "val", {"a": ["x "]})
    folder = split_samples(scan_text_source(root), val_fraction=0.3, seed=0)
    assert not {s.digest for s in folder.val} & {s.digest for s in folder.train}
    assert text_digest("x") in {s.digest for s in folder.train + folder.val}


def test_the_source_is_never_written(tmp_path):
    root = make_text_folder(tmp_path / "d", {"pos": ["good", "good"], "neg": ["bad", ""]})
    table = write(tmp_path / "t.csv", "text,label\n" + "".join(f"{t},{c}\n" for t, c in rows()))
    before = {
        p: (p.read_bytes(), os.stat(p).st_mtime_ns)
        for p in [table, *root.rglob("*")]
        if p.is_file()
    }
    dirs = sorted(p for p in tmp_path.rglob("*"))
    scan_text_source(root)
    scan_text_source(table)
    assert sorted(p for p in tmp_path.rglob("*")) == dirs
    assert {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in before} == before
