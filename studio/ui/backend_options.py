"""A generation backend's own settings as widgets, built from its entry's ``options`` meta.

The meta is plain data from the plugin's manifest (``{"key", "title", "help", "type",
"default", "choices", "min", "max"}``), so showing a backend's settings never imports its
code: choice → combo box, int/float → spin box within min/max, bool → check box, each with
its help as tooltip. The rows go into the panel's own form (aligned with its other settings).
A malformed option is shown as a line naming it instead of breaking the panel.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox, QWidget

INT_LIMIT = 2_147_483_647  # QSpinBox's range
FLOAT_LIMIT = 1e12


class BackendOptionsForm(QObject):
    """Rows for one backend's options in ``form`` from row ``row`` on; ``values()`` is ``RunConfig.backend_options``."""

    changed = Signal()

    def __init__(self, form: QFormLayout, row: int, parent: QObject | None = None):
        super().__init__(parent)
        self._form = form
        self._row = row
        self._rows = 0  # rows of ours in the form now
        self._widgets: dict[str, tuple[str, QWidget]] = {}  # key -> (type, widget)

    def set_options(self, options: Sequence[Mapping[str, Any]], values: Mapping[str, Any] | None = None) -> None:
        """Replace the rows with ``options`` (an entry's meta), showing ``values`` over the defaults."""
        for _ in range(self._rows):
            self._form.removeRow(self._row)
        self._rows = 0
        self._widgets.clear()
        values = values or {}
        for option in options:
            key = str(option.get("key", ""))
            kind = str(option.get("type", ""))
            title = str(option.get("title") or key)
            help_text = str(option.get("help", ""))
            try:
                widget = self._widget(kind, option, values.get(key, option.get("default")))
            except (TypeError, ValueError) as exc:
                self._add(title, QLabel(f"cannot show option {key!r}: {exc}", wordWrap=True))
                continue
            widget.setToolTip(help_text)
            widget.setObjectName(f"backend-option-{key}")
            self._widgets[key] = (kind, widget)
            self._add(None if kind == "bool" else QLabel(title, toolTip=help_text), widget)

    def _add(self, label: QLabel | str | None, widget: QWidget) -> None:
        row = self._row + self._rows
        if label is None:
            self._form.insertRow(row, widget)
        else:
            if isinstance(label, QLabel):
                label.setBuddy(widget)
            self._form.insertRow(row, label, widget)
        self._rows += 1

    def _widget(self, kind: str, option: Mapping[str, Any], value: Any) -> QWidget:
        if kind == "choice":  # a long label elides instead of widening the settings column
            combo = QComboBox(minimumContentsLength=14,
                              sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            for pair in option.get("choices", ()):
                choice, label = pair
                combo.addItem(str(label), choice)
            index = combo.findData(value)
            combo.setCurrentIndex(max(0, index))
            combo.currentIndexChanged.connect(self.changed)
            return combo
        if kind == "int":
            spin = QSpinBox(minimum=int(option.get("min", 0)), maximum=int(option.get("max", INT_LIMIT)))
            spin.setValue(int(value if value is not None else spin.minimum()))
            spin.valueChanged.connect(self.changed)
            return spin
        if kind == "float":
            dspin = QDoubleSpinBox(minimum=float(option.get("min", 0.0)), maximum=float(option.get("max", FLOAT_LIMIT)),
                                   decimals=int(option.get("decimals", 2)))
            dspin.setValue(float(value if value is not None else dspin.minimum()))
            dspin.valueChanged.connect(self.changed)
            return dspin
        if kind == "bool":
            check = QCheckBox(str(option.get("title") or option.get("key", "")), checked=bool(value))
            check.toggled.connect(self.changed)
            return check
        raise ValueError(f"unknown type {kind!r} (choice, int, float or bool)")

    def widget(self, key: str) -> QWidget:
        return self._widgets[key][1]

    def keys(self) -> list[str]:
        return list(self._widgets)

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (kind, widget) in self._widgets.items():
            if kind == "choice":
                out[key] = widget.currentData()  # type: ignore[attr-defined]
            elif kind in ("int", "float"):
                out[key] = widget.value()  # type: ignore[attr-defined]
            else:
                out[key] = widget.isChecked()  # type: ignore[attr-defined]
        return out
