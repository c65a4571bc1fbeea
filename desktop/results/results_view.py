"""What the Results page shows of one evaluated split: numbers, curves, matrix, examples."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.results.compare_view import ComparePanel
from desktop.results.confusion_matrix import ConfusionMatrixWidget
from desktop.results.curves import PrPlot, ReliabilityPlot, RocPlot, operating_xy
from desktop.results.evaluation_jobs import (
    ReportMaterial,
    RunFacts,
    SplitResults,
    reevaluate_job,
)
from desktop.results.metrics_view import MetricCards, PerClassTable
from desktop.results.mistakes_gallery import MistakesGallery
from desktop.results.subgroup_table import SubgroupPanel
from desktop.results.text_mistakes import Example
from desktop.results.threshold_view import ThresholdWidget
from desktop.results.try_it import TryItWidget

if TYPE_CHECKING:
    from desktop.results.results_report import Report
    from engine import Evaluation, OperatingPoint, SplitPredictions, Task

SPLIT_WORDS = {"val": "validation", "test": "test"}
POINT_MS = 40
TABS = ("Overview", "Mistakes", "Compare", "Try it")


class ResultsView(QWidget):
    """Headline cards, the threshold (two classes), and tabs: Overview (confusion matrix,
    ROC, precision-recall, reliability, per-class table), Mistakes, Compare, Try it, Subgroups."""

    evaluate_requested = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsView")
        self.ctx = ctx
        self.facts: RunFacts | None = None
        self.evaluation: Evaluation | None = None
        self.predictions: SplitPredictions | None = None
        self.point: OperatingPoint | None = None
        self._others: list[tuple[str, Path]] = []
        self._reevaluating: Task | None = None  # the running job
        self._point_timer = QTimer(self)
        self._point_timer.setSingleShot(True)
        # operating_point takes ~5-15 ms for 10k examples: a dragged slider updates at most
        # every POINT_MS, so the GUI thread stays free between updates.
        self._point_timer.setInterval(POINT_MS)
        self._point_timer.timeout.connect(self.update_operating_point)
        self._build()

    def _build(self) -> None:
        self.cards = MetricCards()
        self.threshold = ThresholdWidget()
        self.threshold.threshold_changed.connect(self._on_threshold_changed)
        self.threshold.positive_changed.connect(self._on_threshold_positive_changed)
        self.matrix = ConfusionMatrixWidget()
        self.matrix.cell_activated.connect(self._on_matrix_cell_activated)
        self.roc = RocPlot()
        self.pr = PrPlot()
        self.reliability = ReliabilityPlot()
        self.table = PerClassTable()
        right = QWidget()
        grid = QGridLayout(right)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.roc, 0, 0)
        grid.addWidget(self.pr, 0, 1)
        grid.addWidget(self.reliability, 1, 0)
        grid.addWidget(self.table, 1, 1)
        matrix_box = QWidget()
        matrix_layout = QVBoxLayout(matrix_box)
        matrix_layout.setContentsMargins(0, 0, 0, 0)
        matrix_layout.addWidget(self.matrix, 1)
        hint = QLabel("<small>Click a cell to see its examples.</small>")
        matrix_layout.addWidget(hint)
        self.overview = QSplitter(Qt.Orientation.Horizontal)
        self.overview.setObjectName("overview")
        self.overview.addWidget(matrix_box)
        self.overview.addWidget(right)
        self.overview.setStretchFactor(0, 4)
        self.overview.setStretchFactor(1, 6)
        self.overview.setSizes([440, 660])
        self.overview_stack = QStackedWidget()
        self.overview_stack.addWidget(self._build_prompt())
        self.overview_stack.addWidget(self.overview)

        self.gallery = MistakesGallery(self.ctx)
        self.compare = ComparePanel(self.ctx)
        self.try_it = TryItWidget(self.ctx)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("resultsTabs")
        self.tabs.setDocumentMode(True)
        for widget, title in zip(
            (self.overview_stack, self.gallery, self.compare, self.try_it), TABS, strict=True
        ):
            self.tabs.addTab(widget, title)
        self.subgroups = SubgroupPanel(self.ctx)
        self.tabs.addTab(self.subgroups, "Subgroups")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.cards)
        self.warning_label = QLabel()
        self.warning_label.setObjectName("evaluationWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setTextFormat(Qt.TextFormat.PlainText)
        self.warning_label.hide()
        layout.addWidget(self.warning_label)
        layout.addWidget(self.threshold)
        layout.addWidget(self.tabs, 1)
        self.threshold.hide()

    def _build_prompt(self) -> QWidget:
        box = QWidget()
        self.prompt = QLabel()
        self.prompt.setObjectName("evaluatePrompt")
        self.prompt.setWordWrap(True)
        self.prompt.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.prompt_button = QPushButton("Evaluate")
        self.prompt_button.setObjectName("promptEvaluateButton")
        self.prompt_button.setToolTip("Predict the validation split and measure the run")
        self.prompt_button.clicked.connect(self.evaluate_requested)
        layout = QVBoxLayout(box)
        layout.addStretch(1)
        layout.addWidget(self.prompt)
        layout.addWidget(self.prompt_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        return box

    # -- public ---------------------------------------------------------------------------------

    def set_run(self, facts: RunFacts, others: list[tuple[str, Path]]) -> None:
        """A new run: Try it and Compare follow it at once, even before it is evaluated."""
        changed = self.facts is None or self.facts.path != facts.path
        self.facts = facts
        self._others = others
        if changed:
            self.gallery.set_run(facts.path, facts.modality)
            self.try_it.set_run(facts.path)

    def show_unevaluated(self, facts: RunFacts, text: str) -> None:
        """A run without results: ``text`` and an Evaluate button; Compare and Try it work."""
        self.set_run(facts, self._others)
        self.evaluation = self.predictions = self.point = None
        self.cards.hide()
        self.warning_label.hide()
        self.threshold.hide()
        self.prompt.setText(text)
        self.overview_stack.setCurrentIndex(0)
        self.gallery.show_examples([], None, "Evaluate the run to see the examples it gets wrong.")
        self.compare.set_run(facts, "val", self._others, allow_test=False)
        self.subgroups.clear()
        if self.tabs.currentWidget() is self.gallery:
            self.tabs.setCurrentWidget(self.overview_stack)

    def show_results(self, facts: RunFacts, results: SplitResults) -> None:
        """Show a saved (or fresh) evaluation of one split of ``facts``' run."""
        self.set_run(facts, self._others)
        self.cards.show()
        self.overview_stack.setCurrentWidget(self.overview)
        self.evaluation = results.evaluation
        self.predictions = results.predictions
        split = results.evaluation.split
        self.compare.set_run(facts, split, self._others, allow_test=split == "test")
        self._show_evaluation(results.evaluation)
        self.subgroups.set_evaluation(facts.path, results.evaluation)
        self.gallery.show_examples(
            [], None, "Click a cell of the confusion matrix to see its examples here."
        )
        ev = results.evaluation
        if ev.positive is not None and ev.operating is not None:
            self.threshold.set_classes(ev.classes, ev.positive)
            self.threshold.blockSignals(True)
            self.threshold.set_threshold(ev.operating.threshold)
            self.threshold.blockSignals(False)
            self.threshold.show()
            self.update_operating_point()
        else:
            self.threshold.hide()
            self.point = None
            self.roc.set_marker(None, None)

    def _show_evaluation(self, ev: Evaluation) -> None:
        split = SPLIT_WORDS.get(ev.split, ev.split)
        self.cards.set_evaluation(ev)
        self._show_warnings(ev.warnings)
        self.table.set_metrics(
            ev.per_class, ev.macro_f1, ev.intervals.per_class if ev.intervals else ()
        )
        self.matrix.set_matrix(
            ev.classes, ev.confusion, f"Confusion matrix · {ev.n} {split} examples"
        )
        self.roc.set_curves(ev.roc, ev.classes, "AUC")
        self.pr.set_curves(ev.pr, ev.classes, "AP")
        self.reliability.set_calibration(ev.calibration)

    def _show_warnings(self, warnings: tuple[str, ...]) -> None:
        from desktop.widgets.palette_colors import level_color

        palette = self.warning_label.palette()
        palette.setColor(self.warning_label.foregroundRole(), level_color("warning", palette))
        self.warning_label.setPalette(palette)
        self.warning_label.setText(" ".join(warnings))
        self.warning_label.setVisible(bool(warnings))

    # -- threshold ------------------------------------------------------------------------------

    def update_operating_point(self) -> None:
        """Recompute the operating point at the slider's threshold (a few ms for 10k examples)."""
        ev, preds = self.evaluation, self.predictions
        if ev is None or ev.positive is None:
            return
        positive = self.threshold.positive or ev.positive
        if preds is None:
            point = ev.operating
        else:
            from engine import operating_point

            point = operating_point(preds, positive, self.threshold.threshold)
        if point is None:
            return
        self.point = point
        self.cards.set_operating_point(point)
        self.threshold.set_point(point)
        if positive == ev.positive:
            fpr, tpr = operating_xy(point)
            self.roc.set_marker(fpr, tpr, list(ev.classes).index(positive))

    def _on_threshold_changed(self, _value: float) -> None:
        if not self._point_timer.isActive():
            self._point_timer.start()

    def _on_threshold_positive_changed(self, positive: str) -> None:
        if self.predictions is None or self._reevaluating is not None:
            return
        self._reevaluating = self.ctx.pool.submit(
            reevaluate_job(self.predictions, positive, self.facts.path if self.facts else None),
            self._on_reevaluate_succeeded,
            on_error=self._on_reevaluate_failed,
            on_done=self._on_reevaluate_done,
        )
        self._point_timer.start()

    def _on_reevaluate_succeeded(self, evaluation: Evaluation) -> None:
        if self.evaluation is not None and evaluation.run_id == self.evaluation.run_id:
            self.evaluation = evaluation
            self._show_evaluation(evaluation)
            self.update_operating_point()

    def _on_reevaluate_failed(self, sentence: str) -> None:
        self.ctx.signals.status_message.emit(sentence)

    def _on_reevaluate_done(self) -> None:
        self._reevaluating = None
        ev = self.evaluation
        if ev is not None and ev.positive != self.threshold.positive:
            self._on_threshold_positive_changed(self.threshold.positive)  # changed meanwhile

    # -- mistakes -------------------------------------------------------------------------------

    def _on_matrix_cell_activated(self, true: int, predicted: int) -> None:
        self.open_cell(true, predicted)

    def open_cell(self, true: int, predicted: int) -> None:
        """Show the examples of one confusion-matrix cell in the Mistakes tab."""
        ev, preds = self.evaluation, self.predictions
        if ev is None:
            return
        self.tabs.setCurrentWidget(self.gallery)
        truth, guess = html.escape(ev.classes[true]), html.escape(ev.classes[predicted])
        if preds is None:
            self.gallery.show_examples(
                [],
                (true, predicted),
                "The predictions behind this evaluation are missing; "
                "Evaluate again to see its examples.",
            )
            return
        from engine import examples_in_cell

        indices = examples_in_cell(preds, true, predicted)
        probs = preds.probs
        examples = [
            Example(
                i,
                preds.refs[i],
                ev.classes[true],
                ev.classes[predicted],
                float(probs[i, predicted]),
            )
            for i in indices
        ]
        count = f"{len(examples)} example{'s' if len(examples) != 1 else ''}"
        if true == predicted:
            header = f"True and predicted <b>{truth}</b>: {count} the model got right"
        else:
            header = f"True <b>{truth}</b>, predicted <b>{guess}</b>: {count}"
        order = ", most confident first." if examples else "."
        self.gallery.show_examples(examples, (true, predicted), header + order)

    # -- report ---------------------------------------------------------------------------------

    def report(self, facts: RunFacts, material: ReportMaterial | None = None) -> Report:
        """The shown results as a report: numbers at the chosen threshold, the matrix and the
        plots as images, and the comparisons made in the Compare tab."""
        from desktop.results.results_report import build_report

        if self.evaluation is None:
            raise ValueError("There are no results to report; evaluate a run first.")
        widgets = {
            "confusion": self.matrix,
            "roc": self.roc,
            "pr": self.pr,
            "reliability": self.reliability,
        }
        return build_report(
            facts,
            self.evaluation,
            point=self.point,
            comparison_html=self.compare.summary_html(),
            images={name: grab_image(widget) for name, widget in widgets.items()},
            material=material,
        )

    @property
    def busy(self) -> bool:
        return (
            self._reevaluating is not None
            or self.gallery.busy
            or self.compare.busy
            or self.subgroups.busy
        )


def grab_image(widget: QWidget, size: tuple[int, int] = (520, 420)) -> QImage:
    """``widget`` drawn into an image; one never shown yet is laid out at ``size`` first."""
    if not widget.isVisible() and (widget.width() < 100 or widget.height() < 100):
        widget.resize(*size)
    return widget.grab().toImage()
