"""Patients and DICOM: what keeps one patient's images on one side of the split
(``data.group_by``) and the window DICOM values are shown and trained with
(``data.dicom_window``), with a preview of one image in the chosen window."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from desktop.state import ConfigState
from desktop.widgets.image_loader import ImageLoader
from engine import ConfigError, DataConfig, DicomFrames, DicomWindow, field_help

PREVIEW_SIZE = 160
PATTERN_PREFIX = "pattern:"
NONE, DICOM, MANIFEST, PATTERN = "", "dicom", "manifest", "pattern"
GROUP_CHOICES = (
    (NONE, "None (every image on its own)"),
    (DICOM, "DICOM patient (PatientID)"),
    (MANIFEST, "Manifest column 'group'"),
    (PATTERN, "Filename pattern"),
)
GROUP_HINTS = {
    NONE: "If several images come from one patient, choose how to tell the patients apart: "
    "then each patient's images stay on one side of the split.",
    DICOM: "Each file's PatientID (or StudyInstanceUID) names its patient.",
    MANIFEST: "The manifest's group column names each image's patient.",
    PATTERN: "The part of each file's path (below the folder) in parentheses names its "
    "patient, e.g. (P\\d+)_ for P017_scan3.dcm.",
}
WINDOW_WORDS = {
    "file": "The file's own window",
    "percentile": "Percentile (0.5–99.5%)",
    "brain": "Brain (40/80 HU)",
    "subdural": "Subdural (75/215 HU)",
    "lung": "Lung (−600/1500 HU)",
    "bone": "Bone (400/1800 HU)",
    "soft-tissue": "Soft tissue (40/400 HU)",
}
FRAME_WORDS = {
    "middle": "The middle frame of each file",
    "all": "Every frame (a file's frames stay together)",
}
_PRIVATE = "Only salted hashes of the patient keys are kept."


def group_spec(choice: str, pattern: str) -> str:
    """The data.group_by value of a choice of GROUP_CHOICES (and the pattern typed)."""
    return f"{PATTERN_PREFIX}{pattern}" if choice == PATTERN else choice


def group_choice(spec: str) -> tuple[str, str]:
    """(choice, pattern) of a data.group_by value."""
    spec = spec.strip()
    if spec.startswith(PATTERN_PREFIX):
        return PATTERN, spec[len(PATTERN_PREFIX) :]
    return (spec if spec in (DICOM, MANIFEST) else NONE), ""


class ClinicalSettingsWidget(QGroupBox):
    """Edits ``data.group_by`` and ``data.dicom_window`` of the shared config and follows it.

    The window row and its preview are shown only for data with DICOM files
    (:meth:`set_dicom`); :meth:`set_preview_path` names the image previewed."""

    #: the DICOM window chosen (also written to the config)
    window_changed = Signal(str)

    def __init__(self, state: ConfigState, parent: QWidget | None = None) -> None:
        super().__init__("Patients and DICOM", parent)
        self.setObjectName("clinicalSettings")
        self.state = state
        self.preview_path = ""
        self._dicom = False
        self._token = 0
        self._written: str | None = None  # the group_by this widget last wrote or showed
        self._shown_window = ""  # the window the preview was last asked in
        self._loader = ImageLoader(self, max_threads=1)
        self._loader.loaded.connect(self._on_loader_loaded)
        form = self._form = QFormLayout(self)

        self.group_combo = QComboBox()
        self.group_combo.setObjectName("groupByCombo")
        for value, words in GROUP_CHOICES:
            self.group_combo.addItem(words, value)
        self.group_combo.setToolTip(field_help(DataConfig, "group_by")["help"])
        form.addRow("&Group by:", self.group_combo)
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setObjectName("groupPattern")
        self.pattern_edit.setPlaceholderText("(P\\d+)_")
        self.pattern_edit.setToolTip(
            "A regular expression; its first group in parentheses is the patient's part of "
            "each file's path below the folder."
        )
        form.addRow("&Pattern:", self.pattern_edit)
        self.group_hint = QLabel()
        self.group_hint.setObjectName("groupByHint")
        self.group_hint.setWordWrap(True)
        form.addRow(self.group_hint)

        self.window_combo = QComboBox()
        self.window_combo.setObjectName("dicomWindow")
        for window in DicomWindow:
            self.window_combo.addItem(WINDOW_WORDS.get(window.value, window.value), window.value)
        self.window_combo.setToolTip(field_help(DataConfig, "dicom_window")["help"])
        form.addRow("DICOM &window:", self.window_combo)
        self.frames_combo = QComboBox()
        self.frames_combo.setObjectName("dicomFrames")
        for frames in DicomFrames:
            self.frames_combo.addItem(FRAME_WORDS.get(frames.value, frames.value), frames.value)
        self.frames_combo.setToolTip(field_help(DataConfig, "dicom_frames")["help"])
        form.addRow("Multi-frame fil&es:", self.frames_combo)
        self.preview = QLabel()
        self.preview.setObjectName("windowPreview")
        self.preview.setAccessibleName("The image in the chosen DICOM window")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setFixedSize(PREVIEW_SIZE + 8, PREVIEW_SIZE + 8)
        self.preview.setFrameShape(QLabel.Shape.StyledPanel)
        self.preview.setWordWrap(True)
        self.preview_caption = QLabel()
        self.preview_caption.setObjectName("windowPreviewCaption")
        self.preview_caption.setWordWrap(True)
        self.preview_caption.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.preview_row = QWidget()
        row = QHBoxLayout(self.preview_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.preview_caption, 1)
        form.addRow(self.preview_row)

        self._sync_from_config()
        self.set_dicom(False)
        self.group_combo.currentIndexChanged.connect(self._on_group_combo_current_index_changed)
        self.pattern_edit.textChanged.connect(self._on_pattern_edit_text_changed)
        self.window_combo.currentIndexChanged.connect(self._on_window_combo_current_index_changed)
        self.frames_combo.currentIndexChanged.connect(self._on_frames_combo_current_index_changed)
        state.changed.connect(self._on_state_changed)

    # -- public ---------------------------------------------------------------------------------

    @property
    def dicom_window(self) -> str:
        return str(self.state.config.data.dicom_window)

    @property
    def dicom(self) -> bool:
        """The data has DICOM files: the window row is shown."""
        return self._dicom

    def set_dicom(self, dicom: bool) -> None:
        """Show the window choice and its preview only for data with DICOM files."""
        self._dicom = dicom
        self._form.setRowVisible(self.window_combo, dicom)
        self._form.setRowVisible(self.frames_combo, dicom)
        self._form.setRowVisible(self.preview_row, dicom)
        if not dicom:
            self.set_preview_path("")

    def set_preview_path(self, path: str) -> None:
        """Preview ``path`` (a DICOM file) in the chosen window; "" shows nothing."""
        self.preview_path = path
        self._request_preview()

    def preview_image(self) -> QImage:
        """The picture shown (a null image while it is decoded or when there is none)."""
        return self.preview.pixmap().toImage()

    def wait_for_preview(self, msecs: int = -1) -> bool:
        return self._loader.wait_for_done(msecs)

    # -- edits ----------------------------------------------------------------------------------

    def _on_group_combo_current_index_changed(self, _row: int) -> None:
        self._apply_group()

    def _on_pattern_edit_text_changed(self, _text: str) -> None:
        self._apply_group()

    def _apply_group(self) -> None:
        """Write the chosen group_by to the config when it can be used; else say why."""
        choice = self.group_combo.currentData()
        self._form.setRowVisible(self.pattern_edit, choice == PATTERN)
        pattern = self.pattern_edit.text()
        if choice == PATTERN and not pattern.strip():
            self._show_hint(GROUP_HINTS[PATTERN], error=False)
            return
        spec = group_spec(choice, pattern)
        problem = _group_by_problem(self.state.config, spec)
        if problem:
            stop = "" if problem.endswith(".") else "."
            self._show_hint(f"{problem}{stop} Until then, the earlier choice is used.", error=True)
            return
        self._show_hint(GROUP_HINTS[choice], error=False)
        self._written = spec
        self.state.update("data", group_by=spec)

    def _on_window_combo_current_index_changed(self, _row: int) -> None:
        window = self.window_combo.currentData()
        self.state.update("data", dicom_window=DicomWindow(window))

    def _on_frames_combo_current_index_changed(self, _row: int) -> None:
        frames = self.frames_combo.currentData()
        self.state.update("data", dicom_frames=DicomFrames(frames))

    def _on_state_changed(self, _config: Any) -> None:
        self._sync_from_config()

    # -- showing --------------------------------------------------------------------------------

    def _show_hint(self, text: str, *, error: bool) -> None:
        if not error and self.group_combo.currentData() != NONE:
            text = f"{text} {_PRIVATE}"
        self.group_hint.setText(text)
        self.group_hint.setStyleSheet("color: #c33;" if error else "")

    def _sync_from_config(self) -> None:
        data = self.state.config.data
        window = str(data.dicom_window)
        row = self.window_combo.findData(window)
        if row >= 0 and row != self.window_combo.currentIndex():
            self.window_combo.blockSignals(True)
            self.window_combo.setCurrentIndex(row)
            self.window_combo.blockSignals(False)
        row = self.frames_combo.findData(str(data.dicom_frames))
        if row >= 0 and row != self.frames_combo.currentIndex():
            self.frames_combo.blockSignals(True)
            self.frames_combo.setCurrentIndex(row)
            self.frames_combo.blockSignals(False)
        if self._shown_window != window:
            self._shown_window = window
            self._request_preview()
            self.window_changed.emit(window)
        if data.group_by != self._written:
            self._written = data.group_by
            choice, pattern = group_choice(data.group_by)
            for widget in (self.group_combo, self.pattern_edit):
                widget.blockSignals(True)
            self.group_combo.setCurrentIndex(max(0, self.group_combo.findData(choice)))
            self.pattern_edit.setText(pattern)
            for widget in (self.group_combo, self.pattern_edit):
                widget.blockSignals(False)
            self._form.setRowVisible(self.pattern_edit, choice == PATTERN)
            self._show_hint(GROUP_HINTS[choice], error=False)

    def _request_preview(self) -> None:
        self._token += 1
        self.preview.setPixmap(QPixmap())
        if not self.preview_path:
            self.preview.setText("Double-click an image to preview it here.")
            self.preview_caption.setText("")
            return
        words = WINDOW_WORDS.get(self.dicom_window, self.dicom_window)
        self.preview_caption.setText(f"Shown: {Path(self.preview_path).name}, {words}.")
        self.preview.setText("Loading…")
        self._loader.request(self.preview_path, PREVIEW_SIZE, self._token, window=self.dicom_window)

    def _on_loader_loaded(
        self, _path: str, _size: int, token: int, image: QImage | None, sentence: str
    ) -> None:
        if token != self._token:
            return
        if image is None:
            self.preview.setText(f"The picture cannot be shown. {sentence}")
            return
        self.preview.setText("")
        self.preview.setPixmap(QPixmap.fromImage(image))


def _group_by_problem(config: Any, spec: str) -> str:
    """The sentence of why ``spec`` cannot be data.group_by, or ""."""
    candidate = config.replace(data=dataclasses.replace(config.data, group_by=spec))
    try:
        candidate.validate()
    except ConfigError as exc:
        if "group_by" in str(exc):
            sentence = str(exc).replace("data.group_by's pattern", "The pattern")
            return sentence.replace("pattern:(", "(")
    return ""
