"""How the examples are divided into training, validation and test sets, and the class minimum."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QSpinBox, QWidget

from desktop.state import ConfigState
from engine import DataConfig, field_help

SEED_MAX = 2**31 - 1


def _percent_spin(name: str) -> QDoubleSpinBox:
    meta = field_help(DataConfig, name)
    spin = QDoubleSpinBox()
    spin.setDecimals(0)
    spin.setSingleStep(5)
    spin.setSuffix(" %")
    spin.setRange(100 * meta.get("min", 0.0), 100 * meta.get("max", 1.0))
    spin.setToolTip(meta["help"])
    return spin


def _int_spin(name: str, default_max: int = SEED_MAX) -> QSpinBox:
    meta = field_help(DataConfig, name)
    spin = QSpinBox()
    spin.setRange(int(meta.get("min", 0)), int(meta.get("max", default_max)))
    spin.setToolTip(meta["help"])
    return spin


class SplitSettingsWidget(QGroupBox):
    """Edits ``data.val_fraction``, ``test_fraction``, ``split_seed`` and ``min_per_class`` of
    the shared config; follows the config when something else changes it."""

    def __init__(self, state: ConfigState, parent: QWidget | None = None) -> None:
        super().__init__("How images are split", parent)
        self.setObjectName("splitSettings")
        self.state = state
        self._splits: set[str] = set()
        self._unit = "images"
        self._is_file = False
        self._grouped = False
        form = QFormLayout(self)

        self.mode_label = QLabel()
        self.mode_label.setObjectName("splitModeLabel")
        self.mode_label.setWordWrap(True)
        form.addRow(self.mode_label)

        self.val_spin = _percent_spin("val_fraction")
        self.val_spin.setObjectName("valFraction")
        form.addRow("&Validation share:", self.val_spin)
        self.test_spin = _percent_spin("test_fraction")
        self.test_spin.setObjectName("testFraction")
        form.addRow("&Test share:", self.test_spin)
        self.seed_spin = _int_spin("split_seed")
        self.seed_spin.setObjectName("splitSeed")
        form.addRow("Split &seed:", self.seed_spin)
        self.min_spin = _int_spin("min_per_class")
        self.min_spin.setObjectName("minPerClass")
        self.min_spin.setSuffix(" images")
        form.addRow("&Minimum per class:", self.min_spin)

        self.train_label = QLabel()
        self.train_label.setObjectName("trainShareLabel")
        self.train_label.setWordWrap(True)
        form.addRow(self.train_label)

        self._sync_from_config()
        self.set_folder_splits(set())
        self.val_spin.valueChanged.connect(self._on_val_spin_value_changed)
        self.test_spin.valueChanged.connect(self._on_test_spin_value_changed)
        self.seed_spin.valueChanged.connect(self._on_seed_spin_value_changed)
        self.min_spin.valueChanged.connect(self._on_min_spin_value_changed)
        state.changed.connect(self._on_state_changed)

    def set_unit(self, unit: str, *, is_file: bool = False) -> None:
        """What is split ("images" or "texts"), and whether the source is one table file."""
        self._unit, self._is_file = unit, is_file
        self.setTitle(f"How {unit} are split")
        self.min_spin.setSuffix(f" {unit}")
        self.set_folder_splits(self._splits)

    def set_grouped(self, grouped: bool) -> None:
        """The images have patients: the split keeps each patient's images on one side."""
        self._grouped = grouped
        self.set_folder_splits(self._splits)

    def set_folder_splits(self, splits: set[str]) -> None:
        """The split folders the dataset has ({"train", "val"}, ...); empty for a flat folder."""
        self._splits = set(splits)
        has_val, has_test = "val" in splits, "test" in splits
        self.val_spin.setEnabled(not has_val)
        self.test_spin.setEnabled(not has_test)
        if splits:
            names = " ".join(f"{s}/" for s in ("train", "val", "test") if s in splits)
            text = f"Using the folder's {names} split."
            if not has_val:
                text += f" Validation {self._unit} are taken from train/ by the share below."
            if not has_test:
                text += " A test set is taken from train/ only if you set a test share."
        else:
            what = (
                "The file is one table"
                if self._is_file
                else "The folder has no train/ and val/ folders"
            )
            text = (
                f"{what}, so each class is split by the shares below (the same seed always "
                "gives the same split)."
            )
            if self._grouped:
                text += " Each patient's images stay on one side, so the shares are approximate."
        self.mode_label.setText(text)
        self._show_train_share()

    def _show_train_share(self) -> None:
        data = self.state.config.data
        if "val" in self._splits and ("test" in self._splits or data.test_fraction == 0):
            self.train_label.setText("")
            self.train_label.setVisible(False)
            return
        val = 0.0 if "val" in self._splits else data.val_fraction
        test = 0.0 if "test" in self._splits else data.test_fraction
        train = 1.0 - val - test
        self.train_label.setVisible(True)
        if val + test >= 0.9:
            self.train_label.setText(
                f"Only {train:.0%} would be left for training; lower the shares so that at "
                "least 10% is."
            )
        else:
            self.train_label.setText(f"About {train:.0%} of each class is used for training.")

    # -- edits --------------------------------------------------------------------------------

    def _update(self, **fields: Any) -> None:
        self.state.update("data", **fields)

    def _on_val_spin_value_changed(self, value: float) -> None:
        self._update(val_fraction=round(value / 100, 4))

    def _on_test_spin_value_changed(self, value: float) -> None:
        self._update(test_fraction=round(value / 100, 4))

    def _on_seed_spin_value_changed(self, value: int) -> None:
        self._update(split_seed=value)

    def _on_min_spin_value_changed(self, value: int) -> None:
        self._update(min_per_class=value)

    def _on_state_changed(self, _config: Any) -> None:
        self._sync_from_config()

    def _sync_from_config(self) -> None:
        data = self.state.config.data
        for spin, value in (
            (self.val_spin, 100 * data.val_fraction),
            (self.test_spin, 100 * data.test_fraction),
            (self.seed_spin, data.split_seed),
            (self.min_spin, data.min_per_class),
        ):
            if spin.value() != value:
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
        self._show_train_share()
