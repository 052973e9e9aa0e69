"""The main window on a new project, as the window tests open it (settings in the test's own folder)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from studio.ui.main_window import MainWindow


def open_window(qtbot, tmp_path: Path) -> MainWindow:
    """A shown MainWindow with ``tmp_path/p`` created and open; qtbot closes it after the test."""
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    window.show()
    return window
