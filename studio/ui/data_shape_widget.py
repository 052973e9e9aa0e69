"""The data's shape: counts by status, origin and run, word-length histograms, root verbs.

A view only: the Curate panel computes the numbers as jobs on the window's runner
(``CurationRepository.shape_steps`` and :func:`root_verb_pairs`, on a worker's own project handle)
and hands them to :meth:`DataShapeWidget.show_shape`. Clicking a bar asks the panel to
filter the table to it (``filter_requested``).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.curation import SampleQuery
from studio.core.wording import count_noun
from studio.core.project import Project

BINS = 30


def root_verb_pairs(project: Project, query: SampleQuery) -> Iterator[dict]:
    """Job body: running verb/object counts as partial results (raises ShapeUnavailable early)."""
    from studio.core import root_verbs

    parser = root_verbs.load_parser()
    texts = project.curation.instructions(query)
    for counts in root_verbs.count_pairs(texts, parser):
        yield root_verbs.top_pairs(counts)


def _use_app_palette() -> None:
    """Plots take the window's colours (pyqtgraph's default is white on black in every theme)."""
    from PySide6.QtWidgets import QApplication

    palette = QApplication.instance().palette()
    pg.setConfigOptions(background=palette.base().color(), foreground=palette.text().color(), antialias=True)


class _ThemedPlot(pg.PlotWidget):
    """A plot that re-takes the palette's colours when the theme changes while the app runs.

    pyqtgraph copies its colours once, at construction; without this the charts stayed white
    after switching to the dark theme.
    """

    def apply_palette(self) -> None:
        plot = getattr(self, "plotItem", None)
        if plot is None:
            return  # a palette event during pyqtgraph's own construction
        palette = self.palette()
        background, foreground = palette.base().color(), palette.text().color()
        self.setBackground(background)
        for name in ("left", "bottom", "right", "top"):
            axis = plot.getAxis(name)
            axis.setPen(foreground)
            axis.setTextPen(foreground)
        title = plot.titleLabel
        if title.text:
            title.setText(title.text, color=foreground)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.apply_palette()


class _BarChart(_ThemedPlot):
    """Bars with text labels on the x axis; a click reports the bar's key."""

    clicked = Signal(object)

    def __init__(self, title: str):
        _use_app_palette()
        super().__init__(title=title)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self._keys: list = []
        self._edges: np.ndarray | None = None
        self.scene().sigMouseClicked.connect(self._on_scene_clicked)

    def show_counts(self, counts: dict) -> None:
        self.clear()
        self._edges = None
        self._keys = sorted(counts, key=lambda k: (k is None, str(k)))
        heights = [counts[k] for k in self._keys]
        self.addItem(pg.BarGraphItem(x=np.arange(len(heights)), height=heights, width=0.7, brush="#4c78a8"))
        labels = [(i, "none" if k is None else str(k)) for i, k in enumerate(self._keys)]
        self.getPlotItem().getAxis("bottom").setTicks([labels])

    def show_histogram(self, values: np.ndarray) -> None:
        self.clear()
        self._keys = []
        if values.size == 0:
            self._edges = None
            return
        # Whole-word bins: a fractional edge would leave empty bars between integer lengths.
        low, high = int(values.min()), int(values.max())
        step = max(1, -(-(high - low + 1) // BINS))
        counts, edges = np.histogram(values, bins=np.arange(low, high + step + 1, step))
        self._edges = edges
        self.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush="#72b7b2"))
        self.getPlotItem().getAxis("bottom").setTicks(None)

    def _on_scene_clicked(self, event) -> None:
        point = self.getPlotItem().vb.mapSceneToView(event.scenePos())
        x = point.x()
        if self._edges is not None:
            index = int(np.searchsorted(self._edges, x, side="right")) - 1
            if 0 <= index < len(self._edges) - 1:
                self.clicked.emit((int(self._edges[index]), int(self._edges[index + 1]) - 1))
        elif self._keys:
            index = int(round(x))
            if 0 <= index < len(self._keys):
                self.clicked.emit(self._keys[index])


class _RootVerbChart(_ThemedPlot):
    """Alpaca's verb/object figure as stacked horizontal bars: one bar per root verb,
    one segment per direct object (the verb's other objects in grey)."""

    COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")

    def __init__(self):
        _use_app_palette()
        super().__init__()
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.labels: list[str] = []

    def show_pairs(self, pairs: dict[str, list[tuple[str, int]]]) -> None:
        self.clear()
        verbs = list(pairs)[::-1]  # most common on top
        self.labels = []
        for row, verb in enumerate(verbs):
            start = 0
            for n, (obj, count) in enumerate(pairs[verb]):
                colour = "#888888" if obj == "…" else self.COLOURS[n % len(self.COLOURS)]
                self.addItem(pg.BarGraphItem(x0=[start], y=[row], width=[count], height=0.8, brush=colour))
                label = pg.TextItem(obj or "—", color="w", anchor=(0, 0.5))
                label.setPos(start, row)
                self.addItem(label)
                self.labels.append(f"{verb}:{obj}")
                start += count
        self.getPlotItem().getAxis("left").setTicks([[(row, verb) for row, verb in enumerate(verbs)]])


class DataShapeWidget(QWidget):
    """Emits ``filter_requested(field, value)``: field is status, origin, run_id or a length column.

    ``verbs_requested`` asks the panel to parse the current filter's instructions.
    """

    filter_requested = Signal(str, object)
    verbs_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        grid = QGridLayout()
        self.charts: dict[str, _BarChart] = {}
        for n, (key, title) in enumerate((
            ("status", "Samples by status"), ("origin", "by origin"), ("run_id", "by generation run"),
            ("instruction_words", "Instruction length (words)"), ("output_words", "Output length (words)"),
        )):
            chart = _BarChart(title)
            chart.clicked.connect(lambda value, key=key: self.filter_requested.emit(key, value))
            self.charts[key] = chart
            grid.addWidget(chart, n // 3, n % 3)
        self.verbs_button = QPushButton("Root verbs…")
        self.verbs_button.setToolTip("Most common root verbs and their direct objects (needs spaCy)")
        self.verbs_button.clicked.connect(self.verbs_requested)
        # The message line doubles as the chart's placeholder: why there is no chart, or a legend.
        self.verbs_view = QLabel("Root verbs: press the button to parse the instructions.")
        self.verbs_view.setWordWrap(True)
        self.verbs_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verbs_chart = _RootVerbChart()
        self.verbs_chart.hide()
        verbs = QVBoxLayout()
        verbs.addWidget(self.verbs_button)
        verbs.addWidget(self.verbs_view)
        verbs.addWidget(self.verbs_chart, 1)
        holder = QWidget()
        holder.setLayout(verbs)
        grid.addWidget(holder, 1, 2)
        self.status = QLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(grid, 1)

    def show_counting(self) -> None:
        self.status.setText("Counting…")

    def show_error(self, message: str) -> None:
        self.status.setText(f"Could not count: {message}")

    def show_shape(self, shape: dict) -> None:
        """Draw what ``CurationRepository.shape_steps`` returned."""
        for key in ("status", "origin", "run_id"):
            self.charts[key].show_counts(shape[key])
        for key in ("instruction_words", "output_words"):
            self.charts[key].show_histogram(np.asarray(shape[key], dtype=np.int64))
        total = sum(shape["status"].values())
        if total:
            self.status.setText(f"{count_noun(total, 'sample')} in the current filter. Click a bar to filter the table.")
        else:
            self.status.setText("No sample matches the current filter: loosen the filters, or import samples (File ▸ Import Samples).")

    def show_verbs_started(self) -> None:
        self.verbs_button.setEnabled(False)
        self.verbs_view.setText("Parsing instructions…")

    def show_verbs_finished(self) -> None:
        self.verbs_button.setEnabled(True)

    def show_verbs_error(self, message: str) -> None:
        # A missing spaCy or model is a message in the chart area, never a crash.
        self.verbs_chart.hide()
        self.verbs_view.setText(message)
        self.verbs_button.setEnabled(True)

    def show_verbs(self, pairs: dict) -> None:
        if not pairs:
            self.verbs_view.setText("No verb-led instructions found.")
            return
        self.verbs_view.setText("Root verbs (bars) split by their most common direct objects.")
        self.verbs_chart.show_pairs(pairs)
        self.verbs_chart.show()

