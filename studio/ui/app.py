"""Starting the GUI: window first, then the project, so the user sees the app at once."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from studio.ui import theme
from studio.ui.app_settings import settings
from studio.ui.main_window import MainWindow, startup_probe

STARTUP_PROBE_ENV = "DISTILL_STUDIO_STARTUP_PROBE"


def create_window(project_dir: Path | None = None) -> MainWindow:
    from studio.core.plugins.discovery import load_plugins

    load_plugins()  # data only (manifests): the panels and choices of enabled plugins, no plugin code
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Distill Studio")
    app.setOrganizationName("Distill Studio")
    app.setWindowIcon(theme.icon("app.svg"))
    store = settings()
    theme.apply_theme(app, str(store.value("theme", "system")))
    window = MainWindow(store)
    window.show()
    # The project opens on the first turn of the event loop, after the window is up.
    QTimer.singleShot(0, lambda: window.open_initial_project(project_dir))
    return window


def run_app(project_dir: Path | None = None) -> int:
    window = create_window(project_dir)
    if os.environ.get(STARTUP_PROBE_ENV):
        startup_probe()
    return QApplication.instance().exec() if window else 1
