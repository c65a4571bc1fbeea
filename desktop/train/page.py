"""Train page: hyperparameters, Start/Pause/Stop, and the run's live curves, progress and log."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QKeySequence, QTextDocumentFragment
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.page import Page
from desktop.train import device_picker
from desktop.train.cluster_export import ClusterJobDialog
from desktop.train.device_picker import ProcessPicker
from desktop.train.distributed_runner import (
    ProcessPlan,
    distributed_resume_job,
    distributed_train_job,
)
from desktop.train.run_jobs import Job, resume_job, train_job
from desktop.train.study_form import StudyForm
from desktop.widgets.config_form import CollapsibleSection, ConfigForm, FieldSpec
from desktop.widgets.palette_colors import level_color
from desktop.worker import EngineWorker
from engine import (
    CHOSEN_FIELDS,
    AdviceGiven,
    ConfigError,
    RunConfig,
    RunEnded,
    RunStarted,
    RunStatus,
)

if TYPE_CHECKING:
    from desktop.train.run_monitor import RunMonitorWidget

BASIC_FIELDS = [
    FieldSpec("schedule", "epochs", "Epochs"),
    FieldSpec("schedule", "batch_size", "Batch size"),
    FieldSpec("optim", "lr", "Learning rate", scientific=True),
    FieldSpec("optim", "optimizer", "Optimizer"),
    FieldSpec("schedule", "schedule", "LR schedule"),
    FieldSpec("augment", "preset", "Augmentation"),
    FieldSpec("schedule", "early_stopping_patience", "Early stopping", special_text="off"),
    FieldSpec("schedule", "time_budget_min", "Time budget (min)", decimals=1, special_text="none"),
    FieldSpec("device", "device", "Device"),
]
ADVANCED_FIELDS = [
    FieldSpec("device", "precision", "Precision"),
    FieldSpec("device", "runtime", "Frozen layers run in"),
    FieldSpec("optim", "label_smoothing", "Label smoothing", decimals=2, step=0.05),
    FieldSpec("optim", "weight_decay", "Weight decay", decimals=4, step=0.005),
    FieldSpec("optim", "backbone_lr_scale", "Backbone LR scale", decimals=3, step=0.01),
    FieldSpec("schedule", "warmup_fraction", "Warm-up share", decimals=2, step=0.01),
    FieldSpec("schedule", "monitor", "Best model by"),
    FieldSpec("optim", "class_weights", "Class weights"),
    FieldSpec("data", "intensity", "Intensity stretch"),
    FieldSpec("optim", "grad_clip", "Gradient clip", decimals=2, step=0.5, special_text="off"),
    FieldSpec("", "seed", "Seed"),
]
#: Settings of the training loop that a linear probe's converged fit does not use.
PROBE_IGNORES = {
    ("schedule", "epochs"),
    ("optim", "lr"),
    ("optim", "optimizer"),
    ("schedule", "schedule"),
    ("schedule", "early_stopping_patience"),
    ("optim", "label_smoothing"),
    ("optim", "weight_decay"),
    ("schedule", "warmup_fraction"),
    ("optim", "grad_clip"),
}
#: Settings of the training loop that the Recommended method chooses when the run starts.
AUTO_CHOOSES = CHOSEN_FIELDS  # one list, kept by the engine that chooses them
AUTO_NOTE = (
    "Greyed settings are chosen by Recommended when the run starts; pick another method on the "
    "Layers page to set them."
)
TEXT_FIELDS = [
    FieldSpec("data", "max_length", "Max length (tokens)"),
    FieldSpec("data", "length_bucketing", "Batch by length"),
]
WARM_UP_MS = 1500


class TrainPage(Page):
    """Runs the current RunConfig in a worker thread and shows it train, live."""

    title = "Train"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self._worker: EngineWorker | None = None
        self._run_dir = ""
        self._error_shown = ""
        self._stopping = False
        self._resumable_dir = ""
        self._result_plain = ""
        self._monitor: RunMonitorWidget | None = None
        self._mismatch = ""  # the Model page's sentence when the backbone does not fit the data
        self._plan = ProcessPlan()  # the processes of the run that trains now
        self._devices_probed = False
        self._build_actions()
        self._build_layout()
        self.ctx.state.changed.connect(self._on_state_changed)
        self._sync_probe_fields(self.ctx.state.config)
        self.ctx.signals.resume_requested.connect(self._on_signals_resume_requested)
        self.ctx.signals.backbone_mismatch.connect(self._on_signals_backbone_mismatch)
        self.ctx.signals.dataset_scanned.connect(self._on_signals_dataset_scanned)
        self._update_actions()
        # pyqtgraph takes a while to import: build the curves once the window is up
        QTimer.singleShot(WARM_UP_MS, self, self._on_warm_up_timeout)

    # -- building -------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        icon = self.style().standardIcon
        pixmap = QStyle.StandardPixmap
        self.start_action = QAction(icon(pixmap.SP_MediaPlay), "Start training", self)
        self.start_action.setObjectName("actionStart")
        self.start_action.setShortcut(QKeySequence("Ctrl+Return"))
        self.start_action.setToolTip("Start training with these settings (Ctrl+Return)")
        self.start_action.triggered.connect(self._on_start_action_triggered)
        self.pause_action = QAction(icon(pixmap.SP_MediaPause), "Pause", self)
        self.pause_action.setObjectName("actionPause")
        self.pause_action.setCheckable(True)
        self.pause_action.setToolTip("Pause after the current step; click again to continue")
        self.pause_action.toggled.connect(self._on_pause_action_toggled)
        self.stop_action = QAction(icon(pixmap.SP_MediaStop), "Stop", self)
        self.stop_action.setObjectName("actionStop")
        self.stop_action.setToolTip("Stop after the current step; the run can be resumed later")
        self.stop_action.triggered.connect(self._on_stop_action_triggered)

    def actions(self) -> list[QAction]:  # type: ignore[override]
        """Start, Pause (toggle) and Stop, for the window's Run menu and shortcuts."""
        return [self.start_action, self.pause_action, self.stop_action]

    def _build_layout(self) -> None:
        settings = QWidget()
        column = QVBoxLayout(settings)
        heading = QLabel(
            "<h2>Train</h2>Settings start from sensible defaults; hover over one to see "
            "what it does."
        )
        heading.setWordWrap(True)
        column.addWidget(heading)
        box = QGroupBox("Settings")
        box_layout = QVBoxLayout(box)
        self.basic_form = ConfigForm(self.ctx.state, BASIC_FIELDS)
        self.advanced_form = ConfigForm(self.ctx.state, ADVANCED_FIELDS)
        self.advanced = CollapsibleSection("Advanced", self.advanced_form)
        self.advanced.setObjectName("advancedSection")
        self.recipe_note = QLabel(AUTO_NOTE)
        self.recipe_note.setObjectName("recipeNote")
        self.recipe_note.setWordWrap(True)
        box_layout.addWidget(self.recipe_note)
        box_layout.addWidget(self.basic_form)
        self.process_picker = ProcessPicker()
        form_layout = self.basic_form.layout()
        assert isinstance(form_layout, QFormLayout)  # ConfigForm lays its fields out in one
        form_layout.addRow("Processes", self.process_picker)
        self.text_form = ConfigForm(self.ctx.state, TEXT_FIELDS)
        self.text_section = CollapsibleSection("Text", self.text_form, expanded=True)
        self.text_section.setObjectName("textSection")
        self.text_section.setToolTip("Settings for text data; shown when the data holds texts.")
        self.text_section.hide()
        box_layout.addWidget(self.text_section)
        box_layout.addWidget(self.advanced)
        self.study_form = StudyForm(self.ctx.state)
        self.study_section = CollapsibleSection("Study (for the report)", self.study_form)
        self.study_section.setObjectName("studySection")
        self.study_section.setToolTip(
            "What the model is for and how its labels were decided: kept in the run, printed in "
            "its report and model card."
        )
        box_layout.addWidget(self.study_section)
        self.settings_box = box
        column.addWidget(box)
        column.addLayout(self._build_buttons())
        self.message_label = QLabel()
        self.message_label.setObjectName("messageLabel")
        self.message_label.setWordWrap(True)
        self.message_label.hide()
        column.addWidget(self.message_label)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(settings)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFixedWidth(330)

        self.result_label = QLabel()
        self.result_label.setObjectName("resultLabel")
        self.result_label.setWordWrap(True)
        self.result_label.setOpenExternalLinks(True)
        self.result_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._right = QVBoxLayout()
        self._right.addWidget(self.result_label)
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addLayout(self._right, 1)

    def _build_buttons(self) -> QVBoxLayout:
        row = QHBoxLayout()
        for action in self.actions():
            button = QToolButton()
            button.setDefaultAction(action)
            button.setObjectName(action.objectName().replace("action", "") + "Button")
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            row.addWidget(button)
        row.addStretch(1)
        self.resume_button = QPushButton("Resume stopped run")
        self.resume_button.setObjectName("resumeButton")
        self.resume_button.setToolTip("Continue the stopped run from its last checkpoint")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.resume_button.hide()
        self.cluster_button = QPushButton("Export as cluster job…")
        self.cluster_button.setObjectName("clusterJobButton")
        self.cluster_button.setToolTip(
            "Write these settings with a torchrun launch script and a SLURM job file, to train "
            "them on a cluster's GPUs"
        )
        self.cluster_button.clicked.connect(self._on_cluster_button_clicked)
        column = QVBoxLayout()
        column.addLayout(row)
        column.addWidget(self.resume_button)
        column.addWidget(self.cluster_button)
        return column

    # -- public ---------------------------------------------------------------------------------

    @property
    def monitor(self) -> RunMonitorWidget:
        """Progress, curves and log; built on first use (it imports pyqtgraph)."""
        if self._monitor is None:
            from desktop.train.run_monitor import RunMonitorWidget

            self._monitor = RunMonitorWidget()
            self._right.addWidget(self._monitor, 1)
        return self._monitor

    def on_shown(self) -> None:
        self.monitor  # noqa: B018 - builds it
        if not self._devices_probed:  # torch is imported in the worker; the picker fills in
            self._devices_probed = True
            self.ctx.pool.submit(
                lambda _task: device_picker.list_devices(),
                self.process_picker.set_devices,
                key=("train", "devices"),
                on_error=lambda _sentence: None,  # nothing to offer: the picker stays hidden
            )

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    @property
    def run_dir(self) -> str:
        """Folder of the current (or last) run; empty before a run has started."""
        return self._run_dir

    def start(self) -> None:
        """Validate the current config and train it in a worker thread."""
        if self.is_running:
            return
        config = self.ctx.state.config
        problem = _config_problem(config) or self._mismatch
        # Ctrl+Return works from every page: show where the run can be watched.
        self.ctx.signals.show_page_requested.emit(self.title)
        if problem:
            self._show_message(problem)
            self.ctx.signals.status_message.emit(problem)
            return
        plan = self.process_picker.plan()
        if plan.in_child:
            job = distributed_train_job(config, self.ctx.workspace, plan)
            self._launch(job, f"Starting {plan.describe()} with torchrun…", plan)
        else:
            self._launch(train_job(config, self.ctx.workspace), "Starting: loading the engine…")

    def resume_run(self, run_dir: str) -> None:
        """Continue a stopped run from its last checkpoint."""
        if self.is_running:
            self._show_message("A run is training; stop it before resuming another.")
            return
        plan = self.process_picker.plan()  # a run resumes with any number of processes
        name = Path(run_dir).name
        if plan.in_child:
            job = distributed_resume_job(run_dir, self.ctx.workspace, plan)
            self._launch(job, f"Resuming {name} on {plan.describe()}…", plan)
        else:
            self._launch(resume_job(run_dir, self.ctx.workspace), f"Resuming {name}…")

    def stop(self) -> None:
        """Ask the run to stop after its current step (it stays resumable)."""
        if self._worker is None or self._stopping:
            return
        self._stopping = True
        self._worker.task.cancel()  # a flag the loop checks; never a queued slot
        self.monitor.set_phase("Stopping after the current step…")
        self._update_actions()

    # -- run lifecycle --------------------------------------------------------------------------

    def _launch(self, job: Job, phase: str, plan: ProcessPlan | None = None) -> None:
        self._show_message("")
        self.result_label.clear()
        self.monitor.reset()
        self.monitor.set_phase(phase)
        self._run_dir, self._error_shown, self._resumable_dir = "", "", ""
        self._stopping = False
        self._plan = plan or ProcessPlan()
        # Training stops at its next step and saves a resumable checkpoint; never interrupt it.
        worker = EngineWorker(job, interruptible=False)
        worker.events.connect(self._on_worker_events)
        worker.failed.connect(self._on_worker_failed)
        worker.done.connect(self._on_worker_done)
        self._worker = worker
        self.ctx.pool.start(worker)
        self._update_actions()
        self.ctx.signals.status_message.emit(phase)

    def _on_worker_events(self, events: list[Any]) -> None:
        self.monitor.feed(events)
        for event in events:
            if isinstance(event, RunStarted):
                self._run_dir = event.run_dir
                self.ctx.signals.run_started.emit(event.run_dir)
            elif isinstance(event, AdviceGiven):  # the Layers page charts it
                self.ctx.signals.advice_given.emit(event.advice)
            elif isinstance(event, RunEnded):
                self._on_run_ended(event)

    def _on_run_ended(self, event: RunEnded) -> None:
        self._run_dir = event.run_dir or self._run_dir
        if event.status is RunStatus.COMPLETED:
            self._show_result(_result_sentence(event, self._run_dir))
        elif event.status is RunStatus.CANCELLED:
            if _is_resumable(self._run_dir):
                self._resumable_dir = self._run_dir
                self._show_result(
                    "Stopped. The run is saved and can be resumed: <b>Resume stopped run</b> "
                    "continues it from where it stopped."
                )
            else:
                self._show_result("Stopped before training began; nothing to resume.")
        elif event.status is RunStatus.DIVERGED:
            self._error_shown = event.error
            self._show_result(html.escape(event.error), error=True)
        else:
            # processes that died keep their last checkpoint: offer to resume it
            if self._plan.in_child and _is_resumable(self._run_dir, crashed=True):
                self._resumable_dir = self._run_dir
            self._show_failure(event.error)

    def _on_worker_failed(self, sentence: str) -> None:
        if sentence != self._error_shown:
            self.monitor.log(sentence, "error")
            self.monitor.set_phase("Failed")
        self._show_failure(sentence)

    def _show_failure(self, sentence: str) -> None:
        self._error_shown = sentence
        self._show_result(f"Training failed: {html.escape(sentence)}", error=True)
        self.ctx.signals.status_message.emit(f"Training failed: {sentence}")

    def _on_worker_done(self) -> None:
        self._worker = None
        self._stopping = False
        self._set_pause_checked(False)
        self._update_actions()
        if self._run_dir:
            self.ctx.signals.run_finished.emit(self._run_dir)
            if not self._error_shown:
                self.ctx.signals.status_message.emit(self._result_plain)

    # -- slots ----------------------------------------------------------------------------------

    def _on_warm_up_timeout(self) -> None:
        self.monitor  # noqa: B018 - builds it

    def _on_cluster_button_clicked(self) -> None:
        dialog = ClusterJobDialog(self.ctx.state.config, self.process_picker.devices, self)
        dialog.open()

    def _on_start_action_triggered(self) -> None:
        self.start()

    def _on_stop_action_triggered(self) -> None:
        self.stop()

    def _on_pause_action_toggled(self, paused: bool) -> None:
        self.pause_action.setText("Continue" if paused else "Pause")
        if self._worker is None:
            return
        if paused:
            self._worker.task.pause()
        else:
            self._worker.task.resume()
        self.monitor.set_paused(paused)

    def _on_resume_button_clicked(self) -> None:
        if self._resumable_dir:
            self.resume_run(self._resumable_dir)

    def _on_signals_resume_requested(self, run_dir: str) -> None:
        self.ctx.signals.show_page_requested.emit(self.title)
        self.resume_run(run_dir)

    def _on_state_changed(self, config: RunConfig) -> None:
        self._sync_probe_fields(config)
        if not self.is_running:
            self._show_message(self._mismatch)

    def _sync_probe_fields(self, config: RunConfig) -> None:
        """A linear probe fits its head to convergence with a cross-validated L2 strength, and
        Recommended chooses the loop's settings itself: the settings that do not apply are greyed
        out and say why."""
        method = str(config.adapt.method)
        if method == "linear-probe":
            greyed = PROBE_IGNORES
            why = "Not used by a linear probe: its head is fitted to convergence, with the L2 "
            why += "strength chosen by cross-validation on the training images."
        elif method == "auto":
            greyed, why = AUTO_CHOOSES, "Chosen by Recommended when the run starts."
        else:
            greyed, why = set(), ""
        self.recipe_note.setVisible(method == "auto")
        for form in (self.basic_form, self.advanced_form):
            for spec in form.specs:
                editor = form.editors[spec.key]
                grey = (spec.section, spec.name) in greyed
                editor.setEnabled(not grey)
                help_text = editor.property("fieldHelp") or ""
                editor.setToolTip(f"{help_text}\n\n{why}" if grey else help_text)

    def _on_signals_backbone_mismatch(self, sentence: str) -> None:
        self._mismatch = sentence
        if not self.is_running:
            self._show_message(sentence)

    def _on_signals_dataset_scanned(self, index: Any) -> None:
        from desktop.modalities import index_views

        views = index_views(index)
        text = views.text_views
        self.text_section.setVisible(text)
        # Augmentation crops and flips pictures; it means nothing to a text model.
        augment = self.basic_form.editors["augment.preset"]
        self.basic_form.layout().setRowVisible(augment, not text)
        intensity = self.advanced_form.editors["data.intensity"]
        self.advanced_form.layout().setRowVisible(intensity, views.modality.has_intensity)

    # -- helpers --------------------------------------------------------------------------------

    def _set_pause_checked(self, checked: bool) -> None:
        blocked = self.pause_action.blockSignals(True)
        self.pause_action.setChecked(checked)
        self.pause_action.setText("Continue" if checked else "Pause")
        self.pause_action.blockSignals(blocked)

    def _update_actions(self) -> None:
        running = self.is_running
        self.start_action.setEnabled(not running)
        self.pause_action.setEnabled(running and not self._stopping)
        self.stop_action.setEnabled(running and not self._stopping)
        self.settings_box.setEnabled(not running)
        self.resume_button.setVisible(bool(self._resumable_dir) and not running)

    def _show_message(self, text: str) -> None:
        self.message_label.setText(text)
        color = level_color("error", self.palette())
        self.message_label.setStyleSheet(f"color: {color};" if text else "")
        self.message_label.setVisible(bool(text))

    def _show_result(self, text: str, *, error: bool = False) -> None:
        self.result_label.setText(text)
        self._result_plain = QTextDocumentFragment.fromHtml(text).toPlainText()
        color = level_color("error", self.palette())
        self.result_label.setStyleSheet(f"color: {color}; font-weight: 600;" if error else "")


def _config_problem(config: RunConfig) -> str:
    if not config.data.path:
        return "Open a labeled folder or table file on the Data page first."
    try:
        config.validate()
    except ConfigError as exc:
        return f"These settings cannot be used: {exc}"
    return ""


def _is_resumable(run_dir: str, *, crashed: bool = False) -> bool:
    """Whether the run can continue; ``crashed``: its processes died, so state.json may still
    say "running" and a last checkpoint is what counts."""
    from engine import RunDir, is_resumable

    status = "interrupted" if crashed else None
    return bool(run_dir) and is_resumable(RunDir(Path(run_dir)), status=status)


def _result_sentence(event: RunEnded, run_dir: str) -> str:
    best = event.best_metrics
    link = QUrl.fromLocalFile(run_dir).toString()
    where = f'run saved in <a href="{link}">{html.escape(run_dir)}</a>'
    if "val_accuracy" not in best:
        return f"Finished — {where}"
    epoch = int(best.get("epoch", 0)) + 1
    text = f"Best val accuracy {100 * best['val_accuracy']:.1f}% at epoch {epoch} — {where}"
    for warning in event.warnings:
        text += f"<br><b>Warning:</b> {html.escape(warning)}"
    return text
