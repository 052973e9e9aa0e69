"""QA of the plugin features as a user meets them in the window (issue 12, round 2)."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from studio.core.plugins.boundary import failures
from studio.ui.main_window import MainWindow


def test_a_new_project_imports_no_plugin_format_and_blames_none(qtbot, tmp_path: Path, with_test_plugins) -> None:
    # File ▸ New Project reads the shipped seed tasks on the GUI thread: it must not sniff through every
    # plugin's format (importing their code there), nor mark raises-on-import "failed on use" unused.
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    assert window.open_project(tmp_path / "p", create_if_missing=True)
    assert window.project.seeds.count() > 0
    assert "distill_raises_on_import.tsv_format" not in sys.modules
    assert "distill_csv_format.csv_format" not in sys.modules
    assert failures("raises-on-import") == []
    window.close()


def test_tab_leaves_the_plugin_list_so_the_buttons_are_reachable_by_keyboard(qtbot, with_test_plugins) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QPushButton

    from studio.core.plugins.discovery import loaded_plugins
    from studio.ui.plugins_dialog import PluginsDialog

    dialog = PluginsDialog(loaded_plugins(), restart=lambda: None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    dialog.table.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is dialog.table)
    seen = []
    for _ in range(6):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        widget = QApplication.focusWidget()
        seen.append(widget.text() if isinstance(widget, QPushButton) else type(widget).__name__)
    assert "Close" in seen and "Copy" in seen
