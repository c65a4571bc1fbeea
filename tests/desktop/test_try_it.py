"""The Try-it widget on tiny real runs: drop, choose, paste, classify texts, explain, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QFileDialog
from synthetic import draw_shape, tree_snapshot
from trained_runs import train_image_run, train_text_run

from desktop.results.try_it import TryItWidget

TEXT = "my parcel is still not here, the courier tracking says it arrived"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    return train_image_run(tmp_path_factory.mktemp("image-run"))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return train_text_run(tmp_path_factory.mktemp("text-run"))


@pytest.fixture
def widget(qtbot, ctx):
    w = TryItWidget(ctx)
    # Wait for the widget's jobs before pytest-qt closes and deletes it (it does so before
    # fixture teardown): a job ending after that is dropped with its widget, and w.busy stays.
    qtbot.addWidget(
        w, before_close_func=lambda w: qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    )
    w.resize(900, 560)
    w.show()
    return w


def load(qtbot, widget, run: Path, modality: str) -> None:
    with qtbot.waitSignal(widget.loaded, timeout=60000) as blocker:
        widget.set_run(run)
    assert blocker.args == [modality]


def engine_top(run: Path, path: str) -> list[tuple[str, float]]:
    from engine.evaluation import Predictor
    from engine.runs import RunDir

    predictor = Predictor(RunDir(run))
    return predictor.predict([path], top_k=len(predictor.classes))[0].top


def an_image(tmp_path: Path, kind: str = "circle") -> str:
    import random

    path = tmp_path / f"new-{kind}.png"
    draw_shape(kind, random.Random(7), 64).save(path)
    return str(path)


def drop(widget, mime: QMimeData) -> None:
    zone = widget.image_panel.drop_zone
    action = Qt.DropAction.CopyAction
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    pos = QPointF(zone.width() / 2, zone.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), action, mime, buttons, modifiers)
    QApplication.sendEvent(zone, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(zone, QDropEvent(pos, action, mime, buttons, modifiers))


def assert_same_top(shown, expected) -> None:
    assert [name for name, _ in shown] == [name for name, _ in expected]
    assert [p for _, p in shown] == pytest.approx([p for _, p in expected], abs=1e-5)


def test_dropped_image_shows_the_engine_top_classes(qtbot, widget, image_run, tmp_path):
    load(qtbot, widget, image_run, "image")
    path = an_image(tmp_path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    with qtbot.waitSignal(widget.predicted, timeout=30000) as blocker:
        drop(widget, mime)
    assert_same_top(blocker.args[0], engine_top(image_run, path))
    assert widget.image_panel.bars.rows == blocker.args[0]
    assert widget.image_panel.bars.selected == blocker.args[0][0][0]
    assert widget.image_panel.drop_zone.image is not None
    assert not widget.message_label.isVisible()


def test_chosen_image_and_pasted_image(qtbot, widget, image_run, tmp_path, monkeypatch):
    load(qtbot, widget, image_run, "image")
    path = an_image(tmp_path, "square")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (path, "Images"))
    with qtbot.waitSignal(widget.predicted, timeout=30000) as blocker:
        qtbot.mouseClick(widget.image_panel.choose_button, Qt.MouseButton.LeftButton)
    assert_same_top(blocker.args[0], engine_top(image_run, path))

    from engine.runs import RunDir

    dataset = Path(RunDir(image_run).config().data.path)
    before = tree_snapshot(dataset)
    QGuiApplication.clipboard().setImage(QImage(an_image(tmp_path, "circle")))
    with qtbot.waitSignal(widget.predicted, timeout=30000) as blocker:
        qtbot.mouseClick(widget.image_panel.paste_button, Qt.MouseButton.LeftButton)
    pasted = widget.analysis.request.source
    assert Path(pasted).is_file() and not Path(pasted).is_relative_to(dataset)
    assert_same_top(blocker.args[0], engine_top(image_run, pasted))
    assert tree_snapshot(dataset) == before


def test_a_file_that_is_not_an_image_gives_one_sentence(qtbot, widget, image_run, tmp_path):
    load(qtbot, widget, image_run, "image")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with qtbot.waitSignal(widget.failed, timeout=30000) as blocker:
        widget.try_image(str(notes))
    assert "not an image" in blocker.args[0] and "notes.txt" in blocker.args[0]
    assert widget.message_label.isVisible()
    assert widget.image_panel.bars.rows == []
    # The widget still works afterwards.
    with qtbot.waitSignal(widget.predicted, timeout=30000):
        widget.try_image(an_image(tmp_path))
    assert not widget.message_label.isVisible()


def test_text_is_classified_like_the_engine(qtbot, widget, text_run):
    from engine.evaluation import Predictor
    from engine.runs import RunDir

    load(qtbot, widget, text_run, "text")
    editor = widget.text_panel.editor
    assert editor.placeholderText() == "Paste a text…"
    editor.setPlainText(TEXT)
    editor.setFocus()
    with qtbot.waitSignal(widget.predicted, timeout=30000) as blocker:
        qtbot.mouseClick(widget.text_panel.classify_button, Qt.MouseButton.LeftButton)
    expected = Predictor(RunDir(text_run)).predict_texts([("t", TEXT)], top_k=2)[0].top
    assert_same_top(blocker.args[0], expected)
    with qtbot.waitSignal(widget.predicted, timeout=30000) as blocker:
        qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert_same_top(blocker.args[0], expected)
    assert editor.toPlainText() == TEXT  # Ctrl+Enter classifies; it adds no line
    with qtbot.waitSignal(widget.failed, timeout=5000):
        widget.classify_text("   ")


def test_heatmap_toggle_overlays_grad_cam_for_the_picked_class(qtbot, widget, image_run, tmp_path):
    pytest.importorskip("engine.evaluation.explain")
    load(qtbot, widget, image_run, "image")
    box = widget.image_panel.heatmap_box
    assert box.isEnabled(), box.toolTip()
    with qtbot.waitSignal(widget.predicted, timeout=30000) as blocker:
        widget.try_image(an_image(tmp_path))
    top = blocker.args[0]
    picture = widget.image_panel.drop_zone.image
    with qtbot.waitSignal(widget.explained, timeout=60000) as blocker:
        box.setChecked(True)
    assert blocker.args == [top[0][0]]
    shown = widget.image_panel.drop_zone.image
    assert shown is not None and shown != picture
    assert top[0][0] in widget.image_panel.caption.text()
    other = top[1][0]
    with qtbot.waitSignal(widget.explained, timeout=60000) as blocker:
        widget.image_panel.bars.pick(other)
    assert blocker.args == [other]
    assert other in widget.image_panel.caption.text()
    box.setChecked(False)
    assert widget.image_panel.drop_zone.image == picture


def test_influential_words_are_highlighted(qtbot, widget, text_run):
    pytest.importorskip("engine.evaluation.explain")
    load(qtbot, widget, text_run, "text")
    with qtbot.waitSignal(widget.predicted, timeout=30000):
        widget.classify_text(TEXT)
    box = widget.text_panel.influence_box
    assert box.isEnabled(), box.toolTip()
    with qtbot.waitSignal(widget.explained, timeout=60000):
        box.setChecked(True)
    view = widget.text_panel.influence_view
    assert "courier" in view.toPlainText() and "toward" in view.toPlainText()
    tinted = view.toHtml().count("background-color")
    assert tinted >= 3  # tinted words plus the legend
    box.setChecked(False)
    assert "courier" in view.toPlainText() and "toward" not in view.toPlainText()
    assert view.toHtml().count("background-color") < tinted


def test_without_the_explain_module_the_toggle_says_why(qtbot, widget, image_run, monkeypatch):
    import engine

    # The desktop imports explanations through the engine's API, which keeps what it imported.
    monkeypatch.delattr(engine, "can_explain", raising=False)
    monkeypatch.setitem(sys.modules, "engine.evaluation.explain", None)  # import fails
    load(qtbot, widget, image_run, "image")
    box = widget.image_panel.heatmap_box
    assert not box.isEnabled()
    assert box.toolTip().endswith(".") and "Explanations" in box.toolTip()


def test_a_run_without_a_checkpoint_says_so(qtbot, widget, image_run, tmp_path):
    import shutil

    broken = tmp_path / "broken-run"
    shutil.copytree(image_run, broken, ignore=shutil.ignore_patterns("checkpoints"))
    with qtbot.waitSignal(widget.failed, timeout=30000) as blocker:
        widget.set_run(broken)
    assert "no checkpoint" in blocker.args[0]
    assert widget.stack.currentIndex() == 0
    widget.set_run(None)
    assert widget.status_label.text() == ""
