"""The app's own settings file: one ini in the user config folder, for the window and every panel.

A module of its own so that panels can reach it without importing the application (``studio.ui.app``
imports the main window, which imports the panels). ``DISTILL_STUDIO_HOME`` redirects it in tests.
"""
from __future__ import annotations

from PySide6.QtCore import QSettings

from studio.core.paths import config_dir


def settings() -> QSettings:
    path = config_dir() / "settings.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)
