"""Results page on a tiny real image run: evaluate, numbers, mistakes, threshold, test split,
compare with the base, report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QPushButton
from synthetic import make_shapes_folder

from desktop.results.metrics_view import decimal, percent
from desktop.results.page import ResultsPage
from engine.runs import RunDir

WAIT = 120000


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A fine-tuned (not linear-probe) tiny convnet with validation and test splits."""
    from engine.config import (
        AdaptConfig,
        AugmentConfig,
        AugmentPreset,
        DataConfig,
        Method,
        ModelConfig,
        RunConfig,
        ScheduleConfig,
    )
    from engine.training.trainer import train

    root = tmp_path_factory.mktemp("results-run")
    shapes = make_shapes_folder(root / "shapes", per_class=16)
    config = RunConfig(
        seed=3,
        data=DataConfig(path=str(shapes), val_fraction=0.25, test_fraction=0.2, num_workers=0),
        model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
        adapt=AdaptConfig(method=Method.FULL),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_fraction=0.0),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT, cache_views=2),
    ).validate()
    return Path(train(config, workspace=root / "ws").run_dir)


@pytest.fixture
def run(trained_run, ctx) -> RunDir:
    """A private copy of the trained run in this test's workspace, not evaluated yet (as runs
    of older versions, which did not save their evaluation when training ended)."""
    target = ctx.workspace / "runs" / trained_run.name
    shutil.copytree(trained_run, target)
    shutil.rmtree(target / "evaluation")
    return RunDir(target)


@pytest.mark.slow
def test_a_finished_run_opens_with_the_evaluation_training_saved(trained_run, ctx, qtbot):
    from engine.evaluation import load_evaluation

    target = ctx.workspace / "runs" / trained_run.name
    shutil.copytree(trained_run, target)
    ev = load_evaluation(RunDir(target), "val")
    assert ev is not None, "training saved the validation evaluation"
    page = ResultsPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    page.show()
    page.on_shown()
    qtbot.waitUntil(lambda: page.results is not None, timeout=WAIT)
    view = page.view
    assert "val" in page.results.splits and not page.busy  # nothing was evaluated here
    assert view.cards.isVisible() and view.overview_stack.currentWidget() is view.overview
    assert page.badge.isVisible() and page.badge.text().strip() == "VALIDATION"
    assert view.cards.text("accuracy") == percent(ev.accuracy)
    assert view.cards.text("macro_f1") == decimal(ev.macro_f1)
    assert view.matrix.counts == [list(r) for r in ev.confusion]
    assert page.evaluate_button.text() == "Evaluate again" and page.report_button.isEnabled()
    assert not (target / "evaluation" / "test.json").exists()
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=WAIT)


@pytest.fixture
def page(qtbot, ctx, run):
    widget = ResultsPage(ctx)
    qtbot.addWidget(widget)
    widget.resize(1300, 800)
    widget.show()
    widget.on_shown()
    qtbot.waitUntil(lambda: widget.results is not None, timeout=WAIT)
    yield widget
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=WAIT)


def evaluated(qtbot, page, ctx) -> None:
    page.evaluate_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=WAIT)
    assert "val" in page.results.splits, page.info.text()


def saved(run: RunDir, split: str = "val"):
    from engine.evaluation import load_evaluation, load_predictions

    return load_evaluation(run, split), load_predictions(run, split)


def test_evaluate_shows_the_numbers_the_engine_saved(page, ctx, run, qtbot):
    view = page.view
    assert view.isVisible() and not page.badge.isVisible()
    assert "not been evaluated" in view.prompt.text() and not view.cards.isVisible()
    assert not page.report_button.isEnabled()
    view.prompt_button.click()  # the same as the Evaluate button above
    qtbot.waitUntil(lambda: not page.busy and not ctx.pool.busy, timeout=WAIT)
    ev, _ = saved(run)
    assert view.overview_stack.currentWidget() is view.overview and view.cards.isVisible()
    assert page.badge.isVisible() and page.badge.text().strip() == "VALIDATION"
    assert view.cards.text("accuracy") == percent(ev.accuracy)
    assert view.cards.text("balanced_accuracy") == percent(ev.balanced_accuracy)
    assert view.cards.text("macro_f1") == decimal(ev.macro_f1)
    assert view.cards.text("ece") == decimal(ev.calibration.ece)
    assert view.cards.text("auc") == decimal(ev.roc[ev.positive].auc)
    assert view.cards.text("sensitivity") == percent(ev.operating.sensitivity)
    assert view.cards.text("specificity") == percent(ev.operating.specificity)
    for row, metrics in enumerate(ev.per_class):
        texts = view.table.row_texts(row)
        assert "95% CI" in view.cards.cards["accuracy"].interval
        assert texts[2].endswith("%)")  # recall (sensitivity) with its interval in brackets
        assert [t.split(" (")[0] for t in texts] == [
            metrics.name,
            percent(metrics.precision),
            percent(metrics.recall),
            decimal(metrics.f1),
            str(metrics.support),
        ]
    assert view.matrix.counts == [list(r) for r in ev.confusion]
    assert view.matrix.classes == list(ev.classes)
    assert view.roc.legend_texts() == [f"{ev.positive} (AUC {ev.roc[ev.positive].auc:.3f})"]
    assert view.pr.legend_texts() == [f"{ev.positive} (AP {ev.pr[ev.positive].auc:.3f})"]
    assert view.reliability.ece == pytest.approx(ev.calibration.ece)
    assert view.threshold.isVisible()  # two classes


def test_a_saved_evaluation_opens_without_evaluating_again(page, ctx, run, qtbot):
    evaluated(qtbot, page, ctx)
    again = ResultsPage(ctx)
    qtbot.addWidget(again)
    again.on_shown()
    qtbot.waitUntil(lambda: again.results is not None, timeout=WAIT)
    assert again.body.currentWidget() is not again.empty
    assert again.evaluate_button.text() == "Evaluate again"
    ev, _ = saved(run)
    assert again.view.cards.text("accuracy") == percent(ev.accuracy)


def test_clicking_a_cell_shows_exactly_its_examples_most_confident_first(page, ctx, run, qtbot):
    from engine.evaluation import examples_in_cell

    evaluated(qtbot, page, ctx)
    ev, preds = saved(run)
    view = page.view
    view.tabs.setCurrentWidget(view.overview_stack)
    cells = [(r, c) for r in range(2) for c in range(2)]
    true, predicted = max(cells, key=lambda rc: (rc[0] != rc[1], ev.confusion[rc[0]][rc[1]] > 0))
    center = view.matrix.cell_rect(true, predicted).center().toPoint()
    qtbot.mouseClick(view.matrix, Qt.MouseButton.LeftButton, pos=center)
    assert view.tabs.currentWidget() is view.gallery
    expected = [preds.refs[i] for i in examples_in_cell(preds, true, predicted)]
    assert view.gallery.shown_refs() == expected
    assert len(expected) == ev.confusion[true][predicted]
    confidences = [e.confidence for e in view.gallery.examples]
    assert confidences == sorted(confidences, reverse=True)
    assert all(e.truth == ev.classes[true] for e in view.gallery.examples)
    assert all(e.predicted == ev.classes[predicted] for e in view.gallery.examples)
    assert ev.classes[true] in view.gallery.header.text()
    assert view.gallery.model.rowCount() == len(expected)


def test_threshold_slider_follows_operating_point(page, ctx, run, qtbot):
    from engine.evaluation import operating_point

    evaluated(qtbot, page, ctx)
    ev, preds = saved(run)
    view = page.view
    for value in (30, 71):
        view.threshold.slider.setValue(value)
        point = operating_point(preds, ev.positive, value / 100)
        qtbot.waitUntil(lambda p=point: view.point == p, timeout=5000)
        assert view.cards.text("sensitivity") == percent(point.sensitivity)
        assert view.cards.text("specificity") == percent(point.specificity)
        assert f"Precision <b>{percent(point.precision)}</b>" in view.threshold.rates_label.text()
        counts = view.threshold.counts.values()
        assert counts == {"tp": point.tp, "fn": point.fn, "fp": point.fp, "tn": point.tn}
        assert view.roc.marker_position() == pytest.approx(
            (1 - point.specificity, point.sensitivity)
        )


def _answer_next_dialog(qtbot, button_name: str | None) -> list[str]:
    """Click a button of the next modal message box (Cancel when ``button_name`` is None)."""
    seen: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.objectName())
        seen.append(box.informativeText())
        if button_name is None:
            box.button(QMessageBox.StandardButton.Cancel).click()
        else:
            box.findChild(QPushButton, button_name).click()

    QTimer.singleShot(0, answer)
    return seen


def test_the_test_split_needs_a_confirmation_and_is_marked_test(page, ctx, run, qtbot):
    evaluate_path = run.path / "evaluation" / "test.json"
    assert page.test_button.isEnabled()
    seen = _answer_next_dialog(qtbot, None)
    page.test_button.click()
    assert seen[0] == "testSplitConfirmation" and "once" in seen[1]
    assert not page.busy and not evaluate_path.exists()

    seen = _answer_next_dialog(qtbot, "confirmTestButton")
    page.test_button.click()
    assert seen[0] == "testSplitConfirmation"
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    assert evaluate_path.is_file()
    assert page.split == "test" and page.badge.text().strip() == "TEST"
    assert "final estimate" in page.info.text()
    ev, _ = saved(run, "test")
    assert page.view.cards.text("accuracy") == percent(ev.accuracy)
    assert "test examples" in page.view.matrix.title

    evaluated(qtbot, page, ctx)  # validation too: the page can show either
    assert page.split_combo.isVisible()
    assert page.badge.text().strip() == "VALIDATION"
    page.split_combo.setCurrentIndex(page.split_combo.findData("test"))
    assert page.badge.text().strip() == "TEST"


def test_cancel_stops_the_evaluation_and_saves_nothing(page, ctx, run, qtbot):
    page.evaluate_button.click()
    assert page.cancel_button.isVisible()
    page.cancel_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    assert "cancelled" in page.info.text()
    assert not (run.path / "evaluation" / "val.json").exists()
    assert page.evaluate_button.isEnabled()


def test_report_is_written_as_html_or_pdf(page, ctx, run, qtbot, tmp_path, monkeypatch):
    from desktop.results.results_dialogs import HTML_FILTER, PDF_FILTER

    evaluated(qtbot, page, ctx)
    ev, _ = saved(run)
    answers = iter(
        [(str(tmp_path / "report.html"), HTML_FILTER), (str(tmp_path / "r"), PDF_FILTER)]
    )
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    page.report_button.click()  # heatmaps of the mistakes first (a worker), then the dialog
    qtbot.waitUntil(lambda: (tmp_path / "report.html").is_file(), timeout=WAIT)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "VALIDATION SPLIT" in text and run.run_id in text
    assert f"<th>Accuracy</th><td>{percent(ev.accuracy)} (95% CI " in text
    assert f"<th>Macro F1</th><td>{decimal(ev.macro_f1)} (95% CI " in text
    thumbnails = len(re.findall(r"<br>#\d+</td>", text))  # the failure gallery's pictures
    # matrix, ROC, PR, reliability, and the most confident mistakes
    assert text.count("data:image/png;base64,") == 4 + thumbnails
    if thumbnails:  # the mistakes are shown with their Grad-CAM heatmaps
        assert f"{thumbnails} of them with a Grad-CAM heatmap" in text
    for metrics in ev.per_class:
        assert f"<td>{metrics.name}</td>" in text
    qtbot.waitUntil(lambda: page.report_button.isEnabled(), timeout=WAIT)
    page.report_button.click()
    qtbot.waitUntil(lambda: (tmp_path / "r.pdf").is_file(), timeout=WAIT)
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Subtype /Image") >= 4


@pytest.mark.slow
def test_a_report_prepared_for_one_split_is_not_saved_over_another(
    page, ctx, run, qtbot, tmp_path, monkeypatch
):
    evaluated(qtbot, page, ctx)
    page.evaluate("test", allow_test=True)
    qtbot.waitUntil(lambda: not page.busy and "test" in page.results.splits, timeout=WAIT)
    page.split_combo.setCurrentIndex(page.split_combo.findData("val"))
    asked: list[str] = []
    said: list[str] = []
    ctx.signals.status_message.connect(said.append)

    def answer(*args, **kwargs):
        asked.append(args[2] if len(args) > 2 else "")
        return str(tmp_path / "report.html"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    page.report_button.click()  # the validation's sections and mistakes, read in a worker
    page.split_combo.setCurrentIndex(page.split_combo.findData("test"))  # meanwhile: the test
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    # Its validation sections under the test's numbers would be a report of neither.
    assert not asked and not (tmp_path / "report.html").exists()
    assert any("changed" in s and "Save report again" in s for s in said), said
    page.report_button.click()  # asked again on the split shown: saved
    qtbot.waitUntil(lambda: (tmp_path / "report.html").is_file(), timeout=WAIT)
    assert "TEST SPLIT" in (tmp_path / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_compare_trains_the_base_and_tells_mcnemar(page, ctx, run, qtbot):
    evaluated(qtbot, page, ctx)
    view = page.view
    panel = view.compare
    view.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT)
    assert "No base run yet" in panel.base_label.text()
    assert panel.train_base_button.isVisible() and panel.train_base_button.isEnabled()
    panel.train_base_button.click()
    qtbot.waitUntil(
        lambda: panel.base is not None and panel.base.comparison is not None, timeout=WAIT
    )
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT)
    comparison = panel.base.comparison
    assert comparison.run_a == run.run_id and comparison.run_b != run.run_id
    text = panel.base_label.text()
    assert percent(comparison.accuracy_a) in text and percent(comparison.accuracy_b) in text
    assert "McNemar" in text and not panel.train_base_button.isVisible()

    page.refresh_runs()  # the base is a run of the workspace now: pick it in "Compare with…"
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=WAIT)
    view.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT)
    assert panel.run_combo.count() == 1
    panel.compare_button.click()
    qtbot.waitUntil(lambda: panel.comparison is not None, timeout=WAIT)
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT)
    assert panel.comparison.n == comparison.n
    assert "McNemar" in panel.other_label.text()


def test_heatmaps_are_computed_in_a_worker_and_shown(page, ctx, run, qtbot):
    evaluated(qtbot, page, ctx)
    ev, _ = saved(run)
    view = page.view
    true = 0 if ev.confusion[0][0] else 1
    view.open_cell(true, true)
    gallery = view.gallery
    refs = gallery.shown_refs()
    assert refs
    gallery.toggle.setChecked(True)
    qtbot.waitUntil(lambda: all(gallery.explained(r) is not None for r in refs), timeout=WAIT)
    qtbot.waitUntil(lambda: not gallery.busy, timeout=WAIT)
    assert all(isinstance(gallery.explained(r), QPixmap) for r in refs), (
        gallery.explain_status.text()
    )
    index = gallery.model.index(0)
    assert gallery.model.data(index, Qt.ItemDataRole.DecorationRole) is gallery.explained(refs[0])
    gallery.toggle.setChecked(False)
    assert gallery.model.data(index, Qt.ItemDataRole.DecorationRole) is not gallery.explained(
        refs[0]
    )


def test_main_window_has_a_results_step_that_follows_the_runs_page(qtbot, tmp_path, settings, run):
    from desktop.main_window import MainWindow

    window = MainWindow(workspace=tmp_path / "ws", settings=settings)
    qtbot.addWidget(window)
    window.show()
    labels = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert labels[-2:] == ["Runs", "Results"]
    window.show_page("Runs")
    window.runs_page.run_list.topLevelItem(0).setSelected(True)
    window.show_page("Results")
    page = window.results_page
    qtbot.waitUntil(lambda: page.results is not None, timeout=WAIT)
    assert page.results.facts.path == run.path
    qtbot.waitUntil(lambda: not window.ctx.pool.busy, timeout=WAIT)
    window.ctx.pool.stop_all()


def test_export_opens_the_export_dialog_for_the_run(page, run, monkeypatch):
    from desktop.results.export_dialog import ExportDialog

    opened = []
    monkeypatch.setattr(ExportDialog, "exec", lambda dialog: opened.append(dialog.run_dir) or 0)
    page.export_button.click()
    assert opened == [run.path]


def test_another_positive_class_redraws_curves_and_counts(page, ctx, run, qtbot):
    from engine.evaluation import operating_point

    evaluated(qtbot, page, ctx)
    ev, preds = saved(run)
    view = page.view
    other = next(c for c in ev.classes if c != ev.positive)
    view.threshold.positive_combo.setCurrentIndex(view.threshold.positive_combo.findData(other))
    qtbot.waitUntil(lambda: view.evaluation.positive == other, timeout=WAIT)
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=WAIT)
    point = operating_point(preds, other, view.threshold.threshold)
    qtbot.waitUntil(lambda: view.point == point, timeout=5000)
    assert view.roc.legend_texts()[0].startswith(f"{other} (AUC")
    assert view.cards.text("sensitivity") == percent(point.sensitivity)
    assert view.roc.marker_position() == pytest.approx((1 - point.specificity, point.sensitivity))


def test_a_run_that_finishes_is_selected(page, ctx, run, trained_run, qtbot):
    second = ctx.workspace / "runs" / (trained_run.name + "-again")
    shutil.copytree(trained_run, second)
    ctx.signals.run_finished.emit(str(second))
    qtbot.waitUntil(lambda: page.results is not None and page.results.facts.path == second)
    assert page.run_combo.count() == 2


def test_the_first_window_loads_neither_torch_nor_pyqtgraph(tmp_path):
    """The Results step must not put the engine's evaluation code on the path to the window."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from PySide6.QtCore import QSettings\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from desktop.main_window import MainWindow\n"
        f"w = MainWindow(workspace={str(tmp_path / 'ws')!r}, "
        f"settings=QSettings({str(tmp_path / 's.ini')!r}, QSettings.Format.IniFormat))\n"
        "w.show(); app.processEvents()\n"
        "heavy = ('torch', 'pyqtgraph', 'engine.evaluation')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
