"""QA of the plugin features as a user meets them in the window (issue 12, round 2)."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from studio.core.plugins.boundary import failures
from studio.ui.main_window import MainWindow
from tests.window_support import open_batch_panel


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


def test_start_and_stop_stay_in_view_with_the_batch_options_at_1280x800(qtbot, tmp_path: Path) -> None:
    # The batch backend adds four option rows: the run buttons must not scroll below the fold.
    window, panel = open_batch_panel(qtbot, tmp_path, (1280, 770))
    for button in (panel.start_button, panel.pause_button, panel.stop_button):
        assert not button.visibleRegion().isEmpty(), button.text()
    window.close()


def _start_a_held_batch(qtbot, tmp_path: Path, api):
    """The Generate panel started on a 30-sample batch run that the fake holds in ``validating``."""
    window, panel = open_batch_panel(qtbot, tmp_path, (1280, 770))
    panel.base_url.setText(api.base_url)
    panel.model.setCurrentText("gpt-4o-mini")
    panel.backend_options.widget("poll_s").setValue(0.02)
    panel.backend_options.widget("collect_s").setValue(0.05)
    panel.target.setValue(30)
    api.hold.set()
    panel.start_button.click()
    qtbot.waitUntil(lambda: "validating" in panel.backend_box.text.text(), timeout=20_000)
    return window, panel


def test_a_batch_run_waiting_for_its_first_answers_does_not_say_no_run_yet(qtbot, tmp_path: Path,
                                                                           monkeypatch) -> None:
    from fake_batch_api import FakeBatchAPI

    with FakeBatchAPI(models=("gpt-4o-mini",)) as api:
        monkeypatch.setenv("OPENAI_API_KEY", api.api_key)
        window, panel = _start_a_held_batch(qtbot, tmp_path, api)  # validating: no answer, no progress yet
        assert "No run yet" not in panel.progress.text()
        assert panel.progress.text() == "0 / 30 kept"
        panel.ask_how_to_stop = lambda provider: "keep"
        panel.stop_button.click()
        qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
        qtbot.waitUntil(lambda: panel.resume_button.text().startswith("Collect run"), timeout=5_000)
        assert "button below" in panel.eta.text()
        assert not panel.resume_button.visibleRegion().isEmpty()  # the button below is in view
        window.close()


def test_a_file_of_a_broken_plugins_format_fails_naming_the_plugin_and_the_app_goes_on(
        qtbot, tmp_path: Path, with_test_plugins) -> None:
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.open_project(tmp_path / "p", create_if_missing=True)
    window.show()
    before = window.project.seeds.count()
    tsv = tmp_path / "tasks.tsv"
    tsv.write_text("instruction\tinput\toutput\nName a colour.\t\tBlue\n")
    window.import_seeds_from(tsv)
    qtbot.waitUntil(lambda: "Importing seed tasks failed" in window.messages.message(), timeout=10_000)
    shown = window.messages.message()
    assert "raises-on-import" in shown and "tsv" in shown, shown  # not only "invalid JSON"
    data = tmp_path / "tasks.csv"
    data.write_text("instruction,input,output\nName a colour.,,Blue\n")
    window.import_seeds_from(data)  # the rest still works
    qtbot.waitUntil(lambda: window.project.seeds.count() == before + 1, timeout=10_000)
    window.close()


def test_an_unchecked_box_is_visible_in_the_dark_look(qtbot) -> None:
    # Help ▸ Plugins' Enabled column in the dark theme: a disabled plugin's box must not vanish.
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QApplication, QCheckBox, QStyle, QStyleOptionButton

    from studio.ui import theme

    app = QApplication.instance()
    theme.apply_theme(app, "dark")
    try:
        box = QCheckBox("off")
        qtbot.addWidget(box)
        box.show()
        qtbot.waitExposed(box)
        option = QStyleOptionButton()
        box.initStyleOption(option)
        rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
        image = box.grab().toImage()
        base = QColor(theme.colors("dark")["window"]).lightness()
        edge = [QColor(image.pixel(x, rect.top())).lightness() for x in range(rect.left() + 2, rect.right() - 1)]
        assert max(edge) >= base + 30, (edge, base)
    finally:
        theme.apply_theme(app, "light")


def test_a_small_runs_estimate_and_saving_are_not_zero_dollars() -> None:
    # gpt-4o-mini at batch prices: a 30-sample run costs a fraction of a cent, "$0.00 less" said nothing.
    from studio.core.generation.config import CostEstimate
    from studio.core.generation.engine import describe_estimate

    estimate = CostEstimate(requests=3, prompt_tokens=2000, completion_tokens=4000, usd=0.0012, assumed_keep_rate=0.5)
    text = describe_estimate(estimate, 0.5)
    assert "≈ $0.0012 at batch prices" in text and "($0.0012 less than live calls)" in text, text
    assert "$0.00 " not in text
    big = CostEstimate(requests=100, prompt_tokens=1, completion_tokens=1, usd=0.05, assumed_keep_rate=0.5)
    assert "≈ $0.05 at batch prices" in describe_estimate(big, 0.5) and "($0.05 less than live calls)" in describe_estimate(big, 0.5)


def test_after_a_picked_up_batch_the_estimate_is_the_forms_again(qtbot, tmp_path: Path, monkeypatch) -> None:
    from fake_batch_api import FakeBatchAPI

    with FakeBatchAPI(models=("gpt-4o-mini",)) as api:
        monkeypatch.setenv("OPENAI_API_KEY", api.api_key)
        window, panel = _start_a_held_batch(qtbot, tmp_path, api)
        panel.ask_how_to_stop = lambda provider: "keep"
        panel.stop_button.click()
        qtbot.waitUntil(lambda: not panel.is_running(), timeout=20_000)
        window.close()
        api.hold.clear()
        window, panel = open_batch_panel(qtbot, tmp_path, (1280, 770))  # the project again: the batch is picked up
        qtbot.waitUntil(lambda: "Picked up run" in window.messages.message(), timeout=30_000)
        assert panel.target.value() != 30  # the form is not the picked-up run's
        shown = panel.estimate_label.text()
        panel._update_estimate()
        assert panel.estimate_label.text() == shown  # what the form's settings would cost, not the old run's
        window.close()
