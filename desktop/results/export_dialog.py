"""Export a run's model: pick formats and a folder; each format is written and checked."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QColor, QDesktopServices, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.results.export_jobs import ExportFacts, ExportOutcome, TaskJob, export_job, facts_job
from desktop.widgets.palette_colors import level_color
from desktop.worker import WorkerPool
from engine import Progress, Task

# (format value, check box text, what it is for)
FORMATS = (
    ("safetensors", "safetensors", "The weights, for PyTorch with Refit's model code."),
    ("torchscript", "TorchScript", "A traced model that runs in PyTorch without Refit's code."),
    ("onnx", "ONNX", "For onnxruntime and other ONNX runtimes; checked with onnxruntime."),
    ("hf", "Hugging Face folder", "A transformers save_pretrained folder plus the class head."),
)
FORMAT_NAMES = {value: text for value, text, _ in FORMATS}
DEFAULT_FORMATS = ("safetensors", "onnx")


class ExportDialog(QDialog):
    """Writes the run's model in the chosen formats into a folder, in a worker thread.

    ``exported`` carries the ExportOutcome when an export finished; ``failed`` the sentence
    when it did not. Pass the app's ``pool`` so that quitting the app stops a running export.
    """

    exported = Signal(object)
    failed = Signal(str)

    def __init__(
        self, run_dir: Path, parent: QWidget | None = None, *, pool: WorkerPool | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ExportDialog")
        self.run_dir = Path(run_dir)
        self.setWindowTitle(f"Export {self.run_dir.name}")
        self.pool = pool or WorkerPool(self)
        self.facts: ExportFacts | None = None
        self.outcome: ExportOutcome | None = None
        self._worker: Task | None = None  # the export's
        self._workers: set[Task] = set()  # every job still running, facts included
        self._close_when_done = False
        self._conflict: Any = None  # an ExportConflict waiting for the user's answer
        self._build()
        self.resize(640, 560)
        self._start(facts_job(self.run_dir), self._on_facts_succeeded, self._on_facts_failed)

    # -- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Write the model of <b>{html.escape(self.run_dir.name)}</b> as files other programs "
            "can use. Every format is checked against the run's own predictions."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addWidget(self._build_formats())
        layout.addLayout(self._build_destination())
        self.status_label = QLabel()
        self.status_label.setObjectName("exportStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: export_run reports steps, not fractions
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.results_view = QTextBrowser()
        self.results_view.setObjectName("exportResults")
        self.results_view.setOpenLinks(False)
        self.results_view.anchorClicked.connect(self._on_results_view_anchor_clicked)
        self.results_view.setVisible(False)
        layout.addWidget(self.results_view, 1)
        layout.addStretch(0)
        layout.addLayout(self._build_buttons())

    def _build_formats(self) -> QGroupBox:
        group = self.formats_group = QGroupBox("Formats")
        grid = QGridLayout(group)
        grid.setColumnStretch(1, 1)
        grid.setHorizontalSpacing(12)
        self.format_boxes: dict[str, QCheckBox] = {}
        self.format_notes: dict[str, QLabel] = {}
        for row, (value, text, what) in enumerate(FORMATS):
            box = QCheckBox(text)
            box.setObjectName(f"exportFormat_{value}")
            box.setChecked(value in DEFAULT_FORMATS)
            box.toggled.connect(self._update_buttons)
            note = QLabel(what)
            note.setWordWrap(True)
            note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            grid.addWidget(box, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(note, row, 1)
            self.format_boxes[value], self.format_notes[value] = box, note
        hf = self.format_boxes["hf"]
        hf.setChecked(False)
        hf.setEnabled(False)
        self.format_notes["hf"].setText("Checking whether the backbone comes from transformers…")
        self.lora_note = QLabel()
        self.lora_note.setWordWrap(True)
        self.lora_note.setVisible(False)
        grid.addWidget(self.lora_note, len(FORMATS), 0, 1, 2)
        card = QLabel(
            "A model card (MODEL_CARD.md: data, metrics, limits) and refit_model.json (classes, "
            "preprocessing) are always written too."
        )
        card.setObjectName("exportCardNote")
        card.setWordWrap(True)
        grid.addWidget(card, len(FORMATS) + 1, 0, 1, 2)
        return group

    def _build_destination(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Export folder:"))
        self.folder_edit = QLineEdit(str(self.run_dir / "export"))
        self.folder_edit.setObjectName("exportFolder")
        self.folder_edit.setToolTip("Where the files go; never inside the dataset folder.")
        self.folder_edit.textChanged.connect(self._update_buttons)
        row.addWidget(self.folder_edit, 1)
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self._on_choose_button_clicked)
        row.addWidget(self.choose_button)
        return row

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.open_button = QPushButton("Open folder")
        self.open_button.setToolTip("Show the exported files in your file manager.")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._on_open_button_clicked)
        row.addWidget(self.open_button)
        row.addStretch(1)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        row.addWidget(self.export_button)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self._on_close_button_clicked)
        row.addWidget(self.close_button)
        return row

    # -- public -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._worker is not None

    def selected_formats(self) -> list[str]:
        return [v for v, box in self.format_boxes.items() if box.isChecked() and box.isEnabled()]

    def set_formats(self, formats: list[str] | tuple[str, ...]) -> None:
        for value, box in self.format_boxes.items():
            box.setChecked(value in formats and box.isEnabled())

    def start_export(self, *, overwrite: bool = False) -> None:
        """Export into the chosen folder in a worker; the dialog stays responsive. A folder
        holding files no earlier export wrote is only used after the user says yes."""
        formats = self.selected_formats()
        folder = self.folder_edit.text().strip()
        if self.running or not formats or not folder:
            return
        self.outcome = None
        self.results_view.clear()
        self.results_view.setVisible(False)
        self.open_button.setEnabled(False)
        self._show_status("Starting the export…")
        self.progress.setVisible(True)
        job = export_job(self.run_dir, formats, Path(folder), overwrite=overwrite)
        self._worker = self._start(
            job,
            self._on_export_succeeded,
            self._on_export_failed,
            on_progress=self._on_export_progress,
            on_done=self._on_export_done,
        )
        self._update_buttons()

    def cancel(self) -> None:
        """Stop a running export at its next step; the folder is left as it was."""
        if self._worker is not None:
            self._worker.cancel()
            self._show_status("Cancelling after the current step…")
            self.close_button.setEnabled(False)

    # -- worker -------------------------------------------------------------------------------

    def _start(
        self,
        job: TaskJob,
        on_succeeded: Callable[[Any], None],
        on_failed: Callable[[str], None],
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> Task:
        def done() -> None:
            self._workers.discard(task)
            self._on_worker_done()
            if on_done is not None:
                on_done()

        task = self.pool.submit(
            job, on_succeeded, on_error=on_failed, on_progress=on_progress, on_done=done
        )
        self._workers.add(task)
        return task

    def _on_worker_done(self) -> None:
        if self._close_when_done and not self._workers:
            self._close_when_done = False
            self.reject()

    def _on_export_done(self) -> None:
        self._worker = None
        self.progress.setVisible(False)
        self.close_button.setEnabled(True)
        self._update_buttons()
        conflict, self._conflict = self._conflict, None
        if conflict is not None and not self._close_when_done:
            self._ask_to_replace(conflict)

    def _ask_to_replace(self, conflict: Any) -> None:
        """Name the files an export would replace; export again only on Yes."""
        names = "\n".join(f"    {name}" for name in conflict.replaced)
        if names:
            text = (
                f"{conflict.folder} already holds files that Refit Studio did not write:\n\n"
                f"{names}\n\nReplace them? Other files in the folder are kept."
            )
        else:
            text = (
                f"{conflict.folder} holds other files and no earlier export. Export into it "
                "anyway? None of its files is replaced."
            )
        answer = QMessageBox.question(
            self,
            "Replace files?",
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.start_export(overwrite=True)
        else:
            self._show_status(f"Nothing was exported; {conflict.folder} is as it was.")

    def _on_facts_succeeded(self, facts: ExportFacts) -> None:
        self.facts = facts
        hf, note = self.format_boxes["hf"], self.format_notes["hf"]
        hf.setEnabled(not facts.hf_reason)
        note.setText(facts.hf_reason or FORMATS[3][2])
        note.setToolTip(facts.hf_reason)
        hf.setToolTip(facts.hf_reason)
        if facts.lora:
            self.lora_note.setText(
                "This is a LoRA run: every format holds the weights with the adapter merged in; "
                "the Hugging Face folder also keeps the adapter on its own (peft format)."
            )
            self.lora_note.setVisible(True)

    def _on_facts_failed(self, sentence: str) -> None:
        self.format_notes["hf"].setText(sentence)
        self._show_status(sentence, error=True)

    def _on_export_progress(self, progress: Progress) -> None:
        if progress.message and not (self._worker and self._worker.cancelled):
            self._show_status(f"{progress.message}…")

    def _on_export_succeeded(self, outcome: ExportOutcome) -> None:
        if outcome.conflict is not None:  # asked once the worker is done
            self._conflict = outcome.conflict
            self._show_status(f"{outcome.out} holds other files; asking before using it…")
            return
        self.outcome = outcome
        if outcome.cancelled:
            self._show_status(f"Export cancelled; nothing was written to {outcome.out}.")
            self.failed.emit("Export cancelled.")
            return
        count = len(outcome.results)
        self._show_status(
            f"Exported {count} format{'s' if count != 1 else ''} to {outcome.out}; "
            "each was checked against the run."
        )
        self.results_view.setHtml(results_html(outcome))
        self.results_view.setVisible(True)
        self.open_button.setEnabled(True)
        self.exported.emit(outcome)

    def _on_export_failed(self, sentence: str) -> None:
        self._show_status(sentence, error=True)
        self.failed.emit(sentence)

    def _show_status(self, text: str, *, error: bool = False) -> None:
        palette = self.palette()
        if error:
            palette.setColor(QPalette.ColorRole.WindowText, QColor(level_color("error", palette)))
        self.status_label.setPalette(palette)
        self.status_label.setText(text)

    # -- user actions -------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        idle = not self.running
        self.formats_group.setEnabled(idle)  # first: selected_formats() reads enabled boxes
        ready = idle and bool(self.selected_formats()) and bool(self.folder_edit.text().strip())
        self.export_button.setEnabled(ready)
        self.choose_button.setEnabled(idle)
        self.folder_edit.setEnabled(idle)
        self.close_button.setText("Cancel" if self.running else "Close")

    def _on_export_button_clicked(self) -> None:
        self.start_export()

    def _on_choose_button_clicked(self) -> None:
        start = self.folder_edit.text().strip() or str(self.run_dir)
        folder = QFileDialog.getExistingDirectory(self, "Export folder", start)
        if folder:
            self.folder_edit.setText(folder)

    def _on_open_button_clicked(self) -> None:
        if self.outcome is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.outcome.out)))

    def _on_results_view_anchor_clicked(self, url: QUrl) -> None:
        QDesktopServices.openUrl(url)

    def _on_close_button_clicked(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.reject()

    @property
    def busy(self) -> bool:
        """A worker (the export, or reading the run's facts) is still running."""
        return bool(self._workers)

    def reject(self) -> None:
        # Closing while a worker runs cancels it and closes once it has stopped, so no thread
        # outlives the dialog.
        if self.busy:
            self._close_when_done = True
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)


def results_html(outcome: ExportOutcome) -> str:
    """Each format's files (links; a subfolder as one line) and its check, then the model card."""
    out = outcome.out
    parts = []
    for result in outcome.results:
        value = str(getattr(result.format, "value", result.format))
        files = ", ".join(_file_items([Path(p) for p in result.files], out))
        parts.append(
            f"<p><b>{html.escape(FORMAT_NAMES.get(value, value))}</b>: {files}<br>"
            f"{html.escape(result.check)}</p>"
        )
    card = ", ".join(_file_items([outcome.card, outcome.manifest], out))
    parts.append(f"<p><b>Model card</b> (always written): {card}</p>")
    return "".join(parts)


def _file_items(paths: list[Path], out: Path) -> list[str]:
    """Links to files directly in ``out``; files in a subfolder become one link to it."""
    items: list[str] = []
    folders: dict[str, list[Path]] = {}
    for path in paths:
        try:
            parts = path.relative_to(out).parts
        except ValueError:
            parts = (str(path),)
        if len(parts) > 1:
            folders.setdefault(parts[0], []).append(path)
        else:
            size = _size(path.stat().st_size) if path.is_file() else "missing"
            items.append(f"{_link(path, parts[0])} ({size})")
    for name, inside in folders.items():
        total = sum(p.stat().st_size for p in inside if p.is_file())
        count = f"{len(inside)} file{'s' if len(inside) != 1 else ''}"
        items.append(f"{_link(out / name, name + '/')} ({count}, {_size(total)})")
    return items


def _link(path: Path, text: str) -> str:
    return f'<a href="{QUrl.fromLocalFile(str(path)).toString()}">{html.escape(text)}</a>'


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
