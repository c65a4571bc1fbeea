"""Holes a hostile tester found after issue 10's first fixes (HOSTILE-B's part).

Code an auto_map reaches outside the model folder, export staging leftovers that are not ours,
huge tables, links to other class folders, and control characters printed to the terminal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine import trust
from reliability.hostile_models import EVIL_MODULE, add_code, save_vit

# -- F1: auto_map references that leave the model folder ------------------------------------------


def _point_auto_map(folder: Path, ref: str) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": ref}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("how", ["linked_dir", "absolute", "dotdot"])
def test_code_outside_the_folder_is_refused_even_when_granted(tmp_path, how):
    sentinel = tmp_path / "SENTINEL"
    folder = add_code(save_vit(tmp_path / "model"), sentinel)
    outside = tmp_path / "attacker_share"
    outside.mkdir()
    (folder / f"{EVIL_MODULE}.py").rename(outside / "modeling_x.py")
    ref = {
        "linked_dir": "code/modeling_x.EvilModel",
        "absolute": f"{outside}/modeling_x.EvilModel",
        "dotdot": "../attacker_share/modeling_x.EvilModel",
    }[how]
    if how == "linked_dir":
        os.symlink(outside, folder / "code")
    _point_auto_map(folder, ref)
    with trust.process_grant(True), pytest.raises(trust.RemoteCodeRefused) as err:
        trust.remote_code_kwargs(folder, "someone/vit")
    assert "only code that is inside the model folder" in str(err.value)
    with pytest.raises(trust.RemoteCodeRefused):
        trust.trust_folder(folder)
    assert not trust.is_trusted(folder)
    assert not sentinel.exists()


def test_relative_import_leaving_the_folder_is_refused(tmp_path):
    folder = add_code(save_vit(tmp_path / "model"), tmp_path / "SENTINEL")
    module = folder / f"{EVIL_MODULE}.py"
    # transformers' line regex also matches inside a docstring, and copies what it names.
    module.write_text('"""\nfrom .x/../../evil import y\n"""\n' + module.read_text())
    with trust.process_grant(True), pytest.raises(trust.RemoteCodeRefused, match="'\\.\\.'"):
        trust.remote_code_kwargs(folder, "someone/vit")


def test_hash_covers_code_in_skipped_folders_that_auto_map_names(tmp_path):
    folder = save_vit(tmp_path / "model")
    hidden = folder / ".cache"
    hidden.mkdir()
    (hidden / "modeling_x.py").write_text("from .helper import y\n")
    (hidden / "helper.py").write_text("y = 1\n")
    _point_auto_map(folder, ".cache/modeling_x.EvilModel")
    trust.trust_folder(folder)
    assert trust.remote_code_kwargs(folder, "vit") == {"trust_remote_code": True}
    (hidden / "helper.py").write_text("y = 2  # changed after it was allowed\n")
    with pytest.raises(trust.RemoteCodeRefused, match="changed since you allowed it"):
        trust.remote_code_kwargs(folder, "vit")


# -- F2: only staging folders an export made are removed as leftovers -----------------------------


def test_only_our_staging_leftovers_are_removed(tmp_path):
    from engine.export.target import ExportTarget, open_staging

    target = ExportTarget(tmp_path, frozenset(), ())
    killed = open_staging(target)  # an export killed after it began staging
    (killed / "model.safetensors").write_bytes(b"half")
    notes = tmp_path / ".refit-export-notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    unmarked = tmp_path / ".refit-export-0123abcd"  # our name, but not provably ours
    unmarked.mkdir()
    (unmarked / "keep.txt").write_text("mine too")
    empty = tmp_path / ".refit-export-deadbeef"
    empty.mkdir()

    staging = open_staging(target)
    assert not killed.exists()
    assert not empty.exists()
    assert (notes / "keep.txt").read_text() == "mine"
    assert (unmarked / "keep.txt").read_text() == "mine too"
    assert staging.is_dir() and staging != killed


# -- F6: links to other class folders are not followed ---------------------------------------------


def test_links_to_other_class_folders_are_not_followed(tmp_path):
    from synthetic import make_shapes_folder

    from engine.data.scan import scan_folder

    root = tmp_path / "data"
    make_shapes_folder(root, classes=("circle", "square", "triangle"), per_class=4, size=32)
    os.symlink("circle", root / "circle_alias")
    os.symlink("../square", root / "triangle" / "sq")
    first = sorted((root / "square").iterdir())[0].name
    os.symlink(f"../square/{first}", root / "triangle" / "copy.png")
    os.mkdir(root / "triangle" / "more")
    os.symlink("more", root / "triangle" / "more_alias")  # its own class folder: fine

    index = scan_folder(root)
    assert index.classes == ("circle", "square", "triangle")
    assert index.class_counts()["all"] == {"circle": 4, "square": 4, "triangle": 4}
    messages = [p.message for p in index.problems]
    expected = [
        "circle_alias links to the class folder 'circle'; it is not followed, so its images "
        "are not counted twice.",
        "triangle/sq links to the class folder 'square'; it is not followed, so its images "
        "are not counted twice.",
        "triangle/copy.png links into the class folder 'square'; it is not followed, so its "
        "images are not counted twice.",
    ]
    for sentence in expected:
        assert sentence in messages, messages
    assert not any("different classes" in m for m in messages), messages


# -- F7: nothing from a file or folder name reaches the terminal as a control character ------------


def test_terminal_safe_escapes_controls_and_bidi_but_keeps_letters():
    from engine.terminal_text import terminal_safe

    assert terminal_safe("chat é 猫 🐈\u200d⬛") == "chat é 猫 🐈\u200d⬛"
    assert terminal_safe("a\x1b]0;pwned\x07b\nc\x9b\x7f\u202etxt") == (
        "a\\x1b]0;pwned\\x07b\\nc\\x9b\\x7f\\u202etxt"
    )


def test_scan_prints_class_names_escaped(tmp_path, capsys):
    from synthetic import make_shapes_folder

    from engine.cli import main as refit

    root = tmp_path / "data"
    make_shapes_folder(root, classes=("circle", "square"), per_class=3, size=32)
    (root / "square").rename(root / "sq\x1b]0;pwned\x07\nFAKE ROW\u202e")
    refit(["scan", str(root)])
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\u202e" not in out.out + out.err
    assert "\x07" not in out.out + out.err
    assert "  sq\\x1b]0;pwned\\x07\\nFAKE ROW\\u202e: all 3" in out.out.splitlines()
    assert not any(line.startswith("FAKE ROW") for line in out.out.splitlines())


def test_anything_the_cli_prints_goes_through_the_net(capsys, monkeypatch):
    from engine.cli import backbones, main

    def noisy(_args):
        print("title\x1b]0;pwned\x07 done\u2066")
        return 0

    monkeypatch.setattr(backbones, "_cmd_backbones", noisy)
    assert main(["backbones"]) == 0
    assert capsys.readouterr().out == "title\\x1b]0;pwned\\x07 done\\u2066\n"


# -- F5: tables are refused from their size before reading, and their rows are bounded ------------


def test_a_huge_sparse_table_is_refused_without_reading_it(tmp_path, monkeypatch):
    from engine.data import safe_read
    from engine.data.problems import DatasetError
    from engine.data.text_read import read_table

    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:
        fh.truncate(safe_read.TABLE_LIMIT + 1)  # sparse: no disk used

    def no_read(*_args):
        raise AssertionError("the table was read before its size was checked")

    monkeypatch.setattr(os, "read", no_read)
    with pytest.raises(DatasetError, match="is larger than 512 MiB, the most read for one table"):
        read_table(path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_table_with_too_many_rows_is_refused_with_a_sentence(tmp_path, monkeypatch, suffix):
    from engine.data import text_read
    from engine.data.problems import DatasetError

    monkeypatch.setattr(text_read, "ROW_LIMIT", 5)
    path = tmp_path / f"rows{suffix}"

    def write(n: int) -> None:
        if suffix == ".csv":
            path.write_text("text,label\n" + "".join(f"t{i},cat\n" for i in range(n)))
        else:
            path.write_text("".join(f'{{"text": "t{i}", "label": "cat"}}\n' for i in range(n)))

    write(5)
    assert len(text_read.read_table(path).rows) == 5
    write(6)
    unit = "rows" if suffix == ".csv" else "lines"
    with pytest.raises(DatasetError) as err:
        text_read.read_table(path)
    assert str(err.value) == (
        f"rows{suffix} has more than 5 {unit}, the most read from one table; choose a sample "
        "of it (or split it into smaller files) and use that."
    )
