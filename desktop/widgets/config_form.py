"""Form widgets built from RunConfig field metadata: ranges and tooltips come from the config."""

from __future__ import annotations

import bisect
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.state import ConfigState
from engine import RunConfig, field_help

_NICE = sorted(m * 10.0**e for e in range(-8, 3) for m in (1, 2, 3, 5))


@dataclass(frozen=True)
class FieldSpec:
    """One editable field: ``section`` is a RunConfig section name, or "" for top-level fields."""

    section: str
    name: str
    label: str
    decimals: int = 3
    step: float | None = None
    scientific: bool = False  # learning rates: typed as 3e-4, stepped along 1-2-3-5
    special_text: str = ""  # shown instead of the minimum value (e.g. "off" for 0)

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name


class ScientificSpinBox(QDoubleSpinBox):
    """A spin box for values spanning decades: shows 0.0003 as 3e-04, steps 1 → 2 → 3 → 5 → 10."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)

    def textFromValue(self, value: float) -> str:
        return f"{value:.3g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        index = bisect.bisect_left(_NICE, self.value() * (1 - 1e-9))
        on_grid = index < len(_NICE) and abs(_NICE[index] - self.value()) <= 1e-9 * _NICE[index]
        if steps < 0 and not on_grid:
            steps += 1  # between two nice values, one step down lands on the lower one
        index = min(max(index + steps, 0), len(_NICE) - 1)
        self.setValue(min(max(_NICE[index], self.minimum()), self.maximum()))


def field_type(section: str, name: str) -> Any:
    """The annotated type of a RunConfig field (``int``, ``float``, ``bool``, a StrEnum…)."""
    cls = _section_class(section)
    return typing.get_type_hints(cls)[name]


def _section_class(section: str) -> type:
    return typing.get_type_hints(RunConfig)[section] if section else RunConfig


def make_editor(spec: FieldSpec) -> QWidget:
    """A spin box, combo box or check box for one field, with its range and tooltip."""
    tp = field_type(spec.section, spec.name)
    meta = field_help(_section_class(spec.section), spec.name)
    widget: QWidget
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        widget = QComboBox()
        for member in tp:
            widget.addItem(member.value, member)
    elif tp is bool:
        widget = QCheckBox()
    elif tp is int:
        widget = QSpinBox()
        widget.setRange(int(meta.get("min", 0)), int(meta.get("max", 2**31 - 1)))
    elif tp is float:
        widget = ScientificSpinBox() if spec.scientific else QDoubleSpinBox()
        if not spec.scientific:
            widget.setDecimals(spec.decimals)
        widget.setRange(float(meta.get("min", 0.0)), float(meta.get("max", 1e9)))
        if spec.step is not None:
            widget.setSingleStep(spec.step)
    else:
        raise TypeError(f"No editor for {spec.key} of type {tp!r}")
    if isinstance(widget, QSpinBox | QDoubleSpinBox):
        widget.setKeyboardTracking(False)  # commit on Enter or focus change, not per keystroke
        widget.setSpecialValueText(spec.special_text)
        widget.setAlignment(Qt.AlignmentFlag.AlignRight)
    widget.setToolTip(_tooltip(meta))
    widget.setProperty("fieldHelp", _tooltip(meta))  # kept for when a page overrides the tip
    widget.setObjectName(_object_name(spec))
    return widget


def _tooltip(meta: dict[str, Any]) -> str:
    text = str(meta.get("help", ""))
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        text += f"\nAllowed: {lo:g} to {hi:g}."
    elif lo is not None:
        text += f"\nAt least {lo:g}."
    return text


def _object_name(spec: FieldSpec) -> str:
    parts = [p for p in (spec.section, *spec.name.split("_")) if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + "Edit"


def editor_value(widget: QWidget) -> Any:
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    return widget.value()  # type: ignore[attr-defined]


def set_editor_value(widget: QWidget, value: Any) -> None:
    """Show ``value`` without emitting change signals (no edit → state → edit loop)."""
    if editor_value(widget) == value:
        return  # leaves the cursor alone while the user is typing
    blocked = widget.blockSignals(True)
    try:
        if isinstance(widget, QComboBox):
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        else:
            widget.setValue(value)  # type: ignore[attr-defined]
    finally:
        widget.blockSignals(blocked)


class ConfigForm(QWidget):
    """A form of config fields bound to a ConfigState in both directions."""

    def __init__(
        self, state: ConfigState, specs: list[FieldSpec], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.specs = specs
        self.editors: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in specs:
            editor = make_editor(spec)
            self.editors[spec.key] = editor
            layout.addRow(spec.label, editor)
            _change_signal(editor).connect(lambda *_, s=spec: self._on_editor_changed(s))
        self.load(state.config)
        state.changed.connect(self._on_state_changed)

    def load(self, config: RunConfig) -> None:
        """Show the values of ``config``."""
        for spec in self.specs:
            holder = getattr(config, spec.section) if spec.section else config
            set_editor_value(self.editors[spec.key], getattr(holder, spec.name))

    def _on_state_changed(self, config: RunConfig) -> None:
        self.load(config)

    def _on_editor_changed(self, spec: FieldSpec) -> None:
        value = editor_value(self.editors[spec.key])
        if spec.section:
            self.state.update(spec.section, **{spec.name: value})
        else:
            self.state.update_top(**{spec.name: value})


def _change_signal(widget: QWidget) -> Any:
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QCheckBox):
        return widget.toggled
    return widget.valueChanged  # type: ignore[attr-defined]


class CollapsibleSection(QWidget):
    """A titled section whose body folds away (for settings most people leave alone)."""

    def __init__(self, title: str, body: QWidget, *, expanded: bool = False) -> None:
        super().__init__()
        self.body = body
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setAutoRaise(True)
        self.toggle.toggled.connect(self._on_toggle_toggled)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(body)
        self.toggle.setChecked(expanded)
        self._on_toggle_toggled(expanded)

    def _on_toggle_toggled(self, expanded: bool) -> None:
        arrow = Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow
        self.toggle.setArrowType(arrow)
        self.body.setVisible(expanded)


__all__ = [
    "CollapsibleSection",
    "ConfigForm",
    "FieldSpec",
    "ScientificSpinBox",
    "make_editor",
]
