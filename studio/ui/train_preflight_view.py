"""The pre-flight report, shown before a run starts: the sample as the model sees it, checks, lengths, estimates.

A view only: ``python -m studio.train.preflight CONFIG --json`` (a child process: the GUI
never imports a tokenizer) prints the report and the panel hands it to :meth:`PreflightView.show_report`.
The sample is drawn token by token — alternating shades mark token boundaries, masked tokens
(label -100, no loss) are dimmed, the EOS the model must learn is outlined — so a template or
EOS mistake is visible before hours are spent on it.
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from studio.core.wording import format_duration
from studio.ui.data_shape_widget import _ThemedPlot, _use_app_palette

LEVEL_MARK = {"ok": ("✓", "#2e7d32"), "warning": ("!", "#b26a00"), "error": ("✗", "#c62828")}


def token_html(tokens: list[dict[str, Any]], eos_id: int | None = None) -> str:
    """Tokens as HTML spans: masked ones dimmed, boundaries by alternating shade, newlines kept."""
    parts = []
    for n, token in enumerate(tokens):
        text = str(token.get("text", ""))
        shown = html.escape(text).replace(" ", "&nbsp;").replace("\n", "↵<br>").replace("\t", "→")
        if not shown:
            shown = "∅"
        masked = bool(token.get("masked"))
        shade = "rgba(127,127,127,0.16)" if n % 2 else "rgba(127,127,127,0.05)"
        style = [f"background-color:{shade}"]
        if masked:
            style.append("color:#8a8a8a")
        else:
            style.append("font-weight:600")
        if token.get("special") or (eos_id is not None and token.get("id") == eos_id):
            style.append("border:1px solid #d62728; color:#d62728")
        title = (f"id {token.get('id')}" + (" · special" if token.get("special") else "")
                 + (" · masked (label -100)" if masked else " · learned"))
        parts.append(f'<span title="{html.escape(title)}" style="{";".join(style)}">{shown}</span>')
    return "".join(parts)


def checks_html(checks: list[dict[str, Any]]) -> str:
    rows = []
    for check in checks:
        mark, colour = LEVEL_MARK.get(str(check.get("level")), ("·", "#555555"))
        rows.append(f'<div><span style="color:{colour}; font-weight:700">{mark} {html.escape(str(check.get("level")))}'
                    f'</span> {html.escape(str(check.get("message", "")))}</div>')
    return "".join(rows) or "<div>No checks were reported.</div>"


def estimates_html(estimates: dict[str, Any]) -> str:
    """Every figure of the (nested) estimates with how it was computed, muted under it.

    A group's ``method`` is one sentence for the group, or a dict naming the method of each
    figure (``weights_gb`` takes ``method["weights"]``), as ``studio.core.training.estimates`` writes it.
    """

    def muted(text: Any) -> str:
        return f'<br><span style="color:#8a8a8a">{html.escape(str(text))}</span>'

    def items(data: dict[str, Any]) -> str:
        method = data.get("method")
        per_key = method if isinstance(method, dict) else {}
        out = []
        for name, value in data.items():
            if name == "method":
                continue
            label = html.escape(_LABELS.get(str(name), str(name).removesuffix("_gb").replace("_", " ").capitalize()))
            if isinstance(value, dict):
                note = muted(value["method"]) if isinstance(value.get("method"), str) else ""
                out.append(f"<li><b>{label}</b>{note}<ul>{items(value)}</ul></li>")
            else:
                how = per_key.get(name) or per_key.get(str(name).removesuffix("_gb"))
                out.append(f"<li>{label}: {html.escape(_fmt(value, name))}{muted(how) if how else ''}</li>")
        return "".join(out)

    if not estimates:
        return "<p>No estimates.</p>"
    top = f"<p>{muted(estimates['method'])}</p>" if isinstance(estimates.get("method"), str) else ""
    return f"{top}<ul>{items(estimates)}</ul>"


_LABELS = {"gpus": "GPUs", "lora_parameters": "LoRA parameters", "lora_and_optimizer_gb": "LoRA and optimizer",
           "sustained_tflops": "Assumed sustained rate", "flops": "FLOPs", "time": "Time", "memory": "Memory"}


def _fmt(value: Any, name: str = "") -> str:
    """A figure in the unit its name says: ``*_gb`` as GB/MB, ``seconds`` as a duration."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if name.endswith("_gb"):
            return f"{value:,.2f} GB" if value >= 0.1 else f"{value * 1024:,.1f} MB"
        if name == "seconds":
            return format_duration(value)
        if name == "flops":
            return f"{value:.2e}"
        if name == "sustained_tflops":
            return f"{value:g} TFLOP/s"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class LengthHistogram(_ThemedPlot):
    """Token lengths of the snapshot with the max_length line and how many samples it cuts."""

    def __init__(self, parent: QWidget | None = None):
        _use_app_palette()
        super().__init__(parent, title="Token lengths")
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.getPlotItem().setLabel("bottom", "tokens")
        self.getPlotItem().setLabel("left", "samples")
        self.cut_text = ""

    def show_lengths(self, lengths: dict[str, Any]) -> None:
        self.clear()
        counts = np.asarray(lengths.get("counts") or [], dtype=float)
        bins = np.asarray(lengths.get("edges") or lengths.get("bins") or [], dtype=float)
        if counts.size:
            if bins.size == counts.size + 1:
                left, right = bins[:-1], bins[1:]
            elif bins.size == counts.size:
                width = np.diff(bins).min() if bins.size > 1 else 1.0
                left, right = bins, bins + width
            else:
                left, right = np.arange(counts.size, dtype=float), np.arange(1, counts.size + 1, dtype=float)
            self.addItem(pg.BarGraphItem(x0=left, x1=right, height=counts, brush="#72b7b2"))
        max_length = lengths.get("max_length")
        cut = lengths.get("cut")
        self.cut_text = ""
        if max_length:
            line = pg.InfiniteLine(pos=float(max_length), angle=90, pen=pg.mkPen("#d62728", width=2,
                                                                                 style=Qt.PenStyle.DashLine))
            self.addItem(line)
            self.cut_text = f"max_length {max_length}: {cut if cut is not None else '?'} cut"
            # The label sits right of the line, or left of it when the line is in the right half.
            right_edge = float(bins.max()) if bins.size else float(max_length)
            anchor = (1.03, 0) if max_length > 0.5 * right_edge else (-0.03, 0)
            label = pg.TextItem(self.cut_text, color="#d62728", anchor=anchor)
            label.setPos(float(max_length), float(counts.max()) if counts.size else 1.0)
            self.addItem(label)


class PreflightView(QWidget):
    """The whole report; :meth:`show_report` replaces what is shown."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.report: dict[str, Any] | None = None
        self.summary = QLabel("Run Pre-flight to see one sample exactly as the model will, token by token, "
                              "with the checks, token lengths and estimates.", wordWrap=True)
        self.summary.setProperty("role", "muted")
        self.tokens = QTextBrowser(openLinks=False)
        self.checks = QTextBrowser(openLinks=False)
        self.histogram = LengthHistogram()
        self.estimates = QTextBrowser(openLinks=False)
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self.histogram)
        lower.addWidget(self.estimates)
        lower.setSizes([560, 440])
        splitter = QSplitter(Qt.Orientation.Vertical, childrenCollapsible=False)
        splitter.addWidget(self.tokens)
        splitter.addWidget(self.checks)
        splitter.addWidget(lower)
        splitter.setSizes([300, 110, 250])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        checks = list(report.get("checks") or [])
        levels = [str(c.get("level")) for c in checks]
        errors, warnings = levels.count("error"), levels.count("warning")
        verdict = ("Ready to train." if not errors and not warnings else
                   f"{errors} error(s): fix them before starting." if errors else f"{warnings} warning(s): read them.")
        sample = report.get("sample") or {}
        tokens = list(sample.get("tokens") or [])
        learned = sum(1 for t in tokens if not t.get("masked"))
        self.summary.setText(f"{verdict} Sample {sample.get('sample_id', '?')}: {len(tokens)} tokens, "
                             f"{learned} learned (bold), {len(tokens) - learned} masked (dimmed, label -100)."
                             + ("" if sample.get("eos_ok", True) else " Its target does NOT end in EOS."))
        self.tokens.setHtml(f'<div style="font-family:monospace; line-height:150%">'
                            f'{token_html(tokens, report.get("eos_id"))}</div>')
        # The end is where template and EOS mistakes show (the response, its EOS): scroll there.
        bar = self.tokens.verticalScrollBar()
        bar.setValue(bar.maximum())
        self.checks.setHtml(checks_html(checks))
        self.histogram.show_lengths(report.get("lengths") or {})
        self.estimates.setHtml(estimates_html(report.get("estimates") or {}))

    def clear(self) -> None:
        self.report = None
        for view in (self.tokens, self.checks, self.estimates):
            view.clear()
        self.histogram.clear()
