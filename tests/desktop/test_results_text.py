"""Results page on a tiny real text run: rows of text per cell, influential words on request."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from trained_runs import train_text_run

from desktop.results.metrics_view import percent
from desktop.results.page import ResultsPage
from engine.runs import RunDir

WAIT = 120000


@pytest.fixture(scope="module")
def trained_text_run(tmp_path_factory) -> Path:
    return train_text_run(tmp_path_factory.mktemp("results-text"))


@pytest.fixture
def page(qtbot, ctx, trained_text_run):
    shutil.copytree(trained_text_run, ctx.workspace / "runs" / trained_text_run.name)
    widget = ResultsPage(ctx)
    qtbot.addWidget(widget)
    widget.resize(1300, 800)
    widget.show()
    widget.on_shown()
    qtbot.waitUntil(lambda: widget.results is not None, timeout=WAIT)
    widget.evaluate_button.click()
    qtbot.waitUntil(lambda: not widget.busy and not ctx.pool.busy, timeout=WAIT)
    assert "val" in widget.results.splits, widget.info.text()
    yield widget
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=WAIT)


@pytest.mark.slow
def test_text_cells_list_their_texts_and_highlight_influential_words(page, ctx, qtbot):
    from engine.evaluation import examples_in_cell, load_evaluation, load_predictions

    run = RunDir(page.results.facts.path)
    ev, preds = load_evaluation(run), load_predictions(run)
    view = page.view
    assert view.cards.text("accuracy") == percent(ev.accuracy)
    assert view.threshold.isVisible()
    true = max(range(2), key=lambda i: ev.confusion[i][i])
    view.open_cell(true, true)
    gallery = view.gallery
    assert gallery.stack.currentWidget() is gallery.text_view
    assert gallery.toggle.text() == "Highlight influential words"
    expected = [preds.refs[i] for i in examples_in_cell(preds, true, true)]
    assert gallery.text_view.row_texts() == expected
    assert "background-color" not in gallery.text_view.page_html()

    gallery.toggle.setChecked(True)
    wanted = expected[:60]
    qtbot.waitUntil(lambda: all(gallery.explained(t) is not None for t in wanted), timeout=WAIT)
    qtbot.waitUntil(lambda: not gallery.busy, timeout=WAIT)
    first = gallery.explained(expected[0])
    assert not isinstance(first, str), first
    assert [w for w, _ in first.words] == expected[0].split()
    assert "background-color" in gallery.text_view.page_html()
    gallery.toggle.setChecked(False)
    assert "background-color" not in gallery.text_view.page_html()
