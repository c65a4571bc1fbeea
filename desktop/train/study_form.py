"""The Train page's Study group: the intended use and reference standard a reviewer asks for.

Two plain text fields bound to the RunConfig's ``study`` section (kept in the run, printed in
its report and model card). The engine cleans the text (control characters, length); this form
only shows and edits it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLineEdit, QWidget

from desktop.state import ConfigState
from engine import RunConfig, field_help

STUDY_FIELDS = (
    (
        "intended_use",
        "Intended use",
        "e.g. triage of chest X-rays in adults, read by a radiologist",
    ),
    ("reference_standard", "Reference standard", "e.g. biopsy, or consensus of two readers"),
)


class StudyForm(QWidget):
    """Intended use and reference standard, each a line of free text."""

    def __init__(self, state: ConfigState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.editors: dict[str, QLineEdit] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        study_class = type(state.config.study)
        for name, label, hint in STUDY_FIELDS:
            edit = QLineEdit()
            edit.setObjectName("study" + "".join(p.title() for p in name.split("_")) + "Edit")
            edit.setPlaceholderText(hint)
            edit.setToolTip(str(field_help(study_class, name).get("help", "")))
            edit.setMaxLength(2000)
            edit.editingFinished.connect(lambda n=name: self._on_edited(n))
            self.editors[name] = edit
            layout.addRow(label, edit)
        self.load(state.config)
        state.changed.connect(self.load)

    def load(self, config: RunConfig) -> None:
        """Show the study text of ``config`` (leaving a field being typed in alone)."""
        for name, edit in self.editors.items():
            value = getattr(config.study, name)
            if edit.text() != value and not edit.hasFocus():
                edit.setText(value)
                edit.setCursorPosition(0)

    def _on_edited(self, name: str) -> None:
        text = self.editors[name].text()
        if text != getattr(self.state.config.study, name):
            self.state.update("study", **{name: text})
