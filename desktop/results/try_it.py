"""Try a trained run on a new image or text: top classes as bars, and why (Grad-CAM, words)."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QCheckBox, QFileDialog, QLabel, QStackedWidget, QVBoxLayout, QWidget

from desktop.context import AppContext
from desktop.modalities import views_of
from desktop.results.probability_bars import ProbabilityBarsWidget
from desktop.results.try_it_jobs import (
    Analysis,
    PredictorCache,
    Request,
    RunFacts,
    analyse_job,
    load_job,
)
from desktop.results.try_it_panels import (
    DROP_HINT,
    IMAGE_FILTER,
    ImagePanel,
    TextPanel,
)
from desktop.widgets.palette_colors import level_color

EMPTY = 0  # the stack's page of the empty label; the panels follow it


class TryItWidget(QWidget):
    """Classifies what the user gives it with the model of ``set_run(run_dir)``.

    Image runs: drop, choose or paste an image; "Show heatmap" overlays Grad-CAM for the top
    class or the class picked in the bars. Text runs: paste a text, Classify (Ctrl+Enter);
    "Show influential words" tints the words. The run's Predictor is loaded once in a worker and
    stays in the worker side's cache; every prediction and explanation runs in a worker too, one
    at a time, the newest request replacing one that has not started.
    """

    loaded = Signal(str)  # "image" or "text": the model is ready
    predicted = Signal(list)  # [(class, probability), ...] now shown
    explained = Signal(str)  # the class whose heatmap or influential words are now shown
    failed = Signal(str)  # the sentence now shown (a bad file, a run that cannot load)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TryItWidget")
        self.ctx = ctx
        self.run_dir: Path | None = None
        self.facts: RunFacts | None = None
        self.analysis: Analysis | None = None
        self._cache = PredictorCache()
        self._source = ""
        self._token = 0
        self._pasted = 0
        self._busy = False
        self._pending: Path | Request | None = None
        self._inflight: Path | Request | None = None
        self._pastes: tempfile.TemporaryDirectory[str] | None = None
        self._build()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.status_label = QLabel()
        self.status_label.setObjectName("tryItStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.stack = QStackedWidget()
        self.empty_label = QLabel("Choose a finished run to try its model.")
        self.empty_label.setWordWrap(True)
        self.stack.addWidget(self.empty_label)
        self.image_panel = ImagePanel()
        self.text_panel = TextPanel()
        self.stack.addWidget(self.image_panel)
        self.stack.addWidget(self.text_panel)
        layout.addWidget(self.stack, 1)
        self.message_label = QLabel()
        self.message_label.setObjectName("tryItMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setVisible(False)
        layout.addWidget(self.message_label)

        image = self.image_panel
        image.drop_zone.file_dropped.connect(self.try_image)
        image.drop_zone.image_dropped.connect(self._on_drop_zone_image_dropped)
        image.choose_button.clicked.connect(self._on_choose_button_clicked)
        image.paste_button.clicked.connect(self.paste_image)
        image.paste_shortcut.activated.connect(self.paste_image)
        image.heatmap_box.toggled.connect(self._on_explain_toggled)
        image.bars.class_picked.connect(self._on_bars_class_picked)
        text = self.text_panel
        text.classify_button.clicked.connect(self._on_classify_clicked)
        text.classify_requested.connect(self._on_classify_clicked)
        text.influence_box.toggled.connect(self._on_explain_toggled)
        text.bars.class_picked.connect(self._on_bars_class_picked)
        self._show_empty("Choose a finished run to try its model.")

    # -- public -------------------------------------------------------------------------------

    @property
    def modality(self) -> str:
        return self.facts.modality if self.facts else ""

    @property
    def busy(self) -> bool:
        """A job is running or waiting (tests wait for this to turn False)."""
        return self._busy or self._pending is not None

    def set_run(self, run_dir: Path | str | None) -> None:
        """Show the run whose model to try (None: nothing); its model loads in the background."""
        run_dir = Path(run_dir) if run_dir else None
        if run_dir == self.run_dir and (self.facts is not None or self.busy):
            return
        self.run_dir = run_dir
        self.facts = None
        self._token += 1
        self._clear_results()
        if run_dir is None:
            self._show_empty("Choose a finished run to try its model.")
            return
        self._show_empty("Loading the model…")
        self.status_label.setText(f"Loading the model of <b>{html.escape(run_dir.name)}</b>…")
        self._submit(run_dir)

    def try_image(self, path: str) -> None:
        """Classify the image file at ``path`` (dropped, chosen or pasted)."""
        if self.facts is None or self._panel() is not self.image_panel:
            return
        self._source = str(path)
        self.analysis = None
        self.image_panel.bars.clear()
        self.image_panel.drop_zone.set_image(None)
        self.image_panel.scale.setVisible(False)
        self._captions("")
        self.image_panel.drop_zone.hint = f"Classifying {Path(path).name}…"
        self._request(target=None)

    def classify_text(self, text: str | None = None) -> None:
        """Classify ``text`` (or what the text box holds)."""
        if self.facts is None or self._panel() is not self.text_panel:
            return
        if text is not None:
            self.text_panel.editor.setPlainText(text)
        self._source = self.text_panel.editor.toPlainText()
        if not self._source.strip():
            self._show_message("The text box is empty; paste or type a text first.")
            return
        self.text_panel.caption.setText("Classifying…")
        self._request(target=None)

    def paste_image(self) -> None:
        """Classify the image (or image file) on the clipboard."""
        mime = QGuiApplication.clipboard().mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime else []
        if files:
            self.try_image(files[0])
        elif mime is not None and mime.hasImage():
            self._on_drop_zone_image_dropped(QImage(mime.imageData()))
        else:
            self._show_message("The clipboard holds no image; copy an image or an image file.")

    # -- requests -----------------------------------------------------------------------------

    def _panel(self) -> ImagePanel | TextPanel:
        """The panel that shows this run's modality (the image panel before a run loads)."""
        return self.text_panel if views_of(self.modality).text_views else self.image_panel

    def _explain_box(self) -> QCheckBox:
        return self._panel().explain_box

    def _bars(self) -> ProbabilityBarsWidget:
        return self._panel().bars

    def _request(self, target: str | None, *, new_input: bool = True) -> None:
        if self.run_dir is None or not self._source:
            return
        self._token += 1
        self._show_message("")
        box = self._explain_box()
        explain = box.isChecked() and box.isEnabled()
        request = Request(self.run_dir, self._source, explain, target, self._token, new_input)
        self._submit(request)

    def _submit(self, item: Path | Request) -> None:
        self._pending = item
        if not self._busy:
            self._start_next()

    def _start_next(self) -> None:
        item, self._pending = self._pending, None
        if item is None:
            return
        if isinstance(item, Request):
            job = analyse_job(self._cache, item, modality=self.modality)
        else:
            job = load_job(self._cache, item)
        self._busy, self._inflight = True, item
        self.ctx.pool.submit(
            job,
            self._on_worker_succeeded,
            on_error=self._on_worker_failed,
            on_done=self._on_worker_done,
        )

    def _on_worker_done(self) -> None:
        self._busy, self._inflight = False, None
        self._start_next()

    def _on_worker_failed(self, sentence: str) -> None:
        item = self._inflight
        if isinstance(item, Path) and item == self.run_dir:
            self._show_empty("This run's model cannot be loaded.")
            self.status_label.setText("")
            self._show_message(sentence)
        elif isinstance(item, Request) and item.token == self._token:
            self._show_message(sentence)
            self._captions("")

    def _on_worker_succeeded(self, result: object) -> None:
        if isinstance(result, RunFacts):
            if result.run_dir == self.run_dir:
                self._show_facts(result)
        elif isinstance(result, Analysis) and result.request.token == self._token:
            self._show_analysis(result)

    # -- showing ------------------------------------------------------------------------------

    def _show_facts(self, facts: RunFacts) -> None:
        self.facts = facts
        name = html.escape(facts.run_dir.name)
        panel = self._panel()
        box = panel.explain_box
        box.setEnabled(not facts.explain_reason)
        box.setToolTip(facts.explain_reason or panel.explain_tip)
        self.status_label.setText(f"Try <b>{name}</b>: {panel.prompt}")
        panel.ready()
        self.stack.setCurrentWidget(panel)
        self.loaded.emit(facts.modality)

    def _show_analysis(self, result: Analysis) -> None:
        if result.error:
            self.analysis = None
            self._bars().clear()
            self.image_panel.scale.setVisible(False)
            self.image_panel.drop_zone.hint = DROP_HINT
            self._captions("")
            self._show_message(result.error)
            return
        self.analysis = result
        bars = self._bars()
        selected = result.explained or result.request.target or ""
        if result.request.new_input:
            bars.set_rows(result.top, selected)
            self.predicted.emit(list(result.top))
        elif selected:
            bars.selected = selected
            bars.update()
        self._show_explanation(result)
        box = self._explain_box()
        if box.isChecked() and box.isEnabled() and not (result.explained or result.explain_error):
            # The toggle was switched on while this input was being classified.
            self._captions("Explaining…")
            self._request(target=bars.selected or None, new_input=False)

    def _show_explanation(self, result: Analysis) -> None:
        panel = self._panel()
        if panel.show_result(result):
            self.explained.emit(result.explained)

    def _captions(self, text: str) -> None:
        self.image_panel.caption.setText(text)
        self.text_panel.caption.setText(text)

    def _show_message(self, sentence: str) -> None:
        colour = level_color("error", self.palette())
        self.message_label.setText(f'<span style="color:{colour}">{html.escape(sentence)}</span>')
        self.message_label.setVisible(bool(sentence))
        if sentence:
            self.failed.emit(sentence)

    def _show_empty(self, text: str) -> None:
        self.empty_label.setText(text)
        self.stack.setCurrentIndex(EMPTY)
        if self.run_dir is None:
            self.status_label.setText("")

    def _clear_results(self) -> None:
        self.analysis = None
        self._source = ""
        self._show_message("")
        self._captions("")
        for panel in (self.image_panel, self.text_panel):
            panel.bars.clear()
        self.image_panel.drop_zone.set_image(None)
        self.image_panel.drop_zone.hint = DROP_HINT
        self.image_panel.scale.setVisible(False)
        self.text_panel.influence_view.clear()

    # -- user actions -------------------------------------------------------------------------

    def _on_choose_button_clicked(self) -> None:
        start = str(self.ctx.settings.value("try_it/last_dir", "") or "")
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image", start, IMAGE_FILTER)
        if path:
            self.ctx.settings.setValue("try_it/last_dir", str(Path(path).parent))
            self.try_image(path)

    def _on_drop_zone_image_dropped(self, image: QImage) -> None:
        """Save a pasted or dragged picture to a private temporary file (never the dataset)."""
        if image.isNull():
            self._show_message("The clipboard image is empty; copy the image again.")
            return
        if self._pastes is None:
            self._pastes = tempfile.TemporaryDirectory(prefix="refit-try-it-")
        self._pasted += 1
        path = Path(self._pastes.name) / f"pasted-{self._pasted}.png"
        if not image.save(str(path), "PNG"):
            self._show_message(f"The pasted image could not be saved to {path}.")
            return
        self.try_image(str(path))

    def _on_classify_clicked(self) -> None:
        self.classify_text()

    def _on_explain_toggled(self, checked: bool) -> None:
        result = self.analysis
        if result is None:
            return
        wanted = self._bars().selected or None
        if not checked or (result.explained and result.explained == (wanted or result.explained)):
            self._show_explanation(result)  # already computed: show or hide it, no model call
            return
        self._captions("Explaining…")
        self._request(target=wanted, new_input=False)

    def _on_bars_class_picked(self, name: str) -> None:
        if self.analysis is not None and self._explain_box().isChecked():
            self._captions("Explaining…")
            self._request(target=name, new_input=False)
