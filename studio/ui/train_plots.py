"""The Train panel's live curves: loss (raw, smoothed, eval), learning rate, grad norm, tokens/s, GPU memory.

A view only. Events land in a :class:`~studio.ui.train_live.LiveRun`'s numpy buffers; the
panel's timer calls :meth:`TrainPlots.redraw` at most ten times a second, which hands each
curve a view of its buffer (``setData``) only when the run has changed since the last draw.
Only the eval curve has symbols (its few points, handed over only when an eval arrives): PySide6
6.12 on Python 3.11 crashed at exit after symbol curves were updated often (STACK.md), and a
line is what a curve of thousands of steps needs anyway.
Long runs stay cheap to draw through pyqtgraph's peak downsampling and clip-to-view.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QWidget

from studio.ui.data_shape_widget import _ThemedPlot, _use_app_palette
from studio.ui.train_live import LiveRun

# (key, plot title, what it shows (tooltip), [(series, pen colour, width, style)]). Titles stay short: a
# small plot at 1024×640 has room for about 16 characters; the detail is in the tooltip.
PLOTS = (
    ("loss", "Loss", "Training loss per step (raw and smoothed) and the validation loss at each eval",
     (("loss", "#9ecae9", 1, None), ("loss_smooth", "#1f77b4", 2, None),
      ("eval_loss", "#d62728", 2, Qt.PenStyle.DashLine))),
    ("learning_rate", "Learning rate", "The learning rate the scheduler set at each step",
     (("learning_rate", "#2ca02c", 2, None),)),
    ("grad_norm", "Grad norm", "The gradient norm before clipping", (("grad_norm", "#9467bd", 1, None),)),
    ("tokens_per_s", "Tokens/s", "Real tokens per second: the tokens trained on, padding not counted",
     (("tokens_per_s", "#ff7f0e", 1, None),)),
    ("gpu_memory_gb", "GPU memory (GB)", "Peak GPU memory allocated by the job, in GB",
     (("gpu_memory_gb", "#8c564b", 2, None),)),
)
# Evals are few (often one in a short run): a line through one point draws nothing, so the eval
# curve also marks its points. The only curve with a symbol, and it is handed data only when an
# eval arrives (symbol curves updated many times crashed PySide6 6.12 at exit: STACK.md).
SYMBOLS = {"eval_loss": "o"}
OVERLAY_COLOURS = ("#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5")
CURVE_NAMES = {"loss": "train loss", "loss_smooth": "train loss (smoothed)", "eval_loss": "eval loss"}


class TrainPlots(QWidget):
    """Five plots over one :class:`LiveRun`, plus other runs' smoothed losses overlaid on the loss plot."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        _use_app_palette()
        self.live: LiveRun | None = None
        self.plots: dict[str, pg.PlotWidget] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._overlay_curves: list[pg.PlotDataItem] = []
        self._drawn_version = -1
        self._symbol_drawn: dict[str, tuple] = {}  # symbol curve -> (size, last x, last y) it was handed
        self.redraws = 0  # how often curves were handed new data (tests, the benchmark)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        places = {"loss": (0, 0, 1, 2), "learning_rate": (0, 2, 1, 1), "grad_norm": (1, 0, 1, 1),
                  "tokens_per_s": (1, 1, 1, 1), "gpu_memory_gb": (1, 2, 1, 1)}
        for key, title, detail, curves in PLOTS:
            plot = _ThemedPlot(title=title)
            plot.setToolTip(detail)
            plot.setMenuEnabled(False)
            item = plot.getPlotItem()
            # No grid: it doubled the cost of a paint (benchmarks/train_events.py), and paints are most
            # of what a live run costs the GUI thread.
            item.setLabel("bottom", "step")
            item.setClipToView(True)
            item.setDownsampling(auto=True, mode="peak")
            if key == "loss":
                item.addLegend(offset=(-10, 10))
            for series, colour, width, style in curves:
                pen = pg.mkPen(colour, width=width, style=style or Qt.PenStyle.SolidLine)
                symbol = SYMBOLS.get(series)
                extra = dict(symbol=symbol, symbolSize=7, symbolPen=pg.mkPen(colour), symbolBrush=pg.mkBrush(colour)
                             ) if symbol else {}
                self.curves[series] = item.plot([], [], pen=pen, name=CURVE_NAMES.get(series), antialias=False,
                                                **extra)
            self.plots[key] = plot
            grid.addWidget(plot, *places[key])
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        self.empty_note = pg.TextItem("CPU run: no GPU memory", color="#888888", anchor=(0.5, 0.5))
        self.empty_note.setPos(0.5, 0.5)
        self.empty_note.setVisible(False)
        self.plots["gpu_memory_gb"].addItem(self.empty_note)

    def show_run(self, live: LiveRun | None) -> None:
        """Draw ``live`` from now on (None: clear)."""
        self.live = live
        self._drawn_version = -1
        self._symbol_drawn.clear()
        self.redraw()

    def redraw(self) -> bool:
        """Hand the curves the run's current buffers if it changed; True when something was drawn."""
        live = self.live
        if live is None:
            if self._drawn_version != -2:
                for curve in self.curves.values():
                    curve.setData([], [])
                self._symbol_drawn.clear()
                self._drawn_version = -2
            return False
        if live.version == self._drawn_version:
            return False
        self._drawn_version = live.version
        for name, curve in self.curves.items():
            series = live.series[name]
            if name in SYMBOLS:
                key = (series.size, *(series.x[-1:].tolist()), *(series.y[-1:].tolist()))
                if self._symbol_drawn.get(name) == key:
                    continue
                self._symbol_drawn[name] = key
            curve.setData(series.x, series.y)
        gpu = live.series["gpu_memory_gb"]
        no_gpu = not gpu.size and live.series["loss"].size > 0
        if no_gpu != self.empty_note.isVisible():
            self.empty_note.setVisible(no_gpu)
            item = self.plots["gpu_memory_gb"].getPlotItem()
            if no_gpu:
                item.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
                item.hideAxis("left")
            else:
                item.enableAutoRange()
                item.showAxis("left")
        self.redraws += 1
        return True

    def set_overlays(self, runs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Other runs' smoothed loss curves on the loss plot: ``(label, steps, losses)`` each."""
        item = self.plots["loss"].getPlotItem()
        for curve in self._overlay_curves:
            item.removeItem(curve)
        self._overlay_curves = []
        for n, (label, x, y) in enumerate(runs):
            pen = pg.mkPen(OVERLAY_COLOURS[n % len(OVERLAY_COLOURS)], width=2)
            self._overlay_curves.append(item.plot(x, y, pen=pen, name=label))

    def overlay_labels(self) -> list[str]:
        return [curve.name() for curve in self._overlay_curves]

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """What a curve was last handed (not its downsampled view): tests read this."""
        curve = self.curves[name]
        x = curve.xData if curve.xData is not None else np.empty(0)
        y = curve.yData if curve.yData is not None else np.empty(0)
        return np.asarray(x), np.asarray(y)
