"""Where things live: user directories (platformdirs) and the shipped resources."""
from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "distill-studio"
HOME_ENV = "DISTILL_STUDIO_HOME"


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value) if value else None


def data_dir() -> Path:
    """User data folder; ``DISTILL_STUDIO_HOME`` redirects it (tests, portable installs)."""
    override = _home_override()
    if override is not None:
        return override / "data"
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def config_dir() -> Path:
    override = _home_override()
    if override is not None:
        return override / "config"
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False)


def default_project_dir() -> Path:
    return data_dir() / "projects" / "default"


def resources_dir() -> Path:
    """The ``resources/`` folder: inside the wheel as ``studio/resources``, else the repo root."""
    packaged = Path(__file__).resolve().parents[1] / "resources"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "resources"


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
