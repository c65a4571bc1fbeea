"""Export never replaces the user's files, appears all at once, gets the umask's modes, escapes
user text in MODEL_CARD.md; evaluation says when a split has no example of a class."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from synthetic import tree_snapshot
from trained_runs import train_image_run

from engine.cli import main as refit
from engine.export import ExportError, export_run
from engine.runs import RunDir

HOSTILE = "a|b`c <script> # x"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    """A tiny trained run whose first class has a name full of Markdown and HTML syntax."""
    return train_image_run(tmp_path_factory.mktemp("hostile"), classes=(HOSTILE, "square"))


def export_cli(run: Path, out: Path, *flags: str) -> int:
    return refit(["export", str(run), "--format", "safetensors", "--out", str(out), *flags])


def users_folder(root: Path) -> Path:
    folder = root / "mine"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"my own weights \x00\x01")
    (folder / "MODEL_CARD.md").write_text("# My own card\n")
    return folder


@pytest.mark.slow
def test_a_folder_with_the_users_files_is_refused_and_left_byte_for_byte(
    hostile_run, tmp_path, capsys
):
    folder = users_folder(tmp_path)
    before = tree_snapshot(folder)
    assert export_cli(hostile_run, folder) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder) in err
    assert "MODEL_CARD.md, model.safetensors" in err and "--overwrite" in err
    assert tree_snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging left beside it


def test_a_folder_with_other_files_only_is_refused_too(hostile_run, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert export_cli(hostile_run, folder) == 2
    assert "holds other files" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_only_the_names_the_export_writes(hostile_run, tmp_path, capsys):
    folder = users_folder(tmp_path)
    (folder / "notes.txt").write_text("keep me")
    assert export_cli(hostile_run, folder, "--overwrite") == 0, capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "keep me"
    assert (folder / "model.safetensors").read_bytes() != b"my own weights \x00\x01"
    assert "Refit Studio" in (folder / "MODEL_CARD.md").read_text()
    manifest = json.loads((folder / "refit_model.json").read_text())
    assert manifest["files"] == ["MODEL_CARD.md", "model.safetensors", "refit_model.json"]


@pytest.mark.slow
def test_an_earlier_export_is_replaced_but_the_users_files_beside_it_stay(hostile_run, tmp_path):
    out = tmp_path / "export"
    run = RunDir(hostile_run)
    export_run(run, ["torchscript"], out)
    (out / "notes.txt").write_text("keep me")
    export_run(run, ["safetensors"], out)  # an earlier export: no question asked
    names = sorted(p.name for p in out.iterdir())
    assert names == ["MODEL_CARD.md", "model.safetensors", "notes.txt", "refit_model.json"]
    # A file the user added that the earlier export did not list is not the export's to replace.
    (out / "model.torchscript.pt").write_bytes(b"the user's own")
    with pytest.raises(ExportError, match=r"model\.torchscript\.pt, which Refit Studio did not"):
        export_run(run, ["torchscript"], out)
    assert (out / "model.torchscript.pt").read_bytes() == b"the user's own"


def test_a_forged_manifest_cannot_claim_the_users_files(hostile_run, tmp_path):
    """A refit_model.json copied or forged into the user's folder lists their files (and paths
    outside it) as its own: none of them is replaced or removed."""
    out = tmp_path / "thesis"
    (out / "src").mkdir(parents=True)
    (out / "thesis.docx").write_text("my work")
    (out / "src" / "main.py").write_text("code")
    (tmp_path / "outside.txt").write_text("beside")
    claimed = ["thesis.docx", "src", ".git", "../outside.txt", "/etc/passwd", "refit_model.json"]
    manifest = {"run_id": "x", "classes": ["a"], "files": claimed}
    (out / "refit_model.json").write_text(json.dumps(manifest))
    before = {k: v for k, v in tree_snapshot(out).items() if k != "refit_model.json"}
    export_run(RunDir(hostile_run), ["safetensors"], out)
    after = tree_snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before
    assert (tmp_path / "outside.txt").read_text() == "beside"
    assert "model.safetensors" in after


def test_the_run_folder_itself_and_its_checkpoints_are_refused(hostile_run, capsys):
    before = tree_snapshot(hostile_run)
    for target in (hostile_run, hostile_run / "checkpoints"):
        assert export_cli(hostile_run, target, "--overwrite") == 2
        assert "the run's own files" in capsys.readouterr().err
    assert tree_snapshot(hostile_run) == before


def test_a_name_the_export_writes_never_replaces_the_dataset(tmp_path):
    from engine.export.target import export_names, plan_target

    out = tmp_path / "out"
    data = out / "backbone" / "shapes"  # a dataset kept where an hf export puts its backbone
    data.mkdir(parents=True)
    writes = export_names(["safetensors"], hf_backbone=True)
    with pytest.raises(ExportError, match=r"would replace .*backbone, which holds"):
        plan_target(out, writes, protected=[data], overwrite=True)


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_export_leaves_the_target_as_it_was(hostile_run, tmp_path, monkeypatch, existing):
    import engine.export.card as card

    out = tmp_path / "out"
    run = RunDir(hostile_run)
    if existing:
        export_run(run, ["safetensors"], out)
        (out / "notes.txt").write_text("keep me")
        before = tree_snapshot(out)

    def broken(*_args, **_kwargs):  # after every model file has been written and checked
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(card, "write_model_card", broken)
    with pytest.raises(OSError, match="No space"):
        export_run(run, ["safetensors", "torchscript"], out)
    if existing:
        assert tree_snapshot(out) == before
    else:
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if existing else [])


def test_a_cancelled_export_writes_nothing(hostile_run, tmp_path):
    from engine.task import Cancelled, Task

    def progress(step) -> None:
        if step.message.startswith("Writing model.safetensors"):
            task.cancel()

    task = Task(progress)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Cancelled):
        export_run(RunDir(hostile_run), ["safetensors"], out, task=task)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_get_the_mode_the_umask_gives(
    hostile_run, tmp_path, umask, file_mode, dir_mode
):
    from engine.files import write_json_atomic

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "plain" / "x.json", {"a": 1})
        export_run(RunDir(hostile_run), ["safetensors"], tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain" / "x.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == dir_mode
    for path in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path.name


def test_the_model_card_escapes_class_names_and_the_run_name(hostile_run, tmp_path):
    run = RunDir(hostile_run)
    config = json.loads(run.config_path.read_text())
    config["name"] = "# evil </h1>\n| x | y |"
    run.config_path.write_text(json.dumps(config))
    export_run(run, ["safetensors"], tmp_path / "out")
    text = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    # The config is a fenced JSON block (literal text, no fence line can come from JSON); the
    # rest is Markdown, where tags and syntax from user text must show as text.
    before, fenced, after = re.split(r"^```(?:json)?$", text, flags=re.MULTILINE)
    assert '"name": "# evil </h1>\\n| x | y |"' in fenced
    card = before + after
    assert "<script>" not in card and "</h1>" not in card
    headings = [line for line in card.splitlines() if line.startswith("#")]
    assert all(line.startswith(("# Model card: ", "## ")) for line in headings), headings
    assert headings[0] == "# Model card: \\# evil &lt;/h1&gt; \\| x \\| y \\|"
    escaped = "a\\|b\\`c &lt;script&gt; \\# x"
    rows = [line for line in card.splitlines() if line.startswith(f"| {escaped} |")]
    # The data table (5 columns) and the per-class metrics (6): the name adds no column.
    assert sorted(len(re.split(r"(?<!\\)\|", row)) for row in rows) == [7, 8]


def test_markdown_text_and_code_stay_literal():
    from engine.export.markdown import md_code, md_text

    assert md_text("a\nb\r\n# c") == "a b \\# c"
    assert md_text("*x* _y_ [l](u) ~z~ a & b") == "\\*x\\* \\_y\\_ \\[l\\](u) \\~z\\~ a &amp; b"
    assert md_code("a``b") == "```a``b```"
    assert md_code("`x") == "`` `x ``"


def test_a_split_without_a_class_gets_a_warning_not_a_perfect_score(capsys):
    from engine.cli.reports import evaluation_lines
    from engine.evaluation.predictions import SplitPredictions
    from engine.evaluation.report import Evaluation, evaluate
    from engine.export.card import _metrics

    classes = ("cat", "dog", HOSTILE)
    labels = np.zeros(4, dtype=np.int64)
    probs = np.tile(np.array([[0.8, 0.1, 0.1]], dtype=np.float32), (4, 1))
    preds = SplitPredictions(
        run_id="r1",
        split="val",
        classes=classes,
        refs=tuple(f"{i}.png" for i in range(4)),
        digests=tuple(str(i) for i in range(4)),
        labels=labels,
        probs=probs,
        checkpoint="best",
        modality="image",
        train_counts=(5, 5, 5),
    )
    ev = evaluate(preds)
    assert ev.accuracy == 1.0
    (warning,) = ev.warnings
    assert "validation split has no examples of the classes 'dog', " in warning
    assert [c.measured for c in ev.per_class] == [True, False, False]
    again = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again.warnings == ev.warnings and ev.to_dict()["warnings"] == [warning]
    lines = evaluation_lines(ev)
    assert f"Warning: {warning}" in lines
    dog = next(line for line in lines if line.startswith("dog "))
    assert "no examples" in dog and "0.000" not in dog
    card = _metrics(ev, "Validation metrics", "validation")
    assert "**Warning:**" in card and "| dog | no examples | no examples | no examples |" in card


def test_the_results_page_and_the_report_say_no_examples(qtbot):
    from desktop.results.metrics_view import PerClassTable
    from desktop.results.results_report import _per_class_table
    from engine.evaluation.report import ClassMetrics

    rows = [ClassMetrics("cat", 1.0, 1.0, 1.0, 4), ClassMetrics("<b>dog</b>", 0.0, 0.0, 0.0, 0)]
    table = PerClassTable()
    qtbot.addWidget(table)
    table.set_metrics(rows, 1.0)
    assert table.row_texts(1) == ["<b>dog</b>", "no examples", "no examples", "no examples", "0"]
    assert table.row_texts(2)[1:3] == ["100.0%", "100.0%"]  # the average leaves dog out

    class Ev:
        per_class = rows

    html = _per_class_table(Ev())
    assert "no examples" in html and "<b>dog</b>" not in html and "&lt;b&gt;dog" in html


def test_the_export_dialog_asks_before_replacing_and_no_leaves_the_folder(
    qtbot, hostile_run, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    from desktop.results.export_dialog import ExportDialog

    folder = users_folder(tmp_path)
    (folder / "notes.txt").write_text("keep me")
    before = tree_snapshot(folder)
    asked: list[str] = []
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]

    def question(_parent, _title, text, *_buttons):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    dialog = ExportDialog(hostile_run)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.facts is not None, timeout=30000)
    dialog.folder_edit.setText(str(folder))
    dialog.set_formats(["safetensors"])
    dialog.start_export()
    qtbot.waitUntil(lambda: len(asked) == 1 and not dialog.running, timeout=30000)
    assert "MODEL_CARD.md\n" in asked[0] and "model.safetensors\n" in asked[0]
    assert "Nothing was exported" in dialog.status_label.text()
    assert tree_snapshot(folder) == before
    with qtbot.waitSignal(dialog.exported, timeout=60000):
        dialog.start_export()  # asked again; this time the answer is Yes
    assert len(asked) == 2 and (folder / "notes.txt").read_text() == "keep me"
    assert (folder / "model.safetensors").read_bytes() != b"my own weights \x00\x01"
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30000)
