"""Plugins in the window: their panels (or a placeholder naming the plugin), their formats in the file dialogs.

The entries are registered in this process with a plugin's name as ``source``, exactly as
discovery registers an installed plugin's manifest.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLabel, QVBoxLayout

from studio.core import exports, formats, registry
from studio.core.curation import SampleQuery
from studio.core.formats import DatasetFormat, FormatError, Record
from studio.core.plugins.boundary import clear_failures, failures
from studio.core.samples import Sample, Status
from studio.ui.main_window import MainWindow
from studio.ui.panels import Panel, PluginErrorPanel
from tests.window_support import open_window

PLUGIN = "panel-plugin"
BUILT_IN_PANELS = ["seeds", "generate", "curate", "train", "chat", "evaluate"]


# -- what a plugin would ship ---------------------------------------------------------------------------
class HelloPanel(Panel):
    """A working plugin panel: it counts the seed tasks of the open project."""

    def __init__(self, parent=None, *, jobs=None, messages=None):
        super().__init__(parent, jobs=jobs, messages=messages)
        self.label = QLabel("no project")
        QVBoxLayout(self).addWidget(self.label)

    def set_context(self, context) -> None:
        super().set_context(context)
        self.label.setText(f"{self.project.seeds.count()} seed tasks" if self.project else "no project")


class RaisingPanel(Panel):
    def __init__(self, parent=None, *, jobs=None, messages=None):
        super().__init__(parent, jobs=jobs, messages=messages)
        raise ZeroDivisionError("the plugin divided by zero")


class BadContextPanel(Panel):
    def set_context(self, context) -> None:
        raise KeyError("no such setting")


NOT_A_PANEL = object()


def _sniff_csv(path: Path, text: str) -> bool:
    return path.suffix.lower() == ".csv"


def _read_csv(path: Path, text: str) -> list[Record]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "instruction" not in rows[0]:
        raise FormatError(path, "expected a header row instruction,input,output")
    return [Record(r["instruction"], r.get("input") or "", r.get("output") or "") for r in rows]


def _write_csv(path: Path, records: list[Record]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["instruction", "input", "output"])
    writer.writerows(records)
    formats.atomic_write_text(path, out.getvalue())


CSV_FORMAT = DatasetFormat(key="csv", title="CSV", extensions=(".csv",), sniff=_sniff_csv, read_samples=_read_csv,
                           write_samples=_write_csv, shape="instruction, input, output (CSV header)")


@pytest.fixture
def plugin_entries() -> Iterator[None]:
    """Registers entries as PLUGIN; removes them (and the failures they left) after the test."""
    yield
    for point in registry.ALL.values():
        point.unregister_source(PLUGIN)
    clear_failures()


def add_panel(key: str, cls_name: str, title: str) -> None:
    registry.PANELS.register(key, f"{__name__}:{cls_name}", title=title, source=PLUGIN, icon="app.svg")


def nav_titles(window: MainWindow) -> list[str]:
    return [window.nav.item(row).text() for row in range(window.nav.count())]


# -- panels -----------------------------------------------------------------------------------------------
def test_a_plugin_panel_shows_after_the_built_ins_and_gets_the_project(qtbot, tmp_path: Path, plugin_entries) -> None:
    add_panel("hello", "HelloPanel", "Hello")
    window = open_window(qtbot, tmp_path)
    assert [spec.key for spec in window.specs] == [*BUILT_IN_PANELS, "hello"]
    assert nav_titles(window)[-1] == "Hello" and PLUGIN in window.nav.item(6).toolTip()
    panel = window.show_panel("hello")
    assert isinstance(panel, HelloPanel) and window.stack.currentWidget() is panel
    assert panel.label.text() == f"{window.project.seeds.count()} seed tasks"
    view_menu = window.view_menu.actions()
    assert [a.text() for a in view_menu][:7][-1] == "Hello" and view_menu[6].shortcut().toString() == "Ctrl+7"
    window.close()


@pytest.mark.parametrize(("cls_name", "expected"), [
    ("RaisingPanel", "ZeroDivisionError: the plugin divided by zero"),
    ("NoSuchPanel", "has no attribute 'NoSuchPanel'"),
    ("NOT_A_PANEL", "is not a studio.ui.panels.Panel subclass"),
])
def test_a_plugin_panel_that_fails_to_build_shows_a_placeholder_and_the_rest_works(
        qtbot, tmp_path: Path, plugin_entries, cls_name: str, expected: str) -> None:
    add_panel("broken", cls_name, "Broken page")
    window = open_window(qtbot, tmp_path)
    page = window.show_panel("broken")
    assert isinstance(page, PluginErrorPanel) and window.stack.currentWidget() is page
    assert expected in page.error_view.toPlainText() and PLUGIN in page.error_view.toPlainText()
    assert page.error_view.isReadOnly()
    assert any(PLUGIN in label.text() and "Broken page" in label.text() for label in page.findChildren(QLabel))
    assert any(expected in message for message in failures(PLUGIN))  # Help ▸ Plugins shows it as failed on use
    seeds = window.show_panel("seeds")  # the rest of the window works
    assert window.stack.currentWidget() is seeds
    window.show_panel("broken")
    page.plugins_button.click()  # the placeholder leads to Help ▸ Plugins
    assert window.plugins_dialog is not None and window.plugins_dialog.isVisible()
    window.plugins_dialog.reject()
    window.close()


def test_a_plugin_panel_that_raises_in_a_hook_is_named_in_the_message_area(qtbot, tmp_path: Path,
                                                                         plugin_entries) -> None:
    add_panel("touchy", "BadContextPanel", "Touchy")
    window = open_window(qtbot, tmp_path)
    window.show_panel("touchy")  # set_context on first visit raises: caught at the boundary
    assert window.messages.is_shown() and PLUGIN in window.messages.message()
    assert "KeyError" in window.messages.message() and "set_context" in window.messages.message()
    window.close_project()  # and again on close, without breaking the close
    assert window.open_project(tmp_path / "p")
    window.close()
    assert window.project is None


# -- formats in the file dialogs ---------------------------------------------------------------------------
def import_csv_seeds(qtbot, tmp_path: Path, monkeypatch) -> tuple[MainWindow, Path, list[str], int]:
    """File ▸ Import Seed Tasks… of a two-task tasks.csv, as the menu runs it: the window, the file, the
    file dialog filters offered, and the seed count before."""
    data = tmp_path / "tasks.csv"
    data.write_text("instruction,input,output\nName a colour.,,Blue\nAdd the numbers.,2 and 3,5\n")
    offered: list[str] = []

    def get_open(_parent, _title, _start, filters):
        offered.append(filters)
        return str(data), ""

    window = open_window(qtbot, tmp_path)
    before = window.project.seeds.count()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", get_open)
    window.import_seeds()
    return window, data, offered, before


def test_a_plugin_format_is_offered_by_import_and_export_and_the_import_reads_it(qtbot, tmp_path: Path,
                                                                              plugin_entries, monkeypatch) -> None:
    registry.DATASET_FORMATS.register("csv", f"{__name__}:CSV_FORMAT", title="CSV", source=PLUGIN)
    window, data, offered, before = import_csv_seeds(qtbot, tmp_path, monkeypatch)
    assert "CSV (*.csv)" in offered[0] and "*.csv" in offered[0].split(";;")[0]  # in "All supported files" too
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 2, timeout=5000)
    assert {s.instruction for s in window.project.seeds.list()} >= {"Name a colour.", "Add the numbers."}

    out = tmp_path / "out.csv"

    def get_save(_parent, _title, _start, filters):
        offered.append(filters)
        return str(out), "CSV (*.csv)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", get_save)
    window.export_samples()  # File ▸ Export Samples…
    assert "CSV (*.csv)" in offered[1]
    window.import_samples_from(data)
    qtbot.waitUntil(lambda: window.project.samples.count() == 2, timeout=5000)
    window.export_samples()
    qtbot.waitUntil(lambda: out.exists() and "Blue" in out.read_text(), timeout=5000)
    assert out.read_text().splitlines()[0] == "instruction,input,output"
    window.close()


def test_the_file_dialogs_offer_an_installed_plugins_format_without_importing_it(qtbot, tmp_path: Path,
                                                                              with_test_plugins, monkeypatch) -> None:
    # good-csv declares "extensions" in its manifest: the filters come from that data, on the GUI thread.
    import sys

    offered: list[str] = []

    def cancelled(_parent, _title, _start, filters):
        offered.append(filters)
        return "", ""

    window = open_window(qtbot, tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", cancelled)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", cancelled)
    window.import_seeds()
    window.import_samples()
    window.export_seeds()
    window.export_samples()
    assert len(offered) == 4 and all("CSV (*.csv)" in f for f in offered)
    assert "*.csv" in offered[0].split(";;")[0]  # in "All supported files" too
    assert formats.format_for_filter("CSV (*.csv)") == "csv"
    assert formats.format_for_path("out.csv", formats.SAMPLES) == "csv"
    assert "distill_csv_format" not in sys.modules and "distill_csv_format.csv_format" not in sys.modules
    window.close()


def test_a_plugin_format_whose_reader_raises_fails_the_import_naming_the_plugin(qtbot, tmp_path: Path,
                                                                             plugin_entries) -> None:
    registry.DATASET_FORMATS.register("csv", f"{__name__}:BROKEN_CSV_FORMAT", title="CSV", source=PLUGIN)
    data = tmp_path / "tasks.csv"
    data.write_text("instruction,input,output\nName a colour.,,Blue\n")
    window = open_window(qtbot, tmp_path)
    before = window.project.seeds.count()
    window.import_seeds_from(data)
    qtbot.waitUntil(window.messages.is_shown, timeout=5000)
    assert "Importing seed tasks failed" in window.messages.message()
    assert PLUGIN in window.messages.message() and "ZeroDivisionError" in window.messages.message()
    assert window.project.seeds.count() == before
    window.close()


def _read_broken(path: Path, text: str) -> list[Record]:
    return [Record("x", "", str(1 / 0))]


BROKEN_CSV_FORMAT = DatasetFormat(key="csv", title="CSV", extensions=(".csv",), sniff=_sniff_csv,
                                  read_samples=_read_broken)


def test_the_about_box_lists_only_the_built_in_panels(qtbot, tmp_path: Path, plugin_entries, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    add_panel("hello", "HelloPanel", "Hello")
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda _parent, _title, text: shown.append(text))
    window = open_window(qtbot, tmp_path)
    window.show_about()
    assert "Seeds, Generate, Curate, Train, Chat, Evaluate —" in shown[0] and "Hello" not in shown[0]
    window.close()


CSV_EXPORTER = exports.format_exporter("csv", "CSV", (".csv",))


def test_a_plugin_exporter_is_offered_by_the_snapshot_export_with_its_file_filter(
        qtbot, tmp_path: Path, plugin_entries, monkeypatch) -> None:
    from studio.ui.snapshot_dialog import SnapshotDialog

    registry.DATASET_FORMATS.register("csv", f"{__name__}:CSV_FORMAT", title="CSV", source=PLUGIN)
    registry.DATASET_EXPORTERS.register("csv", f"{__name__}:CSV_EXPORTER", title="CSV table", source=PLUGIN,
                                        help="One row per sample.")
    window = open_window(qtbot, tmp_path)
    project = window.project
    project.samples.add(Sample("Name a colour.", output="Blue", status=Status.ACCEPTED))
    project.snapshots.create("v1")
    dialog = SnapshotDialog(window.context, window.jobs, SampleQuery())
    qtbot.addWidget(dialog)
    labels = [dialog.format.itemText(i) for i in range(dialog.format.count())]
    assert labels[0] == "Alpaca JSON" and labels[-1] == "CSV table"
    assert PLUGIN in dialog.format.itemData(dialog.format.count() - 1, Qt.ItemDataRole.ToolTipRole)
    dialog.format.setCurrentIndex(dialog.format.count() - 1)
    dialog.table.setCurrentCell(0, 0)
    asked: list[tuple[str, str]] = []
    target = tmp_path / "v1.csv"

    def get_save(_parent, _title, start, filters):
        asked.append((start, filters))
        return str(target), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", get_save)
    dialog._on_export_clicked()
    assert asked[0][1] == "CSV table (*.csv);;All files (*)" and asked[0][0].endswith("v1.csv")
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Exported"), timeout=10_000)
    assert target.read_text().splitlines() == ["instruction,input,output", "Name a colour.,,Blue"]
    dialog.close()
    window.close()


# -- with the four test plugins really installed (tests/plugin_fixtures, H1's with_test_plugins) ----------
def test_the_installed_csv_plugin_is_offered_by_file_import_and_imports_through_the_seeds_panel(
        qtbot, tmp_path: Path, with_test_plugins, monkeypatch) -> None:
    import sys

    window, data, offered, before = import_csv_seeds(qtbot, tmp_path, monkeypatch)
    assert "CSV (*.csv)" in offered[0].split(";;")
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 2, timeout=5000)
    assert "distill_csv_format.csv_format" in sys.modules  # imported on first use, by the import
    seeds = window.panel("seeds")
    qtbot.waitUntil(lambda: seeds.model.rowCount() == before + 2, timeout=5000)  # the panel shows them
    window.close()
