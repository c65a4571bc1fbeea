"""LoRA settings of the shared config: rank, alpha, dropout, target layers, merged copy."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.state import ConfigState
from desktop.widgets.config_form import ConfigForm, FieldSpec
from engine import AdaptConfig, field_help

LORA_FIELDS = [
    FieldSpec("adapt", "lora_rank", "Rank"),
    FieldSpec("adapt", "lora_alpha", "Alpha", decimals=2, step=1.0),
    FieldSpec("adapt", "lora_dropout", "Dropout", decimals=2, step=0.05),
    FieldSpec("adapt", "lora_save_merged", "Also save a merged model"),
]
NameRole = Qt.ItemDataRole.UserRole + 1


class LoraSettingsWidget(QGroupBox):
    """Spin boxes from the config's field metadata and a checkable list of the layers that get
    adapters: ticked as the automatic choice until the user changes it."""

    def __init__(self, state: ConfigState, parent: QWidget | None = None) -> None:
        super().__init__("LoRA adapters", parent)
        self.setObjectName("loraSettings")
        self.state = state
        self.candidates: list[str] = []
        self.defaults: list[str] = []
        row = QHBoxLayout(self)
        self.form = ConfigForm(state, LORA_FIELDS)
        self.form.setMaximumWidth(340)
        row.addWidget(self.form, 0, Qt.AlignmentFlag.AlignTop)

        column = QVBoxLayout()
        caption = QLabel("&Layers that get adapters:")
        column.addWidget(caption)
        self.targets = QListWidget()
        self.targets.setObjectName("loraTargets")
        self.targets.setAccessibleName("Layers that get LoRA adapters")
        self.targets.setToolTip(str(field_help(AdaptConfig, "lora_targets")["help"]))
        self.targets.setMaximumHeight(120)
        self.targets.itemChanged.connect(self._on_targets_item_changed)
        caption.setBuddy(self.targets)
        column.addWidget(self.targets)
        hint_row = QHBoxLayout()
        self.hint = QLabel()
        self.hint.setObjectName("loraTargetsHint")
        self.hint.setWordWrap(True)
        hint_row.addWidget(self.hint, 1)
        self.auto_button = QPushButton("Automatic")
        self.auto_button.setObjectName("loraAutoButton")
        self.auto_button.setToolTip("Use the usual layers for this architecture.")
        self.auto_button.clicked.connect(self._on_auto_button_clicked)
        hint_row.addWidget(self.auto_button)
        column.addLayout(hint_row)
        row.addLayout(column, 1)
        state.changed.connect(self._on_state_changed)
        self._sync()

    def editor(self, name: str) -> Any:
        """The editor of one field, e.g. ``editor("lora_rank")``."""
        return self.form.editors[f"adapt.{name}"]

    def set_candidates(self, candidates: list[str], defaults: list[str]) -> None:
        """The model's layers that can take an adapter, and the automatic choice among them."""
        self.candidates, self.defaults = list(candidates), list(defaults)
        self._sync()

    def checked(self) -> list[str]:
        return [
            self.targets.item(i).data(NameRole)
            for i in range(self.targets.count())
            if self.targets.item(i).checkState() == Qt.CheckState.Checked
        ]

    # -- behaviour --------------------------------------------------------------------------------

    def _on_state_changed(self, _config: Any) -> None:
        self._sync()

    def _on_targets_item_changed(self, _item: QListWidgetItem) -> None:
        # Ticking nothing leaves nothing to train: that goes back to the automatic choice.
        self.state.update("adapt", lora_targets=self.checked())

    def _on_auto_button_clicked(self) -> None:
        self.state.update("adapt", lora_targets=[])

    def _sync(self) -> None:
        chosen = list(self.state.config.adapt.lora_targets)
        ticked = set(chosen or self.defaults)
        unknown = [name for name in chosen if name not in self.candidates]
        names = self.candidates + unknown
        if [self.targets.item(i).data(NameRole) for i in range(self.targets.count())] != names:
            self._fill(names, unknown)
        blocked = self.targets.blockSignals(True)
        for i in range(self.targets.count()):
            item = self.targets.item(i)
            on = item.data(NameRole) in ticked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.targets.blockSignals(blocked)
        self.auto_button.setEnabled(bool(chosen))
        self.hint.setText(self._hint(chosen, unknown))

    def _fill(self, names: list[str], unknown: list[str]) -> None:
        blocked = self.targets.blockSignals(True)
        self.targets.clear()
        for name in names:
            missing = name in unknown
            item = QListWidgetItem(f"{name}  (not in this model)" if missing else name)
            item.setData(NameRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            if missing:
                item.setToolTip(f"This model has no layer called {name}; untick it.")
            self.targets.addItem(item)
        self.targets.blockSignals(blocked)

    def _hint(self, chosen: list[str], unknown: list[str]) -> str:
        if unknown:
            names = ", ".join(html.escape(n) for n in unknown)
            return f"<b>This model has no layer called {names}</b>; untick it."
        if not self.candidates:
            return "The layers are listed once the model is built."
        if not chosen:
            return f"Automatic: {', '.join(self.defaults)}."
        return "Your choice. <i>Automatic</i> goes back to the usual layers."
