"""The line under the run picker: which split the results are of, and what was evaluated."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QWidget

from desktop.results.evaluation_jobs import RunFacts, SplitResults

SPLIT_WORDS = {"val": "validation", "test": "test"}
BADGE_COLORS = {"val": "#2c6fb7", "test": "#c0392b"}


class SplitBadge(QLabel):
    """VALIDATION in blue or TEST in red: whose numbers these are, impossible to miss."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("splitBadge")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.hide()

    def set_split(self, split: str) -> None:
        self.setText(f" {SPLIT_WORDS.get(split, split).upper()} ")
        self.setToolTip(
            "Results on the locked test split: the final, one-time estimate."
            if split == "test"
            else "Results on the validation split (used to choose epochs and settings)."
        )
        self.setAccessibleName(f"{SPLIT_WORDS.get(split, split)} results")
        self.setStyleSheet(
            f"QLabel#splitBadge {{ background: {BADGE_COLORS.get(split, '#666')}; color: white;"
            " font-weight: bold; border-radius: 4px; padding: 3px 8px; }"
        )
        self.show()


class SplitSelector(QComboBox):
    """Validation or test results, shown only when a run has both."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("splitCombo")
        self.setAccessibleName("Results shown")
        self.addItem("Validation results", "val")
        self.addItem("Test results", "test")
        self.hide()

    @property
    def split(self) -> str:
        return self.currentData() or "val"

    def show_choice(self, split: str, splits: set[str]) -> None:
        """Select ``split`` (no signal); visible when ``splits`` holds both."""
        self.blockSignals(True)
        self.setCurrentIndex(self.findData(split))
        self.blockSignals(False)
        self.setVisible({"val", "test"} <= splits)


def describe_run(facts: RunFacts) -> str:
    """Backbone, method, classes and split sizes of a run (rich text)."""
    test = f", {facts.test_size} locked test examples" if facts.test_size else ", no test split"
    return (
        f"{html.escape(facts.backbone)} · {facts.method} · {len(facts.classes)} classes · "
        f"{facts.val_size} validation examples{test}"
    ) + run_warnings_html(facts)


def run_warnings_html(facts: RunFacts) -> str:
    """The run's honest warnings (the model learned nothing useful), one line each."""
    return "".join(
        f"<br><span style='color:#c62828'><b>Warning:</b> {html.escape(w)}</span>"
        for w in facts.warnings
    )


def describe_evaluation(facts: RunFacts, shown: SplitResults) -> str:
    """What the shown numbers are of: examples, checkpoint, when, which model (rich text)."""
    ev = shown.evaluation
    words = SPLIT_WORDS.get(ev.split, ev.split)
    when = ev.created[:16].replace("T", " ")
    line = (
        f"{ev.n} {words} examples · {ev.checkpoint} checkpoint · evaluated {when} · "
        f"{html.escape(facts.backbone)} · {facts.method}"
    )
    if ev.split == "test":
        line += " · <b>final estimate: do not tune on these numbers</b>"
    return line + run_warnings_html(facts)
