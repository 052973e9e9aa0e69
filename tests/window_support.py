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


def open_batch_panel(qtbot, tmp_path: Path, size: tuple[int, int]):
    """The installed plugins loaded, the Generate panel shown with ``openai-batch`` chosen, the window at size."""
    from studio.core.plugins.discovery import load_plugins

    load_plugins()
    window = open_window(qtbot, tmp_path)
    panel = window.show_panel("generate")
    panel.backend.setCurrentIndex(panel.backend.findData("openai-batch"))
    window.resize(*size)
    qtbot.waitUntil(lambda: panel.width() > 0 and window.width() == size[0], timeout=5_000)
    qtbot.wait(50)
    return window, panel
