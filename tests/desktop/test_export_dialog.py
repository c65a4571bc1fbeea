"""The Export dialog on tiny real runs: formats written and checked, refusals, cancel, close."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog
from synthetic import tree_snapshot
from trained_runs import train_image_run, train_text_run

from desktop.results.export_dialog import ExportDialog


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    return train_image_run(tmp_path_factory.mktemp("image-run"))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return train_text_run(tmp_path_factory.mktemp("text-run"))


def idle(dialog: ExportDialog) -> bool:
    """No job of the dialog runs and its own pool's threads have ended (a job's last callback
    comes just before its thread ends)."""
    return not dialog.busy and not dialog.pool.busy


@pytest.fixture
def open_dialog(qtbot):
    dialogs = []  # alive until the test ends (qtbot keeps weak references only)

    def make(run: Path) -> ExportDialog:
        dialog = ExportDialog(run)  # with a worker pool of its own (the app passes its pool)
        # pytest-qt closes and deletes the widgets it was given before fixture teardown: wait
        # for the dialog's threads then, or one is destroyed while it runs (Qt aborts).
        qtbot.addWidget(
            dialog, before_close_func=lambda d: qtbot.waitUntil(lambda: idle(d), timeout=120000)
        )
        dialog.show()
        dialogs.append(dialog)
        qtbot.waitUntil(lambda: dialog.facts is not None, timeout=30000)
        return dialog

    yield make
    dialogs.clear()


def dataset_of(run: Path) -> Path:
    from engine.runs import RunDir

    return Path(RunDir(run).config().data.path)


@pytest.mark.slow
def test_image_run_exports_safetensors_and_onnx_with_the_check(
    qtbot, open_dialog, image_run, tmp_path, monkeypatch
):
    dialog = open_dialog(image_run)
    assert dialog.folder_edit.text() == str(image_run / "export")
    hf = dialog.format_boxes["hf"]
    assert not hf.isEnabled() and "transformers" in hf.toolTip()
    assert "always written" in dialog.findChild(type(dialog.status_label), "exportCardNote").text()
    out = tmp_path / "exported"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    qtbot.mouseClick(dialog.choose_button, Qt.MouseButton.LeftButton)
    assert dialog.folder_edit.text() == str(out)
    dialog.set_formats(["safetensors", "onnx"])
    with qtbot.waitSignal(dialog.exported, timeout=120000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    outcome = blocker.args[0]
    for name in ("model.safetensors", "model.onnx", "MODEL_CARD.md", "refit_model.json"):
        assert (out / name).is_file(), name
    assert not (out / "model.torchscript.pt").exists()
    onnx = next(r for r in outcome.results if str(r.format) == "onnx")
    assert onnx.max_diff is not None and onnx.max_diff < 1e-3
    shown = dialog.results_view.toPlainText()
    assert onnx.check in shown and "model.onnx" in shown and "MODEL_CARD.md" in shown
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert [u.toLocalFile() for u in opened] == [str(out)]
    qtbot.waitUntil(lambda: not dialog.running)  # "done" follows "exported"
    assert dialog.close_button.text() == "Close" and dialog.export_button.isEnabled()


@pytest.mark.slow
def test_a_folder_inside_the_dataset_is_refused_with_the_engine_sentence(
    qtbot, open_dialog, image_run
):
    dataset = dataset_of(image_run)
    before = tree_snapshot(dataset)
    dialog = open_dialog(image_run)
    dialog.folder_edit.setText(str(dataset / "export"))
    dialog.set_formats(["safetensors"])
    with qtbot.waitSignal(dialog.failed, timeout=30000) as blocker:
        dialog.start_export()
    assert "inside the dataset folder" in blocker.args[0]
    assert blocker.args[0] in dialog.status_label.text()
    assert not dialog.results_view.isVisible()
    assert tree_snapshot(dataset) == before


def test_cancel_stops_the_export_and_close_waits_for_it(qtbot, open_dialog, image_run, tmp_path):
    dialog = open_dialog(image_run)
    dialog.folder_edit.setText(str(tmp_path / "cancelled"))
    dialog.set_formats(["safetensors"])
    with qtbot.waitSignal(dialog.failed, timeout=30000) as blocker:
        dialog.start_export()
        assert dialog.close_button.text() == "Cancel"
        qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["Export cancelled."]
    assert dialog.outcome.cancelled and dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.busy)
    # Closing while an export runs: the dialog closes once the worker has stopped.
    dialog.start_export()
    dialog.reject()
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30000)
    assert not dialog.busy


@pytest.mark.slow
def test_lora_text_run_exports_the_hugging_face_folder(qtbot, open_dialog, text_run, tmp_path):
    dialog = open_dialog(text_run)
    assert dialog.format_boxes["hf"].isEnabled()
    assert dialog.lora_note.isVisible() and "adapter" in dialog.lora_note.text()
    out = tmp_path / "text-export"
    dialog.folder_edit.setText(str(out))
    dialog.set_formats(["hf", "safetensors"])
    with qtbot.waitSignal(dialog.exported, timeout=120000) as blocker:
        dialog.start_export()
    formats = {str(r.format) for r in blocker.args[0].results}
    assert formats == {"hf", "safetensors"}
    assert (out / "hf").is_dir() and (out / "MODEL_CARD.md").is_file()
    assert "hf/" in dialog.results_view.toPlainText()
