"""The training settings as a form, generated from :class:`TrainSettings`' own field metadata.

One editor per setting, grouped as ``setting_groups()`` says, each with the setting's help as
its tooltip — the same sentence ``train start --help`` prints and ``config.json`` saves — so
adding a setting to the dataclass adds it here with no edit. Values go back through
``TrainSettings.from_dict``, so the form accepts exactly what the CLI and the job accept.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLineEdit, QSpinBox, QVBoxLayout, QWidget,
)

from studio.core.training.settings import ALL_LINEAR, TrainSettings, setting_groups, setting_meta

INT_MAX = 2_000_000_000


class FloatBox(QDoubleSpinBox):
    """A float editor that shows 2e-4 as ``0.0002``, not rounded to the spin box's fixed decimals."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(10)
        self.setRange(-1e12, 1e12)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt's name
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt's name
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: ANN201 - Qt's signature
        from PySide6.QtGui import QValidator

        stripped = text.strip().replace(",", ".")
        if not stripped or stripped in ("-", ".", "e", "-.") or stripped.endswith(("e", "e-", "E", "E-")):
            return QValidator.State.Intermediate, text, pos
        try:
            float(stripped)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Acceptable, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt's name
        value = self.value()
        self.setValue(value * (1.5 ** steps) if value > 0 else value + steps * 0.01)


_WORDS = {"lora": "LoRA", "lr": "LR", "cpu": "CPU", "4bit": "4-bit", "num": ""}


def setting_label(name: str) -> str:
    """A setting's name as words for the form ("lora_r" → "LoRA r"); the name itself is in the tooltip."""
    words = [_WORDS.get(word, word) for word in name.split("_")]
    text = " ".join(word for word in words if word)
    return text[:1].upper() + text[1:]


class SettingsForm(QWidget):
    """Edits one :class:`TrainSettings`; ``changed`` fires on every edit by the user."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.editors: dict[str, QWidget] = {}
        self.groups: dict[str, QGroupBox] = {}
        self._loading = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for group, names in setting_groups().items():
            box = QGroupBox(group)
            form = QFormLayout(box)
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            for name in names:
                editor = self._editor(name)
                tip = f"{setting_meta(name)['help']}\n\nSetting name: {name} (train start --set {name}=…)"
                editor.setToolTip(tip)
                editor.setObjectName(f"setting_{name}")
                self.editors[name] = editor
                form.addRow(setting_label(name), editor)
                label = form.labelForField(editor)
                if label is not None:
                    label.setToolTip(tip)
            self.groups[group] = box
            layout.addWidget(box)
        self.set_settings(TrainSettings())

    def _editor(self, name: str) -> QWidget:
        meta = setting_meta(name)
        default = meta["default"]
        if name == "trainer":
            return self._trainer_combo()
        if meta.get("choices"):
            combo = QComboBox()
            for choice in meta["choices"]:
                combo.addItem(choice, choice)
            combo.currentIndexChanged.connect(self._on_edit)
            return combo
        if isinstance(default, bool):
            box = QCheckBox()
            box.toggled.connect(self._on_edit)
            return box
        if isinstance(default, int):
            spin = QSpinBox()
            spin.setRange(int(meta["min"]) if meta.get("min") is not None else -INT_MAX,
                          int(meta["max"]) if meta.get("max") is not None else INT_MAX)
            spin.valueChanged.connect(self._on_edit)
            return spin
        if isinstance(default, float):
            box = FloatBox()
            if meta.get("min") is not None:
                box.setMinimum(float(meta["min"]))
            if meta.get("max") is not None:
                box.setMaximum(float(meta["max"]))
            box.valueChanged.connect(self._on_edit)
            return box
        line = QLineEdit()
        if name == "target_modules":
            line.setPlaceholderText(f"{ALL_LINEAR} or q_proj,v_proj")
        line.textEdited.connect(self._on_edit)
        return line

    def _trainer_combo(self) -> QComboBox:
        """The registered trainers (``registry.TRAINERS``: plain data, no plugin imported), by title."""
        from studio.core.registry import TRAINERS

        combo = QComboBox()
        for entry in TRAINERS:
            combo.addItem(entry.label, entry.key)
            combo.setItemData(combo.count() - 1, entry.help or entry.key, Qt.ItemDataRole.ToolTipRole)
        self._trainers = combo.count()
        combo.setEnabled(combo.count() > 1)  # the built-in trainer only: nothing to choose until a plugin adds one
        combo.currentIndexChanged.connect(self._on_edit)
        return combo

    def _on_edit(self, *_args: Any) -> None:
        if not self._loading:
            self.changed.emit()

    # -- values ---------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """What the editors hold, as plain values (not yet validated)."""
        values: dict[str, Any] = {}
        for name, editor in self.editors.items():
            if isinstance(editor, QComboBox):
                data = editor.currentData()
                values[name] = editor.currentText() if data is None else data
            elif isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                values[name] = editor.value()
            else:
                text = editor.text().strip()
                if name == "target_modules":
                    values[name] = text if text in ("", ALL_LINEAR) else [p.strip() for p in text.split(",") if p.strip()]
                else:
                    values[name] = text
        return values

    def settings(self) -> TrainSettings:
        """The form as settings; raises SettingsError naming the first bad one."""
        return TrainSettings.from_dict(self.values())

    def set_settings(self, settings: TrainSettings) -> None:
        self._loading = True
        try:
            for name, value in settings.to_dict().items():
                editor = self.editors[name]
                if isinstance(editor, QComboBox):
                    if name == "trainer":
                        while editor.count() > self._trainers:  # the last stored run's unknown trainer
                            editor.removeItem(editor.count() - 1)
                        editor.setEnabled(self._trainers > 1)
                    index = editor.findData(str(value))
                    if index < 0 and name == "trainer":  # a stored trainer no plugin provides now: shown, and
                        editor.addItem(f"{value} (not installed)", str(value))  # refused when the run starts
                        editor.setEnabled(True)
                        index = editor.count() - 1
                    editor.setCurrentIndex(max(0, index))
                elif isinstance(editor, QCheckBox):
                    editor.setChecked(bool(value))
                elif isinstance(editor, QSpinBox):
                    editor.setValue(int(value))
                elif isinstance(editor, QDoubleSpinBox):
                    editor.setValue(float(value))
                else:
                    editor.setText(",".join(value) if isinstance(value, list) else str(value))
        finally:
            self._loading = False
