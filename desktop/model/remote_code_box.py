"""The "Allow code shipped with this model" checkbox: the app's way to put a model folder on the
user's allow-list (engine.trust), after a warning that names the folder."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

LABEL = "Allow code shipped with this model"


def _could_ship_code(backbone: str) -> bool:
    """Without importing the engine: only Hugging Face models ('hf:ID' or a folder) ship code."""
    return backbone.startswith("hf:") or Path(backbone).expanduser().is_dir()


class RemoteCodeCheckBox(QCheckBox):
    """Off by default; ticking it asks for confirmation and only then adds the folder's code hash
    to the per-user allow-list; unticking removes it. It reflects the allow-list, so a folder
    whose code changed after it was allowed shows as not allowed."""

    allowed_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(LABEL, parent)
        self.setObjectName("allowRemoteCode")
        self.folder: Path | None = None
        self.asking: list[str] = []
        self.toggled.connect(self._on_toggled)
        self.set_backbone("")

    def set_backbone(self, backbone: str) -> None:
        """Show the allow-list state of the backbone's folder (disabled when it ships no code)."""
        self.folder, self.asking = None, []
        if backbone and _could_ship_code(backbone):
            from engine import code_requests, model_folder

            self.folder = model_folder(backbone)
            self.asking = code_requests(self.folder) if self.folder is not None else []
        self.setEnabled(bool(self.asking))
        self._show(bool(self.asking) and self._allowed())
        self.setToolTip(
            f"{self.folder} ships Python code (auto_map in {', '.join(self.asking)}). It runs on "
            "this computer only if you allow it here; allow it only if you trust its author."
            if self.asking
            else "This model ships no code of its own; there is nothing to allow."
        )

    def confirm(self) -> bool:
        """Ask the user, naming the folder; True only when they choose to allow it."""
        answer = QMessageBox.warning(
            self,
            "Allow code shipped with this model?",
            f"<p>The model folder <b>{html.escape(str(self.folder))}</b> ships Python code "
            f"(named by auto_map in {html.escape(', '.join(self.asking))}). Allowing it lets "
            "that code run on this computer, with your permissions, whenever this model is "
            "loaded.</p><p>Allow it only if you trust the model's author. If the folder's code "
            "changes, you will be asked again.</p>",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _allowed(self) -> bool:
        from engine import is_trusted

        return self.folder is not None and is_trusted(self.folder)

    def _show(self, checked: bool) -> None:
        self.blockSignals(True)
        self.setChecked(checked)
        self.blockSignals(False)

    def _on_toggled(self, checked: bool) -> None:
        from engine import trust_folder, untrust

        if self.folder is None:
            self._show(False)
            return
        if checked and not self.confirm():
            self._show(False)
            return
        if checked:
            trust_folder(self.folder)
        else:
            untrust(self.folder)
        self.allowed_changed.emit(checked)
