"""The Train page's "Processes" picker: one process in the app (the device set above), every GPU,
a chosen subset of GPUs, or (for testing the same path without GPUs) CPU processes with Gloo.
Anything but one process trains in a torchrun child (desktop/train/distributed_runner.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.train.distributed_runner import ProcessPlan

CPU_PROCESSES_ENV = "REFIT_CPU_PROCESSES"
MAX_CPU_PROCESSES = 8


@dataclass(frozen=True)
class Devices:
    """What this computer can train on: CUDA GPU names (index = position), and whether Apple's
    MPS is there."""

    gpus: tuple[str, ...] = ()
    mps: bool = False

    def describe(self) -> str:
        """'2 GPUs (NVIDIA H100), CPU': the picker's caption; the GPU list names each one."""
        parts = []
        names = sorted(set(self.gpus))
        if self.gpus:
            count = f"{len(self.gpus)} GPU{'s' if len(self.gpus) > 1 else ''}"
            parts.append(f"{count} ({', '.join(names)})")
        if self.mps:
            parts.append("Apple GPU (MPS)")
        parts.append("CPU")
        return ", ".join(parts)


def list_devices() -> Devices:
    """Every CUDA GPU by name, and MPS (imports torch: call it in a worker)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = tuple(torch.cuda.get_device_name(i) for i in range(count))
    mps = getattr(torch.backends, "mps", None)
    return Devices(gpus=names, mps=bool(mps is not None and mps.is_available()))


def cpu_processes_offered() -> int:
    """How many CPU processes the picker offers (0: none): REFIT_CPU_PROCESSES=2 shows "2 CPU
    processes (Gloo)", which runs the torchrun path on any computer."""
    text = os.environ.get(CPU_PROCESSES_ENV, "").strip()
    if not text.isdigit():
        return 0
    n = int(text)
    return n if 2 <= n <= MAX_CPU_PROCESSES else 0


class ProcessPicker(QWidget):
    """A combo box of process plans and, for "Chosen GPUs", a checkable list of the GPUs."""

    changed = Signal()

    ONE = "one"
    ALL = "all"
    CHOSEN = "chosen"
    CPU = "cpu"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("processPicker")
        self.devices = Devices()
        self.combo = QComboBox()
        self.combo.setObjectName("processCombo")
        self.combo.setAccessibleName("Processes")
        # the settings column is narrow: never let a long GPU name widen it
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(12)
        self.combo.setToolTip(
            "Train in this app with the device set above, or on several GPUs at once: the run "
            "then runs under PyTorch's torchrun in separate processes (same settings, same "
            "curves; the batch size stays the total over all GPUs)."
        )
        self.gpu_list = QListWidget()
        self.gpu_list.setObjectName("gpuList")
        self.gpu_list.setAccessibleName("GPUs to use")
        self.gpu_list.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.gpu_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.gpu_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.gpu_list.hide()
        self.caption = QLabel()
        self.caption.setObjectName("deviceCaption")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.gpu_list)
        layout.addWidget(self.caption)
        self.combo.currentIndexChanged.connect(self._on_combo_current_index_changed)
        self.gpu_list.itemChanged.connect(self._on_gpu_list_item_changed)
        self.set_devices(Devices())

    def set_devices(self, devices: Devices) -> None:
        """Offer what ``devices`` allows; keeps the choice when it is still offered."""
        unticked = set()  # the same GPUs again (a second probe): keep what the user unticked
        if devices.gpus == self.devices.gpus:
            for i in range(self.gpu_list.count()):
                if self.gpu_list.item(i).checkState() != Qt.CheckState.Checked:
                    unticked.add(i)
        self.devices = devices
        kept = self.combo.currentData()
        blocked = self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("1 process (in the app)", self.ONE)
        n = len(devices.gpus)
        if n >= 2:
            self.combo.addItem(f"Use all {n} GPUs", self.ALL)
            self.combo.addItem("Chosen GPUs…", self.CHOSEN)
        cpus = cpu_processes_offered()
        if cpus:
            self.combo.addItem(f"{cpus} CPU processes (Gloo, for testing)", self.CPU)
        index = self.combo.findData(kept)
        self.combo.setCurrentIndex(max(0, index))
        self.combo.blockSignals(blocked)
        blocked = self.gpu_list.blockSignals(True)
        self.gpu_list.clear()
        for i, name in enumerate(devices.gpus):
            item = QListWidgetItem(f"GPU {i}: {name}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            ticked = i not in unticked
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.gpu_list.addItem(item)
        self.gpu_list.blockSignals(blocked)
        rows = min(max(1, n), 4)  # room for up to four GPUs; more scroll
        frame = 2 * self.gpu_list.frameWidth()
        self.gpu_list.setFixedHeight(rows * self.gpu_list.sizeHintForRow(0) + frame if n else 0)
        self.gpu_list.setToolTip(
            "\n".join(f"GPU {i}: {name}" for i, name in enumerate(devices.gpus))
        )
        self.caption.setText(f"Found: {devices.describe()}")
        self.setVisible(n >= 2 or bool(cpus))
        self._sync()

    def plan(self) -> ProcessPlan:
        """The processes the next run uses."""
        choice = self.combo.currentData()
        if choice == self.ALL:
            gpus = tuple(range(len(self.devices.gpus)))
            return ProcessPlan(nproc=len(gpus), gpus=gpus)
        if choice == self.CHOSEN:
            gpus = tuple(
                int(item.data(Qt.ItemDataRole.UserRole))
                for item in map(self.gpu_list.item, range(self.gpu_list.count()))
                if item.checkState() == Qt.CheckState.Checked
            )
            return ProcessPlan(nproc=max(1, len(gpus)), gpus=gpus) if gpus else ProcessPlan()
        if choice == self.CPU:
            return ProcessPlan(nproc=cpu_processes_offered())
        return ProcessPlan()

    def choose(self, key: str, gpus: tuple[int, ...] | None = None) -> None:
        """Select a plan by key (ONE, ALL, CHOSEN, CPU), and for CHOSEN the GPUs to tick."""
        index = self.combo.findData(key)
        if index < 0:
            raise ValueError(f"{key!r} is not offered on this computer")
        if gpus is not None:
            for i in range(self.gpu_list.count()):
                item = self.gpu_list.item(i)
                state = Qt.CheckState.Checked if i in gpus else Qt.CheckState.Unchecked
                item.setCheckState(state)
        self.combo.setCurrentIndex(index)
        self._sync()

    def _sync(self) -> None:
        self.gpu_list.setVisible(self.combo.currentData() == self.CHOSEN)
        self.changed.emit()

    def _on_combo_current_index_changed(self, _index: int) -> None:
        self._sync()

    def _on_gpu_list_item_changed(self, _item: QListWidgetItem) -> None:
        self.changed.emit()
