"""This run beside its base linear probe, and beside any other run, with McNemar's test."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.results.evaluation_jobs import (
    BaseResult,
    RunFacts,
    base_job,
    compare_job,
    train_base_job,
)
from desktop.results.metrics_view import percent

if TYPE_CHECKING:
    from engine import Comparison, Progress, Task

SPLIT_WORDS = {"val": "validation", "test": "test"}


def comparison_html(comparison: Comparison, name_a: str, name_b: str) -> str:
    """Both accuracies, the 2×2 agreement counts and McNemar's sentence, as rich text."""
    split = SPLIT_WORDS.get(comparison.split, comparison.split)
    a, b = html.escape(name_a), html.escape(name_b)
    return (
        f"<p><b>{a}</b>: {percent(comparison.accuracy_a)} &nbsp;&nbsp; "
        f"<b>{b}</b>: {percent(comparison.accuracy_b)} &nbsp; "
        f"<small>(on the {comparison.n} {split} examples both runs predicted)</small></p>"
        "<table cellspacing='0' cellpadding='3'>"
        f"<tr><td>Both right</td><td align='right'><b>{comparison.both_right}</b></td>"
        f"<td width='24'></td><td>Only {a} right</td>"
        f"<td align='right'><b>{comparison.only_a_right}</b></td></tr>"
        f"<tr><td>Both wrong</td><td align='right'><b>{comparison.both_wrong}</b></td>"
        f"<td></td><td>Only {b} right</td>"
        f"<td align='right'><b>{comparison.only_b_right}</b></td></tr></table>"
        f"<p>{html.escape(_capitalized(comparison.sentence))}<br><small>McNemar's test "
        f"({comparison.method}): statistic {comparison.statistic:.3g}, "
        f"p = {comparison.p_value:.3g}.</small></p>"
    )


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


class ComparePanel(QWidget):
    """Against the base (found, or trained on request) and against a run the user picks."""

    base_trained = Signal(str)  # the new base run's folder

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("comparePanel")
        self.ctx = ctx
        self.facts: RunFacts | None = None
        self.split = "val"
        self.allow_test = False
        self.base: BaseResult | None = None
        self.comparison: Comparison | None = None  # with the run picked in the combo
        self._looked_up = False
        self._relook = False
        self._workers: dict[str, Task] = {}  # the running jobs, by key
        self._build()

    def _build(self) -> None:
        base_box = QGroupBox("Against its base")
        base_box.setToolTip(
            "The base is a linear probe: only a new last layer trained on the same backbone, "
            "data, split and seed. Fine-tuning should beat it; if it does not, keep the simpler "
            "model."
        )
        self.base_label = QLabel("Select a run.")
        self.base_label.setObjectName("baseResult")
        self.base_label.setWordWrap(True)
        self.train_base_button = QPushButton("Train base linear probe")
        self.train_base_button.setObjectName("trainBaseButton")
        self.train_base_button.setToolTip(
            "Train a linear probe on the same backbone, data, split and seed, then compare."
        )
        self.train_base_button.clicked.connect(self._on_train_base_button_clicked)
        self.base_progress = QProgressBar()
        self.base_progress.setObjectName("baseProgress")
        self.base_cancel = QPushButton("Cancel")
        self.base_cancel.setObjectName("baseCancelButton")
        self.base_cancel.clicked.connect(self._on_base_cancel_clicked)
        row = QHBoxLayout()
        row.addWidget(self.train_base_button)
        row.addWidget(self.base_progress, 1)
        row.addWidget(self.base_cancel)
        base_layout = QVBoxLayout(base_box)
        base_layout.addWidget(self.base_label)
        base_layout.addLayout(row)

        other_box = QGroupBox("Compare with another run")
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("compareCombo")
        self.run_combo.setAccessibleName("Run to compare with")
        self.run_combo.setMinimumContentsLength(28)
        self.run_combo.setPlaceholderText("No other trained run in this workspace yet")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setObjectName("compareButton")
        self.compare_button.clicked.connect(self._on_compare_button_clicked)
        self.other_progress = QProgressBar()
        self.other_progress.setObjectName("compareProgress")
        self.other_cancel = QPushButton("Cancel")
        self.other_cancel.clicked.connect(self._on_other_cancel_clicked)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Compare with…"))
        pick.addWidget(self.run_combo, 1)
        pick.addWidget(self.compare_button)
        pick.addWidget(self.other_progress)
        pick.addWidget(self.other_cancel)
        self.other_label = QLabel(
            "Runs are compared on the examples both predicted (matched by content), so pick one "
            "trained on the same data."
        )
        self.other_label.setObjectName("compareResult")
        self.other_label.setWordWrap(True)
        other_layout = QVBoxLayout(other_box)
        other_layout.addLayout(pick)
        other_layout.addWidget(self.other_label)

        layout = QVBoxLayout(self)
        layout.addWidget(base_box)
        layout.addWidget(other_box)
        layout.addStretch(1)
        self._update_buttons()

    # -- public ---------------------------------------------------------------------------------

    def set_run(
        self, facts: RunFacts, split: str, others: list[tuple[str, Path]], allow_test: bool
    ) -> None:
        """Compare ``facts``' run on ``split``; ``others`` are (label, folder) of other runs."""
        for task in self._workers.values():
            task.cancel()
        self.facts, self.split, self.allow_test = facts, split, allow_test
        self.base = None
        self.comparison = None
        self._looked_up = False
        self.set_others(others)
        self.base_label.setText("Looking for the base run…")
        self.other_label.setText(
            "Runs are compared on the examples both predicted (matched by content), so pick one "
            "trained on the same data."
        )
        self._update_buttons()
        if self.isVisible():
            self.look_up_base()

    def set_others(self, others: list[tuple[str, Path]]) -> None:
        """The runs offered in "Compare with…" (this run left out), keeping the choice."""
        current = self.run_combo.currentData()
        self.run_combo.clear()
        for label, path in others:
            if self.facts is None or Path(path) != self.facts.path:
                self.run_combo.addItem(label, str(path))
        self.run_combo.setCurrentIndex(max(0, self.run_combo.findData(current)))
        self._update_buttons()

    def look_up_base(self) -> None:
        """Find the base run and compare with it (predicting what is not saved yet)."""
        if self.facts is None or "base" in self._workers or self._looked_up:
            return
        self._looked_up = True
        self.base_label.setText("Looking for the base run…")
        job = base_job(self.ctx.workspace, self.facts.path, self.split, allow_test=self.allow_test)
        self._start("base", job)

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.look_up_base()

    # -- workers --------------------------------------------------------------------------------

    def _start(self, key: str, job: Any, *, interruptible: bool = True) -> None:
        """Run ``job`` for ``key`` ("base" or "other") in the pool; an answer about a run that
        is no longer shown is dropped. Cancelling a base lookup or a comparison says so; a
        stopped base training fails with its sentence, as any failure."""
        facts = self.facts
        progress = self.base_progress if key == "base" else self.other_progress

        def on_result(result: Any) -> None:
            if facts is not self.facts:
                return  # an answer about a run that is no longer shown
            if key == "other":
                self._on_compare_succeeded(result)
            elif isinstance(result, Path):
                self._on_base_trained(result)
            else:
                self._on_base_found(result)

        def on_cancelled() -> None:
            if facts is self.facts:
                self._on_cancelled(key)

        self._workers[key] = self.ctx.pool.submit(
            job,
            on_result,
            on_error=self._on_base_worker_failed if key == "base" else self._on_other_worker_failed,
            on_progress=lambda p: _show_progress(progress, p),
            on_cancelled=on_cancelled if interruptible else None,
            on_done=self._on_base_worker_done if key == "base" else self._on_other_worker_done,
            interruptible=interruptible,
        )
        progress.setRange(0, 0)
        self._update_buttons()

    def _on_base_worker_failed(self, sentence: str) -> None:
        self.base_label.setText(html.escape(sentence))

    def _on_other_worker_failed(self, sentence: str) -> None:
        self.other_label.setText(html.escape(sentence))

    def _on_base_worker_done(self) -> None:
        self._workers.pop("base", None)
        self._update_buttons()
        if self._relook:
            self._relook = False
            self.look_up_base()

    def _on_other_worker_done(self) -> None:
        self._workers.pop("other", None)
        self._update_buttons()

    def _on_base_cancel_clicked(self) -> None:
        self._cancel("base")

    def _on_other_cancel_clicked(self) -> None:
        self._cancel("other")

    def _cancel(self, key: str) -> None:
        task = self._workers.get(key)
        if task is not None:
            task.cancel()

    def _update_buttons(self) -> None:
        has_run = self.facts is not None
        base_busy = "base" in self._workers
        missing = has_run and self._looked_up and self.base is not None and self.base.base is None
        self.train_base_button.setVisible(bool(missing) or (base_busy and self.base is not None))
        self.train_base_button.setEnabled(bool(missing) and not base_busy)
        self.base_progress.setVisible(base_busy)
        self.base_cancel.setVisible(base_busy)
        other_busy = "other" in self._workers
        self.compare_button.setEnabled(has_run and self.run_combo.count() > 0 and not other_busy)
        self.other_progress.setVisible(other_busy)
        self.other_cancel.setVisible(other_busy)

    # -- results --------------------------------------------------------------------------------

    def _on_cancelled(self, key: str) -> None:
        if key == "base":
            self._looked_up = False
            self.base_label.setText("Comparison with the base cancelled.")
        else:
            self.other_label.setText("Comparison cancelled.")

    def _on_base_found(self, result: BaseResult) -> None:
        self.base = result
        if result.is_self:
            self.base_label.setText(
                "This run is a linear probe: it is its own base. Compare a fine-tuned run of the "
                "same backbone and data with it."
            )
        elif result.base is None:
            self.base_label.setText(
                "No base run yet. A linear probe on the same backbone, data, split and seed shows "
                "whether fine-tuning was worth it."
            )
        elif result.comparison is not None:
            self.base_label.setText(comparison_html(result.comparison, "this run", "the base"))
        self._update_buttons()

    def _on_train_base_button_clicked(self) -> None:
        if self.facts is None:
            return
        self.base_label.setText("Training the base linear probe…")
        job = train_base_job(self.ctx.workspace, self.facts.path)
        self._start("base", job, interruptible=False)  # training stops at its own checks

    def _on_base_trained(self, base_path: Path) -> None:
        self.base_trained.emit(str(base_path))
        self._looked_up = False
        self._relook = True  # compare once this worker is done (its done() follows succeeded())

    def _on_compare_button_clicked(self) -> None:
        other = self.run_combo.currentData()
        if self.facts is None or not other:
            return
        self.comparison = None
        self.other_label.setText("Comparing…")
        job = compare_job(
            self.facts.path,
            Path(other),
            self.split,
            name_b=self.run_combo.currentText(),
            allow_test=self.allow_test,
        )
        self._start("other", job)

    def _on_compare_succeeded(self, result: Comparison) -> None:
        self.comparison = result
        self.other_label.setText(comparison_html(result, "this run", self.run_combo.currentText()))

    def summary_html(self) -> str:
        """What the panel shows, for the report."""
        parts = []
        if self.base is not None and self.base.comparison is not None:
            parts.append(
                "<h3>Against its base</h3>"
                + comparison_html(self.base.comparison, "this run", "the base")
            )
        elif self.base is not None and self.base.is_self:
            parts.append(
                "<h3>Against its base</h3><p>This run is a linear probe (its own base).</p>"
            )
        if self.comparison is not None:
            parts.append(
                "<h3>Against another run</h3>"
                + comparison_html(self.comparison, "this run", self.run_combo.currentText())
            )
        return "".join(parts)


def _show_progress(bar: QProgressBar, progress: Progress) -> None:
    """A comparison's example counts, or a base training's stage and step counts."""
    if progress.total:
        bar.setRange(0, progress.total)
        bar.setValue(progress.done)
