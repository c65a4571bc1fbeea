"""The Layers page's advice section: "Analyse my data", "Find learning rate", and their charts.

Both buttons run an engine job in a worker thread with progress and cancel; a run started with
Recommended on the Train page fills the same charts through ``AppSignals.advice_given``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.context import AppContext
from desktop.layers.advice_jobs import Job, LrPointFound, advise_job, lr_find_job
from desktop.worker import EngineWorker
from engine import LogMessage, Method, RunConfig, StageProgressed

if TYPE_CHECKING:
    from desktop.layers.advice_panel import AdvicePanelWidget

ANALYSE_TIP = (
    "Looks at your training images the way Recommended does when a run starts: how well each "
    "depth of the backbone separates your classes, a few short fine-tuning trials, and the "
    "learning-rate range test. Nothing is trained or saved; the validation split plays no part."
)
FINDER_METHODS = (Method.LAST_N, Method.FULL, Method.CUSTOM, Method.LORA)
FINDER_TIP = (
    "Runs a short learning-rate range test on your training images with the method chosen "
    "above (the loss as the rate grows) and suggests a rate."
)
PROBE_NO_LR = (
    "A linear probe has no learning rate to find: its head is fitted to convergence, with the L2 "
    "strength chosen by cross-validation on the training images."
)
AUTO_NO_LR = (
    "Recommended finds the learning rate itself; Analyse my data shows its range test. Pick a "
    "method that trains backbone layers to run the finder on its own."
)
NO_DATA = "Open a labeled folder or table file on the Data page first."
STAGES = {"scan": "Reading the data", "advice": "Looking at your data", "lr_find": "Range test"}


class AdviceSection(QWidget):
    """Buttons, progress and the advice charts (built on first use: pyqtgraph is slow to load)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._worker: EngineWorker | None = None
        self._cancelled = False
        self._classes = 2
        self._panel: AdvicePanelWidget | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._build_buttons())
        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setObjectName("adviceProgress")
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.status_label = QLabel()
        self.status_label.setObjectName("adviceStatus")
        self.status_label.setWordWrap(True)
        progress_row.addWidget(self.status_label, 1)
        progress_row.addWidget(self.progress)
        layout.addLayout(progress_row)
        self.progress.hide()
        self._layout = layout
        ctx.state.changed.connect(self._on_state_changed)
        ctx.signals.dataset_scanned.connect(self._on_signals_dataset_scanned)
        ctx.signals.advice_given.connect(self._on_signals_advice_given)
        self.sync(ctx.state.config)

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.analyse_button = QPushButton("Analyse my data")
        self.analyse_button.setObjectName("analyseButton")
        self.analyse_button.setToolTip(ANALYSE_TIP)
        self.analyse_button.clicked.connect(self._on_analyse_button_clicked)
        self.find_lr_button = QPushButton("Find learning rate")
        self.find_lr_button.setObjectName("findLrButton")
        self.find_lr_button.clicked.connect(self._on_find_lr_button_clicked)
        self.use_lr_button = QPushButton()
        self.use_lr_button.setObjectName("useLrButton")
        self.use_lr_button.setToolTip("Set the learning rate on the Train page to the suggestion")
        self.use_lr_button.clicked.connect(self._on_use_lr_button_clicked)
        self.use_lr_button.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("adviceCancelButton")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        for button in (self.analyse_button, self.find_lr_button, self.use_lr_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        return row

    # -- public ---------------------------------------------------------------------------------

    @property
    def panel(self) -> AdvicePanelWidget:
        """The charts; built on first use."""
        if self._panel is None:
            from desktop.layers.advice_panel import AdvicePanelWidget

            self._panel = AdvicePanelWidget()
            self._layout.addWidget(self._panel, 1)
        return self._panel

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def show_advice(self, advice: dict, source: str = "") -> None:
        """Fill the charts from an AdviceGiven dict; ``source`` says where it came from."""
        self.panel.set_advice(advice, self._classes)
        self.status_label.setText(source)
        self._sync_use_button()

    def analyse(self) -> None:
        """Run the Recommended analysis on the current config in a worker thread."""
        if self.is_running:  # a second press must not wipe the charts of the running job
            return
        self.panel.clear()
        job = advise_job(self.ctx.state.config, self.ctx.workspace)
        self._start(job, "Analysing your data…", "advice")

    def find_learning_rate(self) -> None:
        """Run the range test of the current method in a worker thread; points stream in."""
        if self.is_running:
            return
        self.panel.begin_lr_curve()
        self._start(lr_find_job(self.ctx.state.config, self.ctx.workspace), "Range test…", "lr")

    def cancel(self) -> None:
        if self._worker is not None:
            self._cancelled = True
            self._worker.task.cancel()  # a flag the job checks; never a queued slot
            self.status_label.setText("Cancelling…")

    def sync(self, config: RunConfig) -> None:
        """Enable the buttons that apply to ``config``; tooltips say why one is off."""
        has_data = bool(config.data.path)
        running = self.is_running
        method = Method(config.adapt.method)
        self.analyse_button.setEnabled(has_data and not running)
        self.analyse_button.setToolTip(ANALYSE_TIP if has_data else NO_DATA)
        finder = method in FINDER_METHODS
        self.find_lr_button.setEnabled(finder and has_data and not running)
        if method is Method.LINEAR_PROBE:
            tip = PROBE_NO_LR
        elif method is Method.AUTO:
            tip = AUTO_NO_LR
        else:
            tip = FINDER_TIP if has_data else NO_DATA
        self.find_lr_button.setToolTip(tip)
        self.cancel_button.setVisible(running)
        self._sync_use_button()

    # -- jobs -----------------------------------------------------------------------------------

    def _start(self, job: Job, phase: str, kind: str) -> None:
        if self.is_running:
            return
        self._cancelled = False
        worker = EngineWorker(job)
        worker.events.connect(self._on_worker_events)
        worker.succeeded.connect(self._on_worker_succeeded)
        worker.failed.connect(self._on_worker_failed)
        worker.done.connect(self._on_worker_done)
        worker.kind = kind
        self._worker = worker
        self.status_label.setText(phase)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.use_lr_button.hide()
        self.ctx.pool.start(worker)
        self.sync(self.ctx.state.config)

    def _on_worker_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, LrPointFound):
                self.panel.add_lr_point(event.lr, event.loss)
            elif isinstance(event, StageProgressed) and event.total:
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.done)
                stage = STAGES.get(event.stage, event.stage)
                self.status_label.setText(f"{stage}: {event.done} of {event.total}")
            elif isinstance(event, LogMessage) and not self._cancelled:
                self.status_label.setText(event.text)

    def _on_worker_succeeded(self, result: dict) -> None:
        worker = self.sender()
        if getattr(worker, "kind", "") == "advice":
            self.show_advice(result, f"Analysed in {result.get('seconds', 0):.0f} s.")
            return
        self.panel.set_lr_curve(result)
        if result.get("suggestion"):
            self.status_label.setText(result.get("reason") or "Range test done.")
        else:
            self.status_label.setText(result.get("reason") or "The range test found no rate.")

    def _on_worker_failed(self, sentence: str) -> None:
        self.status_label.setText("Cancelled." if self._cancelled else sentence)

    def _on_worker_done(self) -> None:
        self._worker = None
        self.progress.hide()
        self.sync(self.ctx.state.config)

    # -- slots ----------------------------------------------------------------------------------

    def _on_analyse_button_clicked(self) -> None:
        self.analyse()

    def _on_find_lr_button_clicked(self) -> None:
        self.find_learning_rate()

    def _on_use_lr_button_clicked(self) -> None:
        suggestion = self.panel.suggestion
        if suggestion is not None:
            self.ctx.state.update("optim", lr=suggestion)

    def _on_state_changed(self, config: RunConfig) -> None:
        self.sync(config)

    def _on_signals_dataset_scanned(self, index: Any) -> None:
        self._classes = max(2, len(index.classes))

    def _on_signals_advice_given(self, advice: dict) -> None:
        self.show_advice(advice, "Chosen by Recommended when the run started.")

    def _sync_use_button(self) -> None:
        """ "Use 3.0e-03" once a range test suggested a rate and the method takes one."""
        suggestion = self._panel.suggestion if self._panel is not None else None
        method = Method(self.ctx.state.config.adapt.method)
        show = suggestion is not None and method in FINDER_METHODS and not self.is_running
        if show:
            from desktop.layers.advice_panel import format_lr

            self.use_lr_button.setText(f"Use {format_lr(suggestion)}")
            current = self.ctx.state.config.optim.lr
            self.use_lr_button.setEnabled(abs(current - suggestion) > 1e-12 * suggestion)
        self.use_lr_button.setVisible(show)
