"""Results page: evaluate a trained run, see where it goes wrong, compare it, report it.

Everything heavy runs in workers (desktop/results/evaluation_jobs.py); pyqtgraph and the engine's
evaluation code are imported the first time a result is shown, not when the window opens.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
)

from desktop.context import AppContext
from desktop.modalities import views_of
from desktop.page import Page
from desktop.results.evaluation_jobs import (
    ReportMaterial,
    RunResults,
    SplitResults,
    evaluate_job,
    load_results_job,
    report_material_job,
)
from desktop.results.results_dialogs import confirm_test_split, save_report_as
from desktop.results.results_status import (
    SPLIT_WORDS,
    SplitBadge,
    SplitSelector,
    describe_evaluation,
    describe_run,
)
from desktop.results.run_picker import RunPicker

if TYPE_CHECKING:
    from desktop.results.results_view import ResultsView
    from engine import Progress, Task


class ResultsPage(Page):
    """Pick a run; evaluate it (validation, or once at the end the test split); read its
    numbers, curves and mistakes; compare it with its base or another run; save a report."""

    title = "Results"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.results: RunResults | None = None
        self.split = "val"
        self._view: ResultsView | None = None
        self._loader_key = object()  # the pool's key of this page's run loading
        self._evaluating: Task | None = None
        self._report_material: ReportMaterial | None = None  # read in a worker for the report
        self._report_of: tuple[str, object] | None = None  # (split, evaluation) it was read for
        self._report_info = ""  # the status line shown before they were asked for
        self._wanted: Path | None = None
        self._evaluating_run: Path | None = None
        self._build_layout()
        ctx.signals.run_finished.connect(self._on_signals_run_finished)

    def _build_layout(self) -> None:
        heading = QLabel(
            "<h2>Results</h2>How well a trained run does on examples it never trained on, "
            "and where it goes wrong."
        )
        heading.setWordWrap(True)
        self.empty = QLabel()
        self.empty.setObjectName("resultsEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.body = QStackedWidget()
        self.body.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(self._build_actions())
        layout.addLayout(self._build_status())
        layout.addWidget(self.body, 1)
        self._set_busy(False)
        self._show_empty()

    def _build_actions(self) -> QHBoxLayout:
        self.run_combo = RunPicker(self.ctx.workspace)
        self.run_combo.run_changed.connect(self._on_run_combo_run_changed)
        run_label = QLabel("&Run:")
        run_label.setBuddy(self.run_combo)
        self.evaluate_button = _button(
            "evaluateButton",
            "Evaluate",
            "Predict the validation split and measure the run",
            self._on_evaluate_button_clicked,
        )
        self.test_button = _button(
            "testButton",
            "Evaluate on the locked test split…",
            "Once, at the end: the honest estimate on examples kept out of every choice",
            self._on_test_button_clicked,
        )
        self.export_button = _button(
            "exportButton",
            "Export…",
            "Save the model for use elsewhere",
            self._on_export_button_clicked,
        )
        self.report_button = _button(
            "reportButton",
            "Save report…",
            "Save these results as an HTML or PDF report",
            self._on_report_button_clicked,
        )
        top = QHBoxLayout()
        top.addWidget(run_label)
        top.addWidget(self.run_combo, 1)
        top.addSpacing(12)
        top.addWidget(self.export_button)
        top.addWidget(self.report_button)
        return top

    def _build_status(self) -> QHBoxLayout:
        self.badge = SplitBadge()
        self.info = QLabel()
        self.info.setObjectName("resultsInfo")
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.split_combo = SplitSelector()
        self.split_combo.currentIndexChanged.connect(self._on_split_combo_current_index_changed)
        self.progress = QProgressBar()
        self.progress.setObjectName("evaluateProgress")
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%v / %m")
        self.cancel_button = _button(
            "cancelButton", "Cancel", "Stop evaluating", self._on_cancel_button_clicked
        )
        status = QHBoxLayout()
        status.addWidget(self.evaluate_button)
        status.addWidget(self.test_button)
        status.addSpacing(12)
        status.addWidget(self.badge)
        status.addWidget(self.info, 1)
        status.addWidget(self.split_combo)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_button)
        return status

    # -- public ---------------------------------------------------------------------------------

    @property
    def view(self) -> ResultsView:
        """The results widgets (built on first use: pyqtgraph is not needed at startup)."""
        return self._ensure_view()

    def _ensure_view(self) -> ResultsView:
        if self._view is None:
            from desktop.results.results_view import ResultsView

            self._view = ResultsView(self.ctx)
            self._view.compare.base_trained.connect(self._on_compare_base_trained)
            self._view.evaluate_requested.connect(self._on_evaluate_button_clicked)
            # Scrolls rather than widening the window: the cards and plots want ~1000 px.
            self._scroll = QScrollArea()
            self._scroll.setObjectName("resultsScroll")
            self._scroll.setWidgetResizable(True)
            self._scroll.setFrameShape(QFrame.Shape.NoFrame)
            self._scroll.setWidget(self._view)
            self.body.addWidget(self._scroll)
        return self._view

    def _show_view(self) -> QScrollArea:
        self._ensure_view()
        return self._scroll

    @property
    def busy(self) -> bool:
        return self._evaluating is not None

    def on_shown(self) -> None:
        self.refresh_runs()

    def follow_run(self, path: str | Path | None) -> None:
        """Show ``path`` next time the page is shown (a run picked on the Runs page)."""
        if path:
            self._wanted = Path(path)
            if self.isVisible():
                self.refresh_runs()

    def refresh_runs(self) -> None:
        """Read the run list again; select the wanted run, else keep the current one."""
        wanted, self._wanted = self._wanted, None
        changed = self.run_combo.refresh(wanted)
        if not changed and self.results is None:
            self._on_run_combo_run_changed(str(self.run_combo.path or ""))
        if self._view is not None:
            self._view.compare.set_others(self.run_combo.runs())
        self._update_buttons()

    def select_run(self, path: str | Path) -> None:
        """Pick ``path`` in the run list (read again first) and load it."""
        self._wanted = Path(path)
        self.refresh_runs()

    # -- loading --------------------------------------------------------------------------------

    def _on_run_combo_run_changed(self, path: str) -> None:
        self.ctx.pool.drop(self._loader_key)  # the user picked another run meanwhile
        self.results = None
        self._update_buttons()
        if not path:
            self._show_empty()
            return
        self.info.setText("Reading the run…")
        self.ctx.pool.submit(
            load_results_job(Path(path)),
            self._on_loader_succeeded,
            key=self._loader_key,
            on_error=self._on_loader_failed,
        )

    def _on_loader_succeeded(self, results: RunResults) -> None:
        self.results = results
        if self.split not in results.splits:
            self.split = "test" if set(results.splits) == {"test"} else "val"
        self._show()

    def _on_loader_failed(self, sentence: str) -> None:
        self.info.setText(html.escape(sentence))
        self._show_empty(f"Could not read the run: {sentence}")

    # -- showing --------------------------------------------------------------------------------

    def _show(self) -> None:
        results = self.results
        self._update_buttons()
        if results is None:
            self._show_empty()
            return
        facts = results.facts
        self.view.set_run(facts, self.run_combo.runs())
        self.split_combo.show_choice(self.split, set(results.splits))
        shown = results.splits.get(self.split)
        if shown is None:
            self.badge.hide()
            self.info.setText(describe_run(facts))
            self.view.show_unevaluated(
                facts,
                f"<b>{html.escape(facts.label)}</b> has not been evaluated yet.<br><br>"
                f"Evaluate predicts its {facts.val_size} validation examples and shows accuracy, "
                "the confusion matrix, the curves and the examples it gets wrong.",
            )
            self.body.setCurrentWidget(self._show_view())
            return
        self.badge.set_split(self.split)
        self.info.setText(describe_evaluation(facts, shown))
        self.view.show_results(facts, shown)
        self.body.setCurrentWidget(self._show_view())

    def _show_empty(self, text: str = "") -> None:
        self.badge.hide()
        if not text:
            text = (
                "No trained run yet. Train one on the Train page; its results appear here."
                if not self.run_combo.count()
                else ""
            )
        self.empty.setText(text)
        self.body.setCurrentWidget(self.empty)

    def _on_split_combo_current_index_changed(self, _index: int) -> None:
        self.split = self.split_combo.split
        self._show()

    # -- evaluating -----------------------------------------------------------------------------

    def _on_evaluate_button_clicked(self) -> None:
        self.evaluate("val")

    def _on_test_button_clicked(self) -> None:
        if self.results is None:
            return
        facts = self.results.facts
        if confirm_test_split(self, facts.label, facts.test_size):
            self.evaluate("test", allow_test=True)

    def evaluate(self, split: str = "val", *, allow_test: bool = False) -> None:
        """Predict ``split`` of the selected run in a worker, then show it."""
        if self.results is None or self._evaluating is not None:
            return
        facts = self.results.facts
        self._evaluating = self.ctx.pool.submit(
            evaluate_job(facts.path, split, allow_test=allow_test and split == "test"),
            self._on_evaluate_succeeded,
            on_error=self._on_evaluate_failed,
            on_progress=self._on_evaluate_progress,
            on_cancelled=self._on_evaluate_cancelled,
            on_done=self._on_evaluate_done,
        )
        self._evaluating_run = facts.path
        self.progress.setRange(0, 0)
        words = SPLIT_WORDS.get(split, split)
        size = facts.test_size if split == "test" else facts.val_size
        self.info.setText(f"Predicting the {size} {words} examples of {html.escape(facts.label)}…")
        self._set_busy(True)

    def _on_evaluate_progress(self, progress: Progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)

    def _on_evaluate_cancelled(self) -> None:
        self.info.setText("Evaluation cancelled; nothing was saved.")

    def _on_evaluate_succeeded(self, result: SplitResults) -> None:
        if self.results is None or self.results.facts.path != self._evaluating_run:
            return
        self.results.splits[result.evaluation.split] = result
        self.split = result.evaluation.split
        self._show()
        accuracy = 100 * result.evaluation.accuracy
        self.ctx.signals.status_message.emit(
            f"{self.results.facts.label}: {accuracy:.1f}% accuracy on "
            f"{SPLIT_WORDS.get(self.split, self.split)} — saved in the run folder."
        )

    def _on_evaluate_failed(self, sentence: str) -> None:
        self.info.setText(f"<span style='color:#c62828'>{html.escape(sentence)}</span>")

    def _on_evaluate_done(self) -> None:
        self._evaluating = None
        self._set_busy(False)

    def _on_cancel_button_clicked(self) -> None:
        if self._evaluating is not None:
            self._evaluating.cancel()
            self.cancel_button.setEnabled(False)

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.run_combo.setEnabled(not busy)
        self._update_buttons()

    def _update_buttons(self) -> None:
        results = self.results
        idle = self._evaluating is None
        self.evaluate_button.setEnabled(idle and results is not None)
        if self._view is not None:
            self._view.prompt_button.setEnabled(idle and results is not None)
        self.evaluate_button.setText(
            "Evaluate again" if results is not None and "val" in results.splits else "Evaluate"
        )
        has_test = results is not None and results.facts.test_size > 0
        self.test_button.setEnabled(idle and has_test)
        self.test_button.setToolTip(
            "Once, at the end: the honest estimate on examples kept out of every choice."
            if has_test or results is None
            else "This run has no test split. Set a test share on the Data page before "
            "training to keep one locked."
        )
        self.export_button.setEnabled(results is not None)
        self.report_button.setEnabled(idle and results is not None and self.split in results.splits)

    # -- export and report ----------------------------------------------------------------------

    def _on_export_button_clicked(self) -> None:
        from desktop.results.export_dialog import ExportDialog

        if self.results is None:
            return
        dialog = ExportDialog(self.results.facts.path, parent=self, pool=self.ctx.pool)
        dialog.exec()
        dialog.deleteLater()

    def _on_report_button_clicked(self) -> None:
        """Read what the report shows in a worker (the reviewer's sections, heatmaps or
        thumbnails of the most confident mistakes), then ask where to save it."""
        if self.results is None or self._evaluating is not None:
            return
        if self.split not in self.results.splits:
            return
        facts = self.results.facts
        self._report_material = None
        self._report_of = self._reported()
        self._report_info = self.info.text()
        self._evaluating = self.ctx.pool.submit(
            report_material_job(
                Path(facts.path),
                self.results.splits[self.split].evaluation,
                REPORT_HEATMAP,
                heatmaps=views_of(facts.modality).modality.heatmaps,
            ),
            self._on_report_material_made,
            on_error=self._on_report_material_failed,
            on_done=self._on_report_material_done,
        )
        self.info.setText("Preparing the report (its sections, pictures of the mistakes)…")
        self.progress.setRange(0, 0)
        self._set_busy(True)

    def _on_report_material_made(self, material: ReportMaterial) -> None:
        self._report_material = material

    def _on_report_material_failed(self, sentence: str) -> None:
        self._report_material = None
        self.ctx.signals.status_message.emit(f"The report could not be prepared: {sentence}")

    def _on_report_material_done(self) -> None:
        self._evaluating = None
        self.info.setText(self._report_info)
        self._set_busy(False)
        if self._report_material is None:
            return
        now, then = self._reported(), self._report_of
        if now is None or then is None or now[0] != then[0] or now[1] is not then[1]:
            # another split or run shown meanwhile
            self._report_material = None
            self.ctx.signals.status_message.emit(
                "The shown results changed while the report was prepared; click Save report "
                "again to report them."
            )
            return
        self._ask_where_to_save()

    def _reported(self) -> tuple[str, object] | None:
        """The split and the evaluation a report would show now (compared by identity: another
        run's, or the same split evaluated again, is another)."""
        if self.results is None or self.split not in self.results.splits:
            return None
        return self.split, self.results.splits[self.split].evaluation

    def _ask_where_to_save(self) -> None:
        if self.results is None:
            return
        name = f"{self.results.facts.run_id}-{self.split}-report.html"
        saved = save_report_as(self, self.ctx.settings, name, self.save_report)
        if saved is not None:
            self.ctx.signals.status_message.emit(f"Report saved in {saved}.")

    def save_report(self, path: Path) -> Path:
        """Write the shown results as HTML, or PDF when ``path`` ends in .pdf (with the heatmaps
        made for it, if any)."""
        if self.results is None or self.split not in self.results.splits or self._view is None:
            raise ValueError("There are no results to report; evaluate a run first.")
        return self._view.report(self.results.facts, self._report_material).save(path)

    # -- other pages ----------------------------------------------------------------------------

    def _on_signals_run_finished(self, run_dir: str) -> None:
        self._wanted = Path(run_dir)
        if self.isVisible() and self._evaluating is None:
            self.refresh_runs()

    def _on_compare_base_trained(self, _base_dir: str) -> None:
        if self._evaluating is None:
            self.refresh_runs()  # the base is a run of the workspace now


#: Size of the heatmap overlays in a report, in pixels (the thumbnails' size).
REPORT_HEATMAP = 128


def _button(name: str, text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button
