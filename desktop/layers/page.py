"""Layers page: the model's layer groups in order, what is frozen, and what that costs."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QSlider,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from desktop.context import AppContext
from desktop.layers.advice import AdviceSection
from desktop.layers.lora_plan import NEEDS_TRANSFORMER, BuiltModel, lora_count
from desktop.layers.lora_settings import LoraSettingsWidget
from desktop.page import Page
from engine import Method, Task

PRESETS = (
    (
        Method.AUTO,
        "Recommended",
        "Looks at your training images first and chooses the method, the freeze point, the "
        "learning rate and the epochs (the validation split plays no part in the choice).",
    ),
    (
        Method.LINEAR_PROBE,
        "Linear probe",
        "Train only the new classification head. Fastest; features are computed once and cached.",
    ),
    (
        Method.LAST_N,
        "Train last N groups",
        "Also adapt the last N layer groups: more flexible, needs more data and time.",
    ),
    (Method.FULL, "Full fine-tune", "Train every layer. Most flexible, slowest, needs most data."),
    (Method.CUSTOM, "Custom", "Freeze exactly the groups you tick below."),
    (
        Method.LORA,
        "LoRA",
        "Keep the backbone frozen and train small low-rank adapters inside its layers: close "
        "to a full fine-tune with a fraction of the trainable parameters (transformers only).",
    ),
)
LORA_GROUP_TIP = "With LoRA the backbone stays frozen; the adapters inside it train."
AUTO_GROUP_TIP = "Recommended chooses the groups to train from your data when the run starts."
AUTO_COUNT = (
    "<b>Recommended</b> chooses which groups to train from your training images when the run "
    "starts; <b>Analyse my data</b> shows what it would choose now."
)


class LayersPage(Page):
    """Layer groups with freeze checkboxes, presets, a slider for N and live parameter counts."""

    title = "Layers"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.model: Any = None
        self.built: BuiltModel | None = None
        self._model_key: tuple | None = None
        self._building = False
        self._building_key: tuple | None = None
        self._estimate_key: tuple | None = None
        self._estimate_pool_key = object()  # the pool's key of this page's estimate
        self._num_classes = 2
        self._train_size = 0

        layout = QVBoxLayout(self)
        heading = QLabel(
            "<h2>Choose what to train</h2>Frozen groups keep their pretrained "
            "weights. Groups are listed from the input (top) to the output."
        )
        heading.setWordWrap(True)
        layout.addWidget(heading)

        presets = QGroupBox("Method")
        presets.setObjectName("methodPresets")
        grid = QGridLayout(presets)  # two rows of three: the page stays narrow enough
        self.preset_buttons = QButtonGroup(self)
        for i, (method, label, tip) in enumerate(PRESETS):
            button = QRadioButton(label)
            button.setObjectName(f"preset_{method.value}")
            button.setToolTip(tip)
            self.preset_buttons.addButton(button, i)
            grid.addWidget(button, i // 3, i % 3)
        self.preset_buttons.idClicked.connect(self._on_preset_buttons_id_clicked)
        layout.addWidget(presets)

        slider_row = QHBoxLayout()
        self.n_label = QLabel()
        self.n_slider = QSlider(Qt.Orientation.Horizontal)
        self.n_slider.setObjectName("lastNSlider")
        self.n_slider.setMinimum(0)
        self.n_slider.setToolTip("How many layer groups before the head are trained.")
        self.n_slider.valueChanged.connect(self._on_n_slider_value_changed)
        slider_row.addWidget(self.n_label)
        slider_row.addWidget(self.n_slider, 1)
        layout.addLayout(slider_row)

        self.lora_settings = LoraSettingsWidget(ctx.state)
        layout.addWidget(self.lora_settings)

        self.tree = QTreeWidget()
        self.tree.setObjectName("layerTree")
        self.tree.setHeaderLabels(["Layer group", "Parameters", "State"])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.itemChanged.connect(self._on_tree_item_changed)
        self.advice = AdviceSection(ctx)
        self.advice.setObjectName("adviceSection")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tree)
        split.addWidget(self.advice)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        layout.addWidget(split, 1)

        self.trainable_label = QLabel("Building the model…")
        self.trainable_label.setObjectName("trainableLabel")
        layout.addWidget(self.trainable_label)
        self.estimate_label = QLabel("")
        self.estimate_label.setObjectName("epochEstimate")
        self.estimate_label.setWordWrap(True)
        layout.addWidget(self.estimate_label)

        next_row = QHBoxLayout()
        next_row.addStretch(1)
        next_button = QPushButton("Continue to Train →")
        next_button.clicked.connect(lambda: ctx.signals.show_page_requested.emit("Train"))
        next_row.addWidget(next_button)
        layout.addLayout(next_row)

        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(600)
        self._estimate_timer.timeout.connect(self._estimate)
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(150)
        self._count_timer.timeout.connect(self._count_lora)
        self._count_key: tuple | None = None
        self._counting: tuple | None = None
        self._lora_counts: dict[tuple | None, tuple[int, int] | str] = {}
        ctx.state.changed.connect(self._on_state_changed)
        ctx.signals.dataset_scanned.connect(self._on_dataset_scanned)
        self._sync_presets()

    # -- model ----------------------------------------------------------------------------------

    def on_shown(self) -> None:
        self.advice.panel  # noqa: B018 - builds the charts (pyqtgraph) on first show
        self.ensure_model()

    def ensure_model(self) -> None:
        """Build the chosen architecture (no weights) in the background when it changed."""
        cfg = self.ctx.state.config.model
        key = (cfg.backbone, self._num_classes)
        if key == self._model_key or self._building:
            return
        self._building = True
        self.trainable_label.setText(f"Building {cfg.backbone}…")

        num_classes = self._num_classes

        def job(_task: Task) -> BuiltModel:
            from desktop.layers.lora_plan import build_for_layers

            return build_for_layers(cfg, num_classes)

        self._building_key = key
        self.ctx.pool.submit(job, self._on_model_built, on_error=self._on_model_failed)

    def _on_model_built(self, built: BuiltModel) -> None:
        self._building = False
        self.built, self.model, self._model_key = built, built.model, self._building_key
        self.ctx.signals.model_built.emit(built.model)
        self.lora_settings.set_candidates(list(built.lora_candidates), list(built.lora_defaults))
        self._fill_tree()
        if self.isVisible():
            self.ensure_model()  # the choice may have changed while building

    def _on_model_failed(self, sentence: str) -> None:
        self._building = False
        self.model = self.built = None
        self.tree.clear()
        self.trainable_label.setText(sentence)

    def _on_dataset_scanned(self, index: Any) -> None:
        self._num_classes = max(2, len(index.classes))
        self._train_size = len(index.samples)
        if self.isVisible():
            self.ensure_model()

    # -- freeze plan ----------------------------------------------------------------------------

    @property
    def lora_possible(self) -> bool:
        """False when the built model has no layer that can take an adapter (a convnet)."""
        return self.built is None or bool(self.built.lora_candidates)

    def frozen_groups(self) -> list[str]:
        if self.model is None:
            return []
        if self.ctx.state.config.adapt.method is Method.LORA:
            return [g.name for g in self.model.groups if g.name != "head"]
        from engine import resolve_frozen_groups

        return list(resolve_frozen_groups(self.model, self.ctx.state.config.adapt))

    def _fill_tree(self) -> None:
        groups = [g for g in self.model.groups]
        self.n_slider.blockSignals(True)
        self.n_slider.setMaximum(max(0, len(groups) - 1))
        self.n_slider.setValue(min(self.ctx.state.config.adapt.last_n, len(groups) - 1))
        self.n_slider.blockSignals(False)
        self._refresh()

    def _refresh(self) -> None:
        self._sync_presets()
        if self.model is None:
            return
        adapt = self.ctx.state.config.adapt
        lora = adapt.method is Method.LORA
        auto = adapt.method is Method.AUTO
        frozen = set(self.frozen_groups())
        targets = set(adapt.lora_targets or (self.built.lora_defaults if self.built else ()))
        self.tree.blockSignals(True)
        self.tree.clear()
        trainable = total = 0
        for group in self.model.groups:
            item = QTreeWidgetItem([group.name, f"{group.num_params:,}", ""])
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            is_head = group.name == "head"
            flags = item.flags() | Qt.ItemFlag.ItemIsUserCheckable
            if is_head or lora or auto:
                flags &= ~Qt.ItemFlag.ItemIsEnabled
            if auto:  # nothing to tick: the groups are chosen from the data
                flags &= ~Qt.ItemFlag.ItemIsUserCheckable
            item.setFlags(flags)
            is_frozen = group.name in frozen
            if not auto:
                state = Qt.CheckState.Checked if is_frozen else Qt.CheckState.Unchecked
                item.setCheckState(0, state)
            item.setText(2, _state_text(group, is_frozen, lora, targets, auto))
            tip = "Tick to freeze this group (keep its pretrained weights)."
            item.setToolTip(0, "The new head is always trained." if is_head else tip)
            if (lora or auto) and not is_head:
                item.setToolTip(0, AUTO_GROUP_TIP if auto else LORA_GROUP_TIP)
            self.tree.addTopLevelItem(item)
            total += group.num_params
            trainable += 0 if is_frozen else group.num_params
        self.tree.blockSignals(False)
        if auto:
            self.trainable_label.setText(AUTO_COUNT)
            self.estimate_label.setText("")
            self._estimate_key = None
            self._estimate_timer.stop()
            return
        self._show_count(trainable, total, lora)
        self._estimate_timer.start()

    def _show_count(self, trainable: int, total: int, lora: bool) -> None:
        if lora and not self.lora_possible:
            self.trainable_label.setText(
                f"<b>{NEEDS_TRANSFORMER}</b>: {self.model.entry.name} has no layer that can "
                "take an adapter. Choose another method, or a transformer backbone."
            )
            return
        if lora:
            adapt = self.ctx.state.config.adapt
            self._count_key = (self._model_key, adapt.lora_rank, tuple(adapt.lora_targets))
            counted = self._lora_counts.get(self._count_key)
            if counted is None:  # counting copies the model: a worker does it, debounced
                self.trainable_label.setText("Trainable: counting the adapters…")
                self._count_timer.start()
                return
            if isinstance(counted, str):
                self.trainable_label.setText(counted)
                return
            trainable, total = counted
        share = trainable / total if total else 0.0
        adapters = " (adapters and head)" if lora else ""
        self.trainable_label.setText(
            f"Trainable: <b>{trainable:,}</b> of {total:,} parameters ({share:.1%}){adapters}"
        )

    def _count_lora(self) -> None:
        key, model = self._count_key, self.model
        if model is None or key in self._lora_counts or key == self._counting:
            return
        self._counting = key
        adapt = self.ctx.state.config.adapt

        def job(_task: Task) -> tuple[int, int]:
            return lora_count(model, adapt)

        self.ctx.pool.submit(
            job,
            lambda counts: self._count_finished(key, counts),
            on_error=lambda sentence: self._count_finished(key, sentence),
        )

    def _count_finished(self, key: Any, result: tuple[int, int] | str) -> None:
        self._counting = None
        self._lora_counts[key] = result
        if key == self._count_key and self.ctx.state.config.adapt.method is Method.LORA:
            self._refresh()
        elif self.ctx.state.config.adapt.method is Method.LORA:
            self._count_lora()  # the settings changed while counting

    def _sync_presets(self) -> None:
        adapt = self.ctx.state.config.adapt
        for i, (method, _label, _tip) in enumerate(PRESETS):
            button = self.preset_buttons.button(i)
            button.blockSignals(True)
            button.setChecked(method is adapt.method)
            button.blockSignals(False)
        is_last_n = adapt.method is Method.LAST_N
        self.n_slider.setEnabled(is_last_n)
        self.n_label.setText(f"N = {adapt.last_n}")
        slider = adapt.method not in (Method.LORA, Method.AUTO)
        self.n_slider.setVisible(slider)
        self.n_label.setVisible(slider)
        lora_button = self.preset_buttons.button(len(PRESETS) - 1)
        lora_button.setEnabled(self.lora_possible or adapt.method is Method.LORA)
        lora_button.setToolTip(PRESETS[-1][2] if self.lora_possible else NEEDS_TRANSFORMER)
        self.lora_settings.setVisible(adapt.method is Method.LORA)

    def _on_preset_buttons_id_clicked(self, index: int) -> None:
        method = PRESETS[index][0]
        frozen = self.frozen_groups() if method is Method.CUSTOM else []
        self.ctx.state.update("adapt", method=method, frozen_groups=frozen)

    def _on_n_slider_value_changed(self, value: int) -> None:
        self.ctx.state.update("adapt", method=Method.LAST_N, last_n=value)

    def _on_tree_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column != 0:
            return
        frozen = [
            self.tree.topLevelItem(i).text(0)
            for i in range(self.tree.topLevelItemCount())
            if self.tree.topLevelItem(i).checkState(0) == Qt.CheckState.Checked
        ]
        self.ctx.state.update("adapt", method=Method.CUSTOM, frozen_groups=frozen)

    def _on_state_changed(self, _config: Any) -> None:
        if self.model is not None and self._model_key != (
            self.ctx.state.config.model.backbone,
            self._num_classes,
        ):
            self.model = self.built = None
            self.lora_settings.set_candidates([], [])
            self.tree.clear()
            self.trainable_label.setText(
                "The backbone changed; it is built when you open this page."
            )
            if self.isVisible():
                self.ensure_model()
            return
        self._refresh()

    # -- estimate -------------------------------------------------------------------------------

    def _estimate(self) -> None:
        cfg = self.ctx.state.config
        if self.model is None or cfg.adapt.method is Method.AUTO:
            return  # Recommended's trainable set is not known until the run starts
        # With LoRA the estimate inserts the adapters itself; the freeze plan does not apply.
        frozen = () if cfg.adapt.method is Method.LORA else tuple(self.frozen_groups())
        key = (
            self._model_key,
            frozen,
            cfg.device.device,
            cfg.schedule.batch_size,
            cfg.adapt.method,
            cfg.adapt.lora_rank,
            tuple(cfg.adapt.lora_targets),
            cfg.data.max_length,
        )
        if key == self._estimate_key:
            return
        self._estimate_key = key
        self.estimate_label.setText("Estimating time per epoch…")
        model, train_size = self.model, max(self._train_size, 1)

        def job(task: Task) -> Any:
            from engine import estimate_epoch_seconds, estimate_peak_memory

            epoch = estimate_epoch_seconds(model, cfg, list(frozen), train_size, task=task)
            if task.cancelled:
                return (epoch,)
            try:
                return epoch, estimate_peak_memory(model, cfg, list(frozen))
            except Exception:  # the time estimate still helps when memory cannot be measured
                return (epoch,)

        # A newer estimate supersedes this one: its late answer is dropped.
        self.ctx.pool.submit(
            job,
            self._on_estimate_done,
            key=self._estimate_pool_key,
            on_error=self._on_estimate_failed,
        )

    def _on_estimate_done(self, estimates: Any) -> None:
        # Time per epoch, then peak memory against what the device has.
        self.estimate_label.setText(" ".join(e.sentence() for e in estimates))

    def _on_estimate_failed(self, sentence: str) -> None:
        self.estimate_label.setText(f"No estimate: {sentence}")


def _state_text(group: Any, frozen: bool, lora: bool, targets: set[str], auto: bool) -> str:
    """ "trained", "frozen", or with LoRA "frozen + adapters" where a targeted layer is; with
    Recommended "chosen from your data" (the head always trains)."""
    if auto and group.name != "head":
        return "chosen from your data"
    if not frozen:
        return "trained"
    if lora and any(m.rsplit(".", 1)[-1] in targets for m in group.module_names):
        return "frozen + adapters"
    return "frozen"
