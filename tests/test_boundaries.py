"""The layering rules, checked: core imports no Qt (ever) and no torch stack at import time."""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import studio.core

CORE_DIR = Path(studio.core.__file__).parent
NEVER_IN_CORE = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy")
HEAVY = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_source_never_imports_qt_anywhere() -> None:
    offenders = {
        str(path.relative_to(CORE_DIR)): sorted(_imported_roots(path) & set(NEVER_IN_CORE))
        for path in CORE_DIR.rglob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def _modules_loaded_by(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_all_of_core_and_the_cli_loads_no_qt_and_no_torch_stack() -> None:
    names = ["studio.cli"] + [
        f"studio.core.{info.name}" for info in pkgutil.walk_packages([str(CORE_DIR)]) if not info.ispkg
    ]
    loaded = _modules_loaded_by("\n".join(f"import {name}" for name in names))
    assert loaded & set(NEVER_IN_CORE + HEAVY) == set()


def test_the_gui_modules_do_not_import_the_torch_stack() -> None:
    loaded = _modules_loaded_by("import studio.ui.app, studio.ui.main_window")
    assert "PySide6" in loaded
    assert loaded & set(HEAVY) == set()


def test_the_started_window_loads_no_torch_stack_and_no_later_panel_libraries(tmp_path: Path) -> None:
    """What the start-up benchmark counts on: only the first panel is built before the window shows."""
    loaded = _modules_loaded_by(
        "import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        f"os.environ['DISTILL_STUDIO_HOME'] = {str(tmp_path)!r}\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from studio.ui.app import create_window\n"
        f"window = create_window(__import__('pathlib').Path({str(tmp_path / 'p')!r}))\n"
        "QApplication.processEvents(); assert window.project is not None"
    )
    assert loaded & set(HEAVY + ("pyqtgraph", "openai")) == set()


def test_the_boundary_check_would_catch_a_qt_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from PySide6.QtCore import QObject\n")
    assert "PySide6" in _imported_roots(bad)
