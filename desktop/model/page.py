"""Model page: choose a backbone from the catalog, another timm/Hugging Face model, or a file."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from desktop.context import AppContext
from desktop.modalities import DESKTOP_MODALITIES, DesktopModality, index_views, views_of
from desktop.model.remote_code_box import RemoteCodeCheckBox
from desktop.page import Page
from engine import Task

COLUMNS = ("Backbone", "Source", "Parameters", "Input", "Offline", "Description")
CHECKPOINT_FILTER = "Checkpoints (*.safetensors *.pt *.pth *.bin);;All files (*)"


def _catalog_job(_task: Task) -> list[tuple[Any, Any]]:
    from engine import list_catalog, weights_status

    return [(entry, weights_status(entry.name)) for entry in list_catalog()]


class ModelPage(Page):
    """The backbone catalog with parameter count, input size and an 'available offline' mark."""

    title = "Model"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self._rows: list[tuple[Any, Any]] = []
        self._loading = False
        self._data: DesktopModality | None = None  # of the scanned data; None before a scan
        self._preselect = False  # choose a backbone for the data once the catalog is loaded
        self._known: dict[str, DesktopModality] = {}  # modality of backbones chosen by name
        self.mismatch = ""
        layout = QVBoxLayout(self)
        heading = QLabel(
            "<h2>Choose a pretrained backbone</h2>Models marked <b>offline</b> are "
            "on this computer and train without internet."
        )
        heading.setWordWrap(True)
        layout.addWidget(heading)

        row = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setObjectName("modelSearch")
        self.search.setPlaceholderText("Search backbones…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search_text_changed)
        row.addWidget(self.search, 1)
        self.file_button = QPushButton("Use a checkpoint file…")
        self.file_button.setObjectName("checkpointButton")
        self.file_button.setToolTip(
            "Start from weights in a .safetensors/.pt file made for the "
            "selected architecture (for example your own earlier model)."
        )
        self.file_button.clicked.connect(self._on_file_button_clicked)
        row.addWidget(self.file_button)
        layout.addLayout(row)
        self.show_all = QCheckBox("Show backbones for other kinds of data too")
        self.show_all.setObjectName("showAllBackbones")
        self.show_all.setToolTip("Image backbones cannot read texts, nor text backbones images.")
        self.show_all.toggled.connect(self._on_show_all_toggled)
        self.show_all.hide()
        layout.addWidget(self.show_all)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("backboneTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_table_item_selection_changed)
        layout.addWidget(self.table, 1)

        other = QHBoxLayout()
        other.addWidget(QLabel("Other model:"))
        self.other_edit = QLineEdit()
        self.other_edit.setObjectName("otherModelEdit")
        self.other_edit.setPlaceholderText(
            "timm:convnext_nano, hf:google/vit-base-patch16-224, hf:distilbert/distilbert-base-"
            "uncased or a local Hugging Face folder"
        )
        self.other_edit.returnPressed.connect(self._on_other_edit_return_pressed)
        other.addWidget(self.other_edit, 1)
        use_other = QPushButton("Use")
        use_other.clicked.connect(self._on_other_edit_return_pressed)
        other.addWidget(use_other)
        layout.addLayout(other)
        self.remote_code = RemoteCodeCheckBox()
        self.remote_code.allowed_changed.connect(self._on_remote_code_allowed_changed)
        layout.addWidget(self.remote_code)
        self._code_backbone = ""  # the backbone whose folder the checkbox shows

        self.info = QLabel()
        self.info.setObjectName("modelInfo")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setFrameShape(QLabel.Shape.StyledPanel)
        self.info.setMargin(8)
        layout.addWidget(self.info)

        next_row = QHBoxLayout()
        next_row.addStretch(1)
        self.next_button = QPushButton("Continue to Layers →")
        self.next_button.clicked.connect(lambda: ctx.signals.show_page_requested.emit("Layers"))
        next_row.addWidget(self.next_button)
        layout.addLayout(next_row)
        ctx.state.changed.connect(self._on_state_changed)
        ctx.signals.dataset_scanned.connect(self._on_dataset_scanned)
        self._show_info()

    # -- loading ------------------------------------------------------------------------------

    def on_shown(self) -> None:
        self.load_catalog()
        self._code_backbone = ""  # the allow-list may have changed (refit trust) meanwhile
        self._show_info()

    def load_catalog(self) -> None:
        """Fill the table in the background (checking weights imports torch and timm)."""
        if self._rows or self._loading:
            return
        self._loading = True
        self.info.setText("Looking for backbones on this computer…")
        self.ctx.pool.submit(
            _catalog_job, self._on_worker_succeeded, on_error=self._on_worker_failed
        )

    def _on_worker_succeeded(self, rows: list[tuple[Any, Any]]) -> None:
        self._loading = False
        self._rows = rows
        self.table.setRowCount(len(rows))
        for r, (entry, status) in enumerate(rows):
            params = f"{entry.params / 1e6:.1f} M" if entry.params else "?"
            cells = (
                entry.name,
                entry.family,
                params,
                views_of(entry).reads(entry),
                "✓ offline" if status.available else "needs weights",
                entry.description,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 4:
                    item.setToolTip(status.source if status.available else status.instructions)
                self.table.setItem(r, c, item)
        self._apply_modality()
        self._select_current()
        self._apply_filter(self.search.text())

    def _on_worker_failed(self, sentence: str) -> None:
        self._loading = False
        self.info.setText(f"The backbone catalog could not be read: {sentence}")

    # -- selection ----------------------------------------------------------------------------

    def _select_current(self) -> None:
        name = self.ctx.state.config.model.backbone
        for r, (entry, _status) in enumerate(self._rows):
            if entry.name == name:
                self.table.blockSignals(True)
                self.table.selectRow(r)
                self.table.blockSignals(False)
        self._show_info()

    def _on_table_item_selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        entry, _status = self._rows[rows[0].row()]
        self.ctx.state.update("model", backbone=entry.name, weights=None)

    def _on_other_edit_return_pressed(self) -> None:
        name = self.other_edit.text().strip()
        if not name:
            return
        from engine import ModelError, resolve_entry

        try:
            entry = resolve_entry(name)
        except ModelError as exc:
            self.info.setText(str(exc))
            return
        self.table.clearSelection()
        self._known[entry.name] = views_of(entry)
        self.ctx.state.update("model", backbone=entry.name, weights=None)

    def _on_file_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a checkpoint file", str(Path.home()), CHECKPOINT_FILTER
        )
        if path:
            self.ctx.state.update("model", weights=path)

    def _on_search_text_changed(self, text: str) -> None:
        self._apply_filter(text)

    def _on_show_all_toggled(self, _checked: bool) -> None:
        self._apply_filter(self.search.text())

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        other_kinds = self.show_all.isChecked() or self._data is None
        for r, (entry, _status) in enumerate(self._rows):
            hay = f"{entry.name} {entry.display_name} {entry.family} {entry.description}".lower()
            fits = other_kinds or views_of(entry) is self._data
            self.table.setRowHidden(r, not fits or (bool(needle) and needle not in hay))

    # -- the data's kind ----------------------------------------------------------------------

    def _on_dataset_scanned(self, index: Any) -> None:
        data = index_views(index)
        if data is not self._data:
            self._data = data
            self._preselect = True
        others = [m.modality.noun for m in DESKTOP_MODALITIES.values() if m is not data]
        self.show_all.setText(f"Show backbones for {' and '.join(others)} too")
        self.show_all.show()
        if self._rows:
            self._apply_modality()
            self._apply_filter(self.search.text())
        else:
            self.load_catalog()  # in the background; it preselects when it arrives
        self._show_info()

    def _apply_modality(self) -> None:
        """After new data of another kind: choose the first backbone for it, preferring one
        that is on this computer, unless the chosen one fits already."""
        if not self._preselect or not self._rows:
            return
        self._preselect = False
        current = self._modality_of(self.ctx.state.config.model.backbone)
        if current is None or current is self._data:
            return
        fitting = [(e, s) for e, s in self._rows if views_of(e) is self._data]
        if fitting:
            entry = next((e for e, s in fitting if s.available), fitting[0][0])
            self.ctx.state.update("model", backbone=entry.name, weights=None)
            self._select_current()

    def _modality_of(self, name: str) -> DesktopModality | None:
        """The modality a backbone reads, or None when not known without building the model."""
        for entry, _status in self._rows:
            if entry.name == name:
                return views_of(entry)
        return self._known.get(name)

    def _mismatch_sentence(self) -> str:
        backbone = self.ctx.state.config.model.backbone
        kind = self._modality_of(backbone)
        data = self._data
        if data is None or kind is None or kind is data:
            return ""
        starter = next((e.name for e, s in self._rows if views_of(e) is data), "")
        such = f" such as {starter}" if starter else ""
        return (
            f"{backbone} is made for {kind.modality.noun}, but the data holds "
            f"{data.modality.noun}; choose a backbone for {data.modality.noun}{such}."
        )

    def _on_state_changed(self, _config: Any) -> None:
        self._show_info()

    def _on_remote_code_allowed_changed(self, allowed: bool) -> None:
        # A record in the config only: the allow-list, not the config, lets the code run.
        self.ctx.state.update("model", allow_remote_code=allowed)
        self._show_info()

    def _show_info(self) -> None:
        model = self.ctx.state.config.model
        if model.backbone != self._code_backbone:
            self._code_backbone = model.backbone
            self.remote_code.set_backbone(model.backbone)
        lines = [f"<b>Selected:</b> {model.backbone}"]
        if model.weights:
            lines.append(f"Starting from the checkpoint file <code>{model.weights}</code>.")
        status = next((s for e, s in self._rows if e.name == model.backbone), None)
        if status is None and self._rows and not model.weights:
            from engine import ModelError, weights_status

            try:
                status = weights_status(model.backbone)
            except ModelError as exc:
                lines.append(str(exc))
        if status is not None and not model.weights:
            if status.available:
                lines.append(f"Pretrained weights are on this computer ({status.source}).")
            else:
                lines.append(
                    f"<span style='color:#c0392b'><b>Weights are not on this computer."
                    f"</b></span> {status.instructions}"
                )
        if self.remote_code.asking and not self.remote_code.isChecked():
            lines.append(
                "<span style='color:#c0392b'><b>This model ships Python code of its own</b></span>"
                " (auto_map); it will not load until you tick the box above, and only do that "
                "if you trust its author."
            )
        mismatch = self._mismatch_sentence()
        if mismatch:
            lines.insert(1, f"<span style='color:#c0392b'><b>{html.escape(mismatch)}</b></span>")
        if mismatch != self.mismatch:
            self.mismatch = mismatch
            self.ctx.signals.backbone_mismatch.emit(mismatch)
        self.info.setText("<br>".join(lines))
