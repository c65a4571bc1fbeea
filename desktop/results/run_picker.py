"""A combo box of the workspace's trained runs (the ones with a checkpoint to evaluate)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from engine import RunInfo, Workspace

NAME_ROLE = Qt.ItemDataRole.UserRole + 1
EVALUABLE = {"completed", "cancelled", "stopped", "interrupted", "diverged"}
DAMAGED = {"damaged", "unsupported"}


def evaluable(info: RunInfo) -> bool:
    """A run that ended (or stopped) with checkpoints: it has a model to measure. A damaged one
    is listed too, marked, so that picking it says which file is damaged."""
    return info.status in EVALUABLE | DAMAGED and (info.path / "checkpoints").is_dir()


def run_label(info: RunInfo) -> str:
    """name · backbone · method · best val accuracy (· status when not completed)."""
    name = info.name or info.run_id
    acc = info.best.get("val_accuracy")
    score = f" · {100 * acc:.1f}% val" if isinstance(acc, int | float) else ""
    status = "" if info.status == "completed" else f" · {info.status}"
    mark = "⚠ " if info.status in DAMAGED else ""
    return f"{mark}{name} · {info.backbone} · {info.method}{score}{status}"


class RunPicker(QComboBox):
    """Trained runs, newest first. ``run_changed(folder)`` when the user (or ``refresh``)
    selects another run; "" when the list is empty."""

    run_changed = Signal(str)

    def __init__(self, workspace: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.setObjectName("runCombo")
        self.setAccessibleName("Run")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(20)
        self.currentIndexChanged.connect(self._on_current_index_changed)

    @property
    def path(self) -> Path | None:
        data = self.currentData()
        return Path(data) if data else None

    def refresh(self, wanted: Path | None = None) -> bool:
        """Read the run list again and select ``wanted`` (else keep the current run, else the
        newest); True when the selected run changed (``run_changed`` was sent)."""
        current = self.currentData()
        target = str(wanted) if wanted else current
        runs = [r for r in Workspace(self.workspace).list_runs() if evaluable(r)]
        self.blockSignals(True)
        self.clear()
        for info in runs:
            self.addItem(run_label(info), str(info.path))
            self.setItemData(self.count() - 1, info.name or info.run_id, NAME_ROLE)
            if info.problems:
                tip = "\n".join(info.problems)
                self.setItemData(self.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        index = self.findData(target) if target else -1
        if index < 0:  # the newest run the page can show, rather than a damaged one
            healthy = [i for i, r in enumerate(runs) if r.status not in DAMAGED]
            index = healthy[0] if healthy else (0 if runs else -1)
        self.setCurrentIndex(index)
        self.blockSignals(False)
        if self.currentData() != current:
            self.run_changed.emit(self.currentData() or "")
            return True
        return False

    def runs(self) -> list[tuple[str, Path]]:
        """(short name, folder) of every run in the list."""
        return [(self.itemData(i, NAME_ROLE), Path(self.itemData(i))) for i in range(self.count())]

    def _on_current_index_changed(self, _index: int) -> None:
        self.run_changed.emit(self.currentData() or "")
