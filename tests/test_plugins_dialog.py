"""Help ▸ Plugins: states with badges, details and errors, enable/disable remembered, Restart now, the notice."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from studio.core.plugins import discovery, settings
from studio.core.plugins.model import DISABLED, ENABLED, ERROR, Contribution, PluginRecord
from studio.core.project import Project
from studio.ui.plugins_dialog import (
    EMPTY_TEXT, ENABLED_COLUMN, NAME, RESTART_BANNER, STATE, PluginsDialog, problem_notice, restart_argv,
)
from tests.window_support import open_window

BROKEN_ERROR = "MANIFEST in manifest.py (line 3) is not plain data (dicts, lists, strings, numbers only: it is read, never run)"


def records() -> list[PluginRecord]:
    """A good plugin, a broken one, one that failed while in use, one the user turned off."""
    return [
        PluginRecord(name="csv-format", title="CSV files", version="1.0.0", distribution="distill-studio-csv-format",
                     dist_version="1.0.0", description="Import and export CSV.", studio_versions=">=0.1,<0.2",
                     location="/site/distill_csv_format/manifest.py",
                     contributions=[Contribution("dataset_formats", "csv", "distill_csv_format.csv_format:CSV_FORMAT",
                                                 "CSV")]),
        PluginRecord(name="broken-manifest", distribution="distill-studio-broken-manifest", dist_version="0.1.0",
                     state=ERROR, error=BROKEN_ERROR),
        PluginRecord(name="raises-on-import", version="0.1.0", title="Raises on import",
                     contributions=[Contribution("dataset_formats", "tsv", "x.tsv_format:TSV_FORMAT", "TSV"),
                                    Contribution("sample_filters", "no_tabs", "x.filters:NoTabs", "No tabs")],
                     runtime_errors=["dataset format 'tsv' from raises-on-import could not be loaded: RuntimeError: boom"]),
        PluginRecord(name="sleepy", version="2.0", state=DISABLED),
    ]


@pytest.fixture(autouse=True)
def sleepy_was_turned_off() -> None:
    """The settings that go with records(): "sleepy" is DISABLED because the user turned it off."""
    settings.set_enabled("sleepy", False)


def open_dialog(qtbot, recs: list[PluginRecord] | None = None, **kwargs) -> PluginsDialog:
    dialog = PluginsDialog(records() if recs is None else recs, None, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def row_texts(dialog: PluginsDialog, row: int) -> list[str]:
    return [dialog.table.item(row, column).text() for column in range(dialog.table.columnCount())]


def test_the_table_lists_every_plugin_with_its_state_badge_and_contributions(qtbot) -> None:
    dialog = open_dialog(qtbot)
    assert dialog.table.rowCount() == 4
    assert row_texts(dialog, 0)[:4] == ["CSV files  (csv-format)", "1.0.0", "Enabled", "dataset format: csv"]
    assert row_texts(dialog, 1)[:4] == ["broken-manifest", "0.1.0", "Error", "—"]  # the distribution's version
    assert row_texts(dialog, 2)[2:4] == ["Failed on use", "dataset format: tsv; sample filter: no_tabs"]
    assert row_texts(dialog, 3)[2] == "Disabled"
    # The badge is drawn from the state, in the theme's colours (error red, not the enabled green).
    assert [dialog.table.item(r, STATE).data(Qt.ItemDataRole.UserRole + 1) for r in range(4)] == \
        [ENABLED, ERROR, "failed", DISABLED]
    image = dialog.table.viewport().grab().toImage()
    rect = dialog.table.visualItemRect(dialog.table.item(1, STATE))
    assert image.pixelColor(rect.left() + 12, rect.center().y()).name() != image.pixelColor(rect.right() - 2, rect.center().y()).name()


def test_the_details_pane_shows_the_selected_plugins_facts_and_its_error(qtbot) -> None:
    dialog = open_dialog(qtbot)
    assert dialog.current_record().name == "csv-format"
    facts = dialog.facts_label.text()
    assert "distill-studio-csv-format 1.0.0" in facts and "/site/distill_csv_format/manifest.py" in facts
    assert "dataset format" in facts and "csv" in facts and ">=0.1,<0.2" in facts.replace("&gt;", ">").replace("&lt;", "<")
    assert dialog.problem_view.isHidden() and dialog.copy_button.isHidden()
    qtbot.keyClick(dialog.table, Qt.Key.Key_Down)  # arrows move through the plugins
    assert dialog.current_record().name == "broken-manifest"
    assert dialog.problem_view.isVisible() and dialog.problem_view.toPlainText() == BROKEN_ERROR
    assert dialog.problem_view.isReadOnly()
    assert dialog.problem_view.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    dialog.select("raises-on-import")
    assert "RuntimeError: boom" in dialog.problem_view.toPlainText()
    assert dialog.problem_heading.text() == "Failed while in use this session"


def test_ctrl_c_and_copy_put_the_error_on_the_clipboard(qtbot) -> None:
    dialog = open_dialog(qtbot)
    dialog.select("broken-manifest")
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(dialog.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == BROKEN_ERROR
    dialog.select("raises-on-import")
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert "RuntimeError: boom" in QGuiApplication.clipboard().text()


def test_toggling_a_plugin_is_remembered_in_plugins_json_and_the_banner_offers_a_restart(qtbot) -> None:
    restarts: list[str] = []
    dialog = open_dialog(qtbot, restart=lambda: restarts.append("restart"))
    assert dialog.is_checked("csv-format") and not dialog.banner.isVisible()
    qtbot.keyClick(dialog.table, Qt.Key.Key_Space)  # Space toggles the current row (csv-format)
    assert not dialog.is_checked("csv-format")
    assert json.loads(settings.settings_path().read_text()) == {"disabled": ["csv-format", "sleepy"]}
    assert dialog.banner.isVisible() and dialog.banner_label.text() == RESTART_BANNER
    # A click on the checkbox works too; toggling back to what the session started with hides the banner.
    item = dialog.table.item(0, ENABLED_COLUMN)
    item.setCheckState(Qt.CheckState.Checked)
    assert settings.disabled_plugins() == {"sleepy"} and not dialog.banner.isVisible()
    qtbot.keyClick(dialog.table, Qt.Key.Key_Space)
    qtbot.mouseClick(dialog.restart_button, Qt.MouseButton.LeftButton)
    assert restarts == ["restart"] and not dialog.isVisible()
    # Opened again in the same session, before a restart: the choice is still pending, so the banner shows.
    again = open_dialog(qtbot)
    assert not again.is_checked("csv-format") and again.banner.isVisible()


def test_a_plugin_the_settings_disabled_starts_unchecked_and_esc_closes(qtbot) -> None:
    dialog = open_dialog(qtbot)
    assert not dialog.is_checked("sleepy") and dialog.is_checked("broken-manifest")
    assert not dialog.restart_button.isVisibleTo(dialog)  # no restart given: no button
    qtbot.keyClick(dialog.table, Qt.Key.Key_Escape)
    assert not dialog.isVisible()


def test_no_plugins_shows_how_to_get_one(qtbot) -> None:
    dialog = open_dialog(qtbot, [])
    assert dialog.pages.currentWidget() is dialog.empty_label and dialog.empty_label.text() == EMPTY_TEXT
    assert "plugins/README.md" in EMPTY_TEXT and "distill-studio plugins install" in EMPTY_TEXT


def test_safe_mode_says_why_nothing_loaded(qtbot, monkeypatch) -> None:
    monkeypatch.setenv(settings.SAFE_MODE_ENV, "1")
    dialog = open_dialog(qtbot)
    assert dialog.safe_mode_label.isVisible() and settings.SAFE_MODE_ENV in dialog.safe_mode_label.text()


def test_the_notice_names_broken_and_failing_plugins_but_not_ones_turned_off() -> None:
    recs = records()
    assert problem_notice(recs, set()) == ("1 plugin could not be loaded: broken-manifest; 1 failed while in use: "
                                           "raises-on-import — Help ▸ Plugins")
    assert problem_notice(recs, {"broken-manifest"}) == "1 plugin failed while in use: raises-on-import — Help ▸ Plugins"
    two = [PluginRecord(name="a", state=ERROR, error="x"), PluginRecord(name="b", state=ERROR, error="y")]
    assert problem_notice(two, set()) == "2 plugins could not be loaded: a, b — Help ▸ Plugins"
    assert problem_notice(recs[:1] + recs[3:], set()) == ""


# -- in the main window --------------------------------------------------------------------------------
@pytest.fixture
def fake_records(monkeypatch) -> list[PluginRecord]:
    """What discovery would have found, without installing anything (the window asks loaded_plugins())."""
    recs = records()
    monkeypatch.setattr(discovery, "loaded_plugins", lambda: recs)
    return recs


def test_help_plugins_opens_the_dialog_with_the_records(qtbot, tmp_path: Path, fake_records) -> None:
    window = open_window(qtbot, tmp_path)
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    plugins_action = next(a for a in help_menu.actions() if a.text() == "&Plugins…")
    plugins_action.trigger()
    dialog = window.plugins_dialog
    assert dialog.isVisible() and [r.name for r in dialog.records] == [r.name for r in fake_records]
    dialog.reject()
    window.close()


def test_at_project_open_one_notice_names_the_broken_plugin_and_opens_the_dialog(qtbot, tmp_path: Path,
                                                                              fake_records) -> None:
    window = open_window(qtbot, tmp_path)
    assert window.messages.level == "warning"
    assert window.messages.message().startswith("1 plugin could not be loaded: broken-manifest")
    assert window.messages.action_text() == "Show plugins"
    qtbot.mouseClick(window.messages.action_button, Qt.MouseButton.LeftButton)
    assert window.plugins_dialog.isVisible()
    window.plugins_dialog.reject()
    window.close()


def test_restart_now_closes_the_window_then_relaunches_on_the_same_project(qtbot, tmp_path: Path,
                                                                            fake_records) -> None:
    window = open_window(qtbot, tmp_path)
    root = window.project.root
    launched: list[list[str]] = []

    def relaunch(argv: list[str]) -> None:  # by then the project's lock is free for the new process
        with Project.open(root):
            launched.append(argv)

    window.relaunch = relaunch
    dialog = window.show_plugins("broken-manifest")
    assert dialog.current_record().name == "broken-manifest"
    qtbot.keyClick(dialog.table, Qt.Key.Key_Space)
    assert settings.disabled_plugins() == {"broken-manifest", "sleepy"}
    qtbot.mouseClick(dialog.restart_button, Qt.MouseButton.LeftButton)
    assert not window.isVisible() and window.project is None
    assert launched == [restart_argv(root)] and launched[0][1:] == ["-m", "studio", "--project", str(root)]


# -- with the four test plugins really installed (tests/plugin_fixtures, H1's with_test_plugins) ----------
def test_the_app_starts_with_the_test_plugins_installed_and_help_plugins_lists_them_all(
        qtbot, tmp_path: Path, with_test_plugins) -> None:
    import studio
    from studio.core import formats
    from studio.ui.app import create_window

    window = create_window(tmp_path / "p")  # as `distill-studio` starts it: window first, then the project
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.project is not None, timeout=10_000)
    assert window.messages.message().startswith("2 plugins could not be loaded: broken-manifest, newer-studio")
    assert window.messages.message().endswith("— Help ▸ Plugins")
    formats.registered_formats()  # uses every format: raises-on-import's tsv fails at the registry boundary
    window.messages.action_button.click()
    dialog = window.plugins_dialog
    states = {dialog.table.item(row, NAME).text(): dialog.table.item(row, STATE).text()
              for row in range(dialog.table.rowCount())}
    assert states == {
        "CSV files  (csv-format)": "Enabled",
        "broken-manifest": "Error",
        "Raises on import  (raises-on-import)": "Failed on use",
        "Needs a newer studio  (newer-studio)": "Error",
        "OpenAI Batch API  (openai-batch)": "Enabled",
        "vLLM serving  (vllm-serve)": "Enabled",
    }
    dialog.select("broken-manifest")
    assert "not plain data" in dialog.problem_view.toPlainText()
    dialog.select("newer-studio")
    assert ">=99" in dialog.problem_view.toPlainText() and studio.__version__ in dialog.problem_view.toPlainText()
    dialog.select("raises-on-import")
    assert "RuntimeError" in dialog.problem_view.toPlainText()
    dialog.reject()
    window.close()


def test_a_plugin_disabled_in_the_dialog_is_not_imported_at_the_next_start(qtbot, with_test_plugins) -> None:
    import sys

    from studio.core import registry
    from studio.core.plugins.discovery import load_plugins, loaded_plugins
    from tests.plugin_support import forget_modules

    dialog = open_dialog(qtbot, loaded_plugins())
    dialog.select("csv-format")
    qtbot.keyClick(dialog.table, Qt.Key.Key_Space)
    assert "csv-format" in settings.disabled_plugins() and dialog.banner.isVisible()
    forget_modules()
    records = {r.name: r for r in load_plugins(reload=True)}  # what the next start finds
    assert records["csv-format"].state == DISABLED and "csv" not in registry.DATASET_FORMATS
    assert "distill_csv_format" not in sys.modules
    again = open_dialog(qtbot, loaded_plugins())
    assert not again.is_checked("csv-format") and not again.banner.isVisible()
    assert again.table.item(next(i for i, r in enumerate(again.records) if r.name == "csv-format"), STATE).text() == "Disabled"
