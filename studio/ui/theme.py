"""Light and dark looks: Fusion style with our own palettes, so every platform looks the same."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleOption, QWidget

from studio.core.paths import resource

THEMES = ("system", "light", "dark")

_LIGHT = {
    "window": "#f5f6f8", "base": "#ffffff", "alt": "#f0f2f5", "text": "#1d2330", "muted": "#6a7282",
    "button": "#eceef2", "highlight": "#3a6ee8", "highlight_text": "#ffffff", "border": "#d5d9e0",
    "nav": "#e9ecf1", "error": "#c62828", "tooltip": "#ffffff",
    "error_bg": "#fbeaea", "warning": "#8a5a00", "warning_bg": "#fff4dc", "info_bg": "#e8f0fd",
}
_DARK = {
    "window": "#1e2128", "base": "#16181d", "alt": "#1b1e24", "text": "#e3e6ec", "muted": "#8b93a3",
    "button": "#2a2e37", "highlight": "#4c7ef0", "highlight_text": "#ffffff", "border": "#343946",
    "nav": "#191c22", "error": "#ef6b6b", "tooltip": "#2a2e37",
    "error_bg": "#3a2326", "warning": "#e8b64c", "warning_bg": "#3a3122", "info_bg": "#223049",
}


def resolve(mode: str) -> str:
    """'system' becomes 'light' or 'dark' from the desktop's colour scheme."""
    if mode in ("light", "dark"):
        return mode
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def colors(mode: str) -> dict[str, str]:
    return _DARK if resolve(mode) == "dark" else _LIGHT


def palette_look(palette: QPalette) -> str:
    """"dark" or "light": the look a widget's palette is in (for colours drawn outside the style sheet)."""
    return "dark" if palette.color(QPalette.ColorRole.Window).lightness() < 128 else "light"


def _palette(c: dict[str, str]) -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"], QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["base"], QPalette.ColorRole.AlternateBase: c["alt"],
        QPalette.ColorRole.Text: c["text"], QPalette.ColorRole.Button: c["button"],
        QPalette.ColorRole.ButtonText: c["text"], QPalette.ColorRole.Highlight: c["highlight"],
        QPalette.ColorRole.HighlightedText: c["highlight_text"], QPalette.ColorRole.ToolTipBase: c["tooltip"],
        QPalette.ColorRole.ToolTipText: c["text"], QPalette.ColorRole.PlaceholderText: c["muted"],
        QPalette.ColorRole.Link: c["highlight"], QPalette.ColorRole.Mid: c["border"],
    }
    for role, value in roles.items():
        palette.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(c["muted"]))
    return palette


def _style_sheet(c: dict[str, str]) -> str:
    return f"""
    QListWidget#PanelNav {{ background: {c['nav']}; border: none; border-right: 1px solid {c['border']};
        padding-top: 8px; font-size: 13px; outline: 0; }}
    QListWidget#PanelNav::item {{ padding: 10px 14px; margin: 2px 6px; border-radius: 6px; color: {c['text']}; }}
    QListWidget#PanelNav::item:selected {{ background: {c['highlight']}; color: {c['highlight_text']}; }}
    QListWidget#PanelNav::item:hover:!selected {{ background: {c['button']}; }}
    QLabel[role="heading"] {{ font-size: 15px; font-weight: 600; }}
    QLabel[role="muted"] {{ color: {c['muted']}; }}
    QLabel[role="error"] {{ color: {c['error']}; }}
    QPlainTextEdit[invalid="true"], QLineEdit[invalid="true"] {{ border: 1px solid {c['error']}; }}
    QPlainTextEdit, QLineEdit {{ border: 1px solid {c['border']}; border-radius: 4px; padding: 3px;
        background: {c['base']}; selection-background-color: {c['highlight']}; }}
    QPlainTextEdit:focus, QLineEdit:focus {{ border: 1px solid {c['highlight']}; }}
    QFrame#InstanceCard {{ border: 1px solid {c['border']}; border-radius: 6px; background: {c['alt']}; }}
    QStatusBar {{ color: {c['muted']}; }}
    QWidget#MessageArea[level="error"] {{ background: {c['error_bg']}; border: 1px solid {c['error']}; border-radius: 4px; }}
    QWidget#MessageArea[level="warning"] {{ background: {c['warning_bg']}; border: 1px solid {c['warning']}; border-radius: 4px; }}
    QWidget#MessageArea[level="info"] {{ background: {c['info_bg']}; border: 1px solid {c['border']}; border-radius: 4px; }}
    QWidget#MessageArea[level="error"] QLabel#MessageMarker {{ color: {c['error']}; font-weight: 700; }}
    QWidget#MessageArea[level="warning"] QLabel#MessageMarker {{ color: {c['warning']}; font-weight: 700; }}
    QWidget#MessageArea[level="info"] QLabel#MessageMarker {{ color: {c['highlight']}; font-weight: 700; }}
    QWidget#MessageArea QLabel#MessageText {{ color: {c['text']}; }}
    """


_CHECKS = (QStyle.PrimitiveElement.PE_IndicatorCheckBox, QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck)


class _Style(QProxyStyle):
    """Fusion, with check boxes outlined in the border colour on a dark window.

    Fusion draws a box's frame a shade darker than the window, which on the dark look is the base
    colour itself: an unchecked box (Help ▸ Plugins' Enabled column, "Classification task") vanished.
    """

    def drawPrimitive(self, element: QStyle.PrimitiveElement, option: QStyleOption, painter: QPainter,  # noqa: N802
                      widget: QWidget | None = None) -> None:
        super().drawPrimitive(element, option, painter, widget)
        if element in _CHECKS and palette_look(option.palette) == "dark":
            painter.save()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.setPen(option.palette.color(QPalette.ColorRole.Mid).lighter(150))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(option.rect.adjusted(0, 0, -1, -1))
            painter.restore()


def apply_theme(app: QApplication, mode: str) -> None:
    c = colors(mode)
    if not isinstance(app.style(), _Style):
        app.setStyle(_Style("Fusion"))
    app.setPalette(_palette(c))
    app.setStyleSheet(_style_sheet(c))


def icon(name: str) -> QIcon:
    return QIcon(str(resource("icons", name)))
