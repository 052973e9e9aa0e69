"""What an evaluation says, shown so that a tie reads as a tie: numbers with intervals, and the judge's caveats.

A view only: the panel hands it :class:`~studio.core.evaluation.stats.EvalResult` objects
(computed off the GUI thread) and it draws them; it never reads the project. Summary cards
for the selected pair (win rate with its Wilson interval, wins/ties/losses, inconsistent
verdicts, the judge's position consistency, the length-controlled rate, average lengths, and
the human votes and agreement when given); a warning strip when the judge looks length-biased;
pyqtgraph bars of every pair's win rate with interval whiskers, the Bradley–Terry ranking for
more than two systems, and the selected pair's win rate per category.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFrame, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QSizePolicy,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.core.evaluation.stats import (
    LENGTH_BIAS_THRESHOLD, EvalResult, PairResult, RankRow, interval_text, length_confounded_text, percent,
    strength_interval_text,
)
from studio.ui.data_shape_widget import _ThemedPlot, _use_app_palette
from studio.ui.theme import colors, palette_look

JUDGE_COLOUR, LC_COLOUR, HUMAN_COLOUR = "#4c78a8", "#f58518", "#54a24b"
MAX_CATEGORIES = 15  # a plot of 70 bars (Self-Instruct's apps) reads as noise: the largest ones
_DASH = pg.mkPen("#888888", width=1, style=Qt.PenStyle.DashLine)


def length_bias_text(pair: PairResult, *, votes: bool = False) -> str:
    """The warning strip's words; ``votes`` when the result is the human votes' (there is no judge to blame)."""
    raw, lc = pair.win_rate_a_ties_half, pair.lc_win_rate_a
    head = (f"▲ Length bias: {pair.system_a}'s win rate with ties as half is {percent(raw)}, but at equal "
            f"answer length (the length-controlled rate) it is {percent(lc)}, {abs(raw - lc) * 100:.0f} points "
            f"apart (the flag is raised at {LENGTH_BIAS_THRESHOLD * 100:.0f}). ")
    if votes:
        return head + ("The votes may be favouring longer answers rather than better ones (or the longer answers "
                       "really are better): read the length-controlled rate next to the raw one.")
    return head + ("The judge may be rewarding longer answers rather than better ones: read the length-controlled "
                   "rate, or tell the judge's template to ignore length.")


def is_votes_result(result: EvalResult | None) -> bool:
    """A result computed from the blind votes (its meta says ``source: human votes``, as the CLI writes it)."""
    meta = (result.meta or {}) if result is not None else {}
    return result is not None and (meta.get("source") == "human votes" or str(meta.get("judge", "")) == "human")


def _letter(index: int) -> str:
    return chr(65 + index) if 0 <= index < 26 else str(index + 1)


def _short(text: str, width: int = 16) -> str:
    """Cut in the middle: run names differ at their ends ("student-run-3" / "student-run-5")."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail:]


class _Card(QFrame):
    """A number with a title above and a line of detail below it."""

    def __init__(self, title: str, tooltip: str = ""):
        super().__init__()
        self.setObjectName("InstanceCard")  # the theme's bordered card look
        self.setToolTip(tooltip)
        self.title = QLabel(title)
        self.title.setProperty("role", "muted")
        self.value = QLabel("—")
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = QLabel("", wordWrap=True)
        self.detail.setProperty("role", "muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(1)
        layout.addWidget(self.title)
        layout.addWidget(self.value)
        layout.addWidget(self.detail)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def set(self, value: str, detail: str = "", title: str | None = None) -> None:
        if title is not None:
            self.title.setText(title)
        self.value.setText(value)
        self.detail.setText(detail)

    def text(self) -> str:
        return f"{self.title.text()}: {self.value.text()} {self.detail.text()}".strip()


class _Plot(_ThemedPlot):
    """A still plot (no mouse zoom or menu): bars for reading, not exploring."""

    def __init__(self, title: str):
        _use_app_palette()
        super().__init__(title=title)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.getPlotItem().hideButtons()
        self.setMinimumHeight(220)
        self.bars: list[pg.BarGraphItem] = []
        self.error_bars: list[pg.ErrorBarItem] = []

    def reset(self) -> None:
        self.clear()
        self.bars, self.error_bars = [], []

    def add_bars(self, bar: pg.BarGraphItem, errors: pg.ErrorBarItem | None) -> None:
        self.addItem(bar)
        self.bars.append(bar)
        if errors is not None:
            self.addItem(errors)
            self.error_bars.append(errors)


def _whiskers(values: list[float | None], lows: list[float | None], highs: list[float | None]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mask of drawable bars, and heights / below / above in percent (an undefined interval draws none)."""
    ok = np.array([v is not None for v in values])
    value = np.array([100 * v if v is not None else 0.0 for v in values])
    low = np.array([100 * lo if lo is not None else 100 * v if v is not None else 0.0 for v, lo in zip(values, lows)])
    high = np.array([100 * hi if hi is not None else 100 * v if v is not None else 0.0 for v, hi in zip(values, highs)])
    return ok, value, np.maximum(value - low, 0), np.maximum(high - value, 0)


class EvalResultsView(QWidget):
    """``show_result(result, human=..., agreement=...)`` replaces what is shown; ``None`` shows the empty state.

    Emits ``pair_selected(index_a, index_b)`` when the user picks another pair (more than two systems).
    """

    pair_selected = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.result: EvalResult | None = None
        self.votes_only = False  # the result is the human votes' (no judge): the wording speaks of votes
        self.human: EvalResult | None = None
        self.agreement: tuple[float | None, int] | None = None
        self.empty = QLabel("No results yet: run the evaluation with a judge, or finish the blind comparison.",
                            wordWrap=True)
        self.empty.setProperty("role", "muted")
        self.pair_label = QLabel("&Pair:")
        self.pair_combo = QComboBox()
        self.pair_combo.setToolTip("Which two systems the cards and the category plot are about")
        self.pair_label.setBuddy(self.pair_combo)
        self.pair_combo.currentIndexChanged.connect(self._on_pair_combo_changed)
        self.method = QLabel("", wordWrap=True)
        self.method.setProperty("role", "muted")
        self.method.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.warning = QLabel("", wordWrap=True, objectName="LengthBiasWarning")
        self.warning.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning.hide()

        self.cards = {
            "win_rate": _Card("Win rate", "Wins of A over its decisive judgments (ties and inconsistent verdicts "
                                          "left out), with a Wilson 95 % interval"),
            "record": _Card("Wins / ties / losses", "For A; ties include inconsistent verdicts and both-bad votes"),
            "inconsistent": _Card("Inconsistent", "Prompts where the judge's verdict changed when the two answers "
                                                  "swapped places: counted as ties"),
            "consistency": _Card("Position consistency", "Share of pairs judged readably in both orders whose two "
                                                         "verdicts agree"),
            "lc": _Card("Length-controlled", "AlpacaEval 2's way: a logistic fit of the outcome on the length "
                                             "difference, read at equal length; bootstrap 95 % interval"),
            "lengths": _Card("Average length", "Characters per answer"),
            "human": _Card("Human votes", "The blind comparison's votes (skipped ones left out)"),
            "agreement": _Card("Judge–human agreement", "Prompts where the judge and the human picked the same "
                                                        "winner (a tie counts as a pick)"),
        }
        cards = QGridLayout()
        cards.setSpacing(6)
        for place, card in enumerate(self.cards.values()):
            cards.addWidget(card, place // 4, place % 4)

        self.rate_plot = _Plot("Win rate, 95 % interval")  # longer titles are cut at 1280 px
        self.rate_plot.setToolTip("Each pair's win rate of its first system: the judge's (Wilson interval), the "
                                  "length-controlled one (bootstrap interval) and the human votes' (Wilson)")
        self.rate_plot.getPlotItem().setLabel("bottom", "%")
        self.rate_key = QLabel("", textFormat=Qt.TextFormat.RichText, alignment=Qt.AlignmentFlag.AlignCenter,
                               wordWrap=True)
        # Long system names wrap here; they must not widen the plot's column and squeeze the others.
        self.rate_key.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.rate_box = QWidget()
        rate_layout = QVBoxLayout(self.rate_box)
        rate_layout.setContentsMargins(0, 0, 0, 0)
        rate_layout.addWidget(self.rate_plot, 1)
        rate_layout.addWidget(self.rate_key)
        self.rank_plot = _Plot("Bradley–Terry")  # "… ranking" is cut in a third of 1280 px
        self.rank_plot.setToolTip("Each system's chance to beat an average one (Bradley–Terry), with bootstrap "
                                  "95 % intervals over prompts")
        self.rank_table = QTableWidget(0, 5)
        self.rank_table.setHorizontalHeaderLabels(["#", "System", "Strength", "95 % interval", "Score"])
        self.rank_table.verticalHeader().hide()
        self.rank_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.rank_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # ≤ a few rows: cheap
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.rank_table.setWordWrap(False)
        self.rank_table.setTextElideMode(Qt.TextElideMode.ElideRight)  # the letter first, then the name
        self.rank_table.setMaximumHeight(150)
        self.rank_box = QWidget()
        rank_layout = QVBoxLayout(self.rank_box)
        rank_layout.setContentsMargins(0, 0, 0, 0)
        rank_layout.addWidget(self.rank_plot, 1)
        rank_layout.addWidget(self.rank_table)
        self.category_plot = _Plot("By category")
        self.category_plot.setToolTip("The selected pair's win rate of its first system per prompt category "
                                      "(number of prompts in brackets), Wilson 95 % intervals")
        self.category_plot.getPlotItem().setLabel("bottom", "%")

        top = QHBoxLayout()
        top.addWidget(self.pair_label)
        top.addWidget(self.pair_combo, 1)
        top.addWidget(self.method, 2)
        plots = QHBoxLayout()
        plots.addWidget(self.rate_box, 1)
        plots.addWidget(self.rank_box, 1)
        plots.addWidget(self.category_plot, 1)
        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.addLayout(top)
        body.addWidget(self.warning)
        body.addLayout(cards)
        body.addLayout(plots, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addWidget(self.body, 1)
        self._style_warning()
        self.show_result(None)

    # -- public --------------------------------------------------------------------------------------
    def show_result(self, result: EvalResult | None, *, human: EvalResult | None = None,
                    agreement: tuple[float | None, int] | None = None) -> None:
        """Show a judge's result (and the human votes' result and their agreement, when given).

        With only human votes, pass them as ``result``; the human card then stays hidden.
        """
        previous = self.selected_pair()
        self.result, self.human, self.agreement = result, human, agreement
        self.votes_only = is_votes_result(result)
        self.empty.setVisible(result is None)
        self.body.setVisible(result is not None)
        self.pair_combo.blockSignals(True)
        self.pair_combo.clear()
        if result is not None:
            for pair in result.pairs:
                self.pair_combo.addItem(pair.label)
            self.pair_combo.setCurrentIndex(max(self._pair_place(previous), 0))
        self.pair_combo.blockSignals(False)
        many = result is not None and len(result.pairs) > 1
        self.pair_label.setVisible(many)
        self.pair_combo.setVisible(many)
        if result is None:
            self.warning.hide()
            for plot in (self.rate_plot, self.rank_plot, self.category_plot):
                plot.reset()
            return
        self.method.setText("Intervals: Wilson 95 % for win rates, bootstrap 95 % for the length-controlled rate"
                            + (" and the ranking" if result.ranking else ""))
        self._draw_rates()
        self._draw_ranking(result.ranking)
        self._show_pair()

    def selected_pair(self) -> tuple[int, int] | None:
        """The (index_a, index_b) of the pair the cards show."""
        pair = self.current_pair()
        return None if pair is None else (pair.index_a, pair.index_b)

    def select_pair(self, index_a: int, index_b: int) -> None:
        place = self._pair_place((index_a, index_b))
        if place >= 0:
            self.pair_combo.setCurrentIndex(place)

    def _pair_place(self, key: tuple[int, int] | None) -> int:
        if key is None or self.result is None:
            return -1
        return next((n for n, p in enumerate(self.result.pairs) if (p.index_a, p.index_b) == key), -1)

    def current_pair(self) -> PairResult | None:
        if self.result is None or not self.result.pairs:
            return None
        return self.result.pairs[max(self.pair_combo.currentIndex(), 0)]

    # -- the selected pair -------------------------------------------------------------------------------
    def _on_pair_combo_changed(self, _index: int) -> None:
        self._show_pair()
        pair = self.selected_pair()
        if pair is not None:
            self.pair_selected.emit(*pair)

    def _show_pair(self) -> None:
        pair = self.current_pair()
        if pair is None:
            return
        a, b = pair.system_a, pair.system_b
        self.cards["win_rate"].set(percent(pair.win_rate_a), interval_text(pair), title=f"Win rate of {_short(a, 24)}")
        decided = pair.wins_a + pair.wins_b
        self.cards["record"].set(f"{pair.wins_a} / {pair.ties} / {pair.wins_b}",
                                 f"{a} vs {b} over {pair.n} prompts; {decided} decisive"
                                 + (f", {pair.both_bad} both bad" if pair.both_bad else ""))
        judged = pair.judged_both_orders
        self.cards["inconsistent"].set(str(pair.inconsistent),
                                       f"{percent(pair.inconsistent / pair.n)} of prompts, counted as ties"
                                       if pair.n else "")
        self.cards["consistency"].set(percent(pair.position_consistency),
                                      f"of {judged} judged in both orders" if judged else "no judge verdicts")
        if pair.lc_win_rate_a is None:
            self.cards["lc"].set("— ▲" if pair.length_confounded else "—",
                                 "length cannot be told apart from quality here" if pair.n else "")
        else:
            interval = (f"{100 * pair.lc_ci_low:.1f}–{100 * pair.lc_ci_high:.1f} %, bootstrap; "
                        if pair.lc_ci_low is not None else "")
            self.cards["lc"].set(percent(pair.lc_win_rate_a) + (" ▲" if pair.length_bias else ""),
                                 f"{interval}ties-half rate {percent(pair.win_rate_a_ties_half)}")
        self.cards["lengths"].set(
            "—" if pair.avg_len_a is None else f"{pair.avg_len_a:,.0f} / {pair.avg_len_b:,.0f}",
            f"characters, {_short(a, 24)} / {_short(b, 24)}")
        self.warning.setVisible(pair.length_bias or pair.length_confounded)
        self.warning.setText(length_bias_text(pair, votes=self.votes_only) if pair.length_bias else
                             f"⚠ {length_confounded_text(pair, _short(a, 40))}: the win rate may measure length "
                             "as much as quality." if pair.length_confounded else "")
        for name in ("inconsistent", "consistency"):  # a judge's traits: votes have no orders to swap
            self.cards[name].setVisible(not self.votes_only)
        human = self._human_pair(pair)
        self.cards["human"].setVisible(human is not None)
        if human is not None:
            self.cards["human"].set(percent(human.win_rate_a),
                                    f"{interval_text(human)}; "
                                    f"{human.wins_a} / {human.ties} / {human.wins_b} W/T/L of {human.n}"
                                    + (f", {human.both_bad} both bad" if human.both_bad else ""),
                                    title=f"Human votes: {_short(a, 20)}")
        self.cards["agreement"].setVisible(self.agreement is not None)
        if self.agreement is not None:
            share, n = self.agreement
            matched = round(share * n) if share is not None else 0
            self.cards["agreement"].set(percent(share), f"same winner on {matched} of {n} prompts" if n
                                        else "no prompt has both a verdict and a vote")
        self._draw_categories(pair)

    def _human_pair(self, pair: PairResult) -> PairResult | None:
        if self.human is None:
            return None
        for other in self.human.pairs:
            if (other.index_a, other.index_b) == (pair.index_a, pair.index_b) and other.n:
                return other
        return None

    # -- plots ---------------------------------------------------------------------------------------
    def _draw_rates(self) -> None:
        """Per pair (first pair on top): the judge's win rate (Wilson), its length-controlled rate (bootstrap)
        and the human votes' rate, as horizontal bars with whiskers (pair names are long: they fit on the left)."""
        plot = self.rate_plot
        plot.reset()
        pairs = self.result.pairs
        series = [("votes" if self.votes_only else "judge", HUMAN_COLOUR if self.votes_only else JUDGE_COLOUR,
                   [(p.win_rate_a, p.ci_low, p.ci_high) for p in pairs]),
                  ("length-controlled", LC_COLOUR, [(p.lc_win_rate_a, p.lc_ci_low, p.lc_ci_high) for p in pairs])]
        if self.human is not None:
            humans = [self._human_pair(p) for p in pairs]
            series.append(("human", HUMAN_COLOUR, [(h.win_rate_a, h.ci_low, h.ci_high) if h else (None, None, None)
                                                   for h in humans]))
        # The key is a label under the plot: a long plot title widens the plot past its widget (clipped).
        # The rows are named by letter ("A vs B"); the key says which system each letter is, in full.
        names = {}
        for p in pairs:
            names.setdefault(p.index_a, p.system_a)
            names.setdefault(p.index_b, p.system_b)
        letters = " · ".join(f"{_letter(i)} = {html.escape(name)}" for i, name in sorted(names.items()))
        self.rate_key.setText("&nbsp;&nbsp;".join(f'<span style="color:{colour}">■</span> {name}'
                                                  for name, colour, _ in series) + f"<br>{letters}")
        height = 0.8 / len(series)
        rows = len(pairs) - 1 - np.arange(len(pairs), dtype=float)  # the first pair on top
        ink = plot.palette().text().color()
        for place, (name, colour, values) in enumerate(series):
            ok, value, below, above = _whiskers(*map(list, zip(*values)))
            y = rows + 0.4 - height * (place + 0.5)
            if not ok.any():
                continue
            bar = pg.BarGraphItem(x0=np.zeros(int(ok.sum())), y=y[ok], width=value[ok], height=height * 0.85,
                                  brush=colour, pen=pg.mkPen(colour))
            plot.add_bars(bar, pg.ErrorBarItem(x=value[ok], y=y[ok], left=below[ok], right=above[ok],
                                               beam=height * 0.4, pen=pg.mkPen(ink, width=1.5)))
            for yi, vi, end in zip(y[ok], value[ok], (value + above)[ok]):
                label = pg.TextItem(f"{vi:.0f}", color=ink, anchor=(0, 0.5))
                label.setPos(float(end) + 1, float(yi))
                plot.addItem(label)
        plot.addItem(pg.InfiniteLine(pos=50, angle=90, pen=_DASH))
        plot.getPlotItem().getAxis("left").setTicks(
            [[(float(row), f"{_letter(p.index_a)} vs {_letter(p.index_b)}") for row, p in zip(rows, pairs)]])
        plot.setXRange(0, 112, padding=0)
        middle, half = (len(pairs) - 1) / 2, max(len(pairs), 1.8) / 2  # one pair: bars not a wall of colour
        plot.setYRange(middle - half, middle + half, padding=0)

    def _draw_ranking(self, ranking: list[RankRow] | None) -> None:
        """Horizontal bars, best on top: the chance to beat an average system (sigmoid of the log-strength)."""
        self.rank_box.setVisible(bool(ranking))
        plot = self.rank_plot
        plot.reset()
        self.rank_table.setRowCount(0)
        if not ranking:
            return
        rows = list(reversed(ranking))  # y = 0 at the bottom: the best system drawn last, on top
        chance = [1 / (1 + math.exp(-r.strength)) for r in rows]
        lows = [None if r.ci_low is None else 1 / (1 + math.exp(-r.ci_low)) for r in rows]
        highs = [None if r.ci_high is None else 1 / (1 + math.exp(-r.ci_high)) for r in rows]
        _, value, below, above = _whiskers(chance, lows, highs)
        y = np.arange(len(rows), dtype=float)
        plot.add_bars(pg.BarGraphItem(x0=np.zeros(len(rows)), y=y, width=value, height=0.6, brush=JUDGE_COLOUR,
                                      pen=pg.mkPen(JUDGE_COLOUR)),
                      pg.ErrorBarItem(x=value, y=y, left=below, right=above, beam=0.25,
                                      pen=pg.mkPen(plot.palette().text().color(), width=1.5)))
        plot.addItem(pg.InfiniteLine(pos=50, angle=90, pen=_DASH))
        # Letters as on the win-rate plot (elided names there read as noise); the table names each in full.
        plot.getPlotItem().getAxis("left").setTicks([[(float(i), _letter(r.index)) for i, r in enumerate(rows)]])
        plot.getPlotItem().setLabel("bottom", "% vs an average system")
        plot.setXRange(0, 104, padding=0)
        plot.setYRange(-0.6, len(rows) - 0.4, padding=0)
        self.rank_table.setRowCount(len(ranking))
        for row, r in enumerate(ranking):
            interval = strength_interval_text(r, " … ") or "—"
            cells = (str(r.rank), f"{_letter(r.index)}  {r.system}", f"{r.strength:+.2f}", interval,
                     percent(r.score))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column != 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.rank_table.setItem(row, column, item)

    def _draw_categories(self, pair: PairResult) -> None:
        """The selected pair's win rate per category, largest categories on top, with Wilson whiskers."""
        plot = self.category_plot
        plot.reset()
        categories = list(pair.per_category.items())
        self.category_plot.setVisible(bool(categories))
        if not categories:
            return
        shown = categories[:MAX_CATEGORIES]
        more = len(categories) - len(shown)
        plot.setTitle("By category" + (f" ({len(shown)} largest of {len(categories)})" if more else ""))
        plot.apply_palette()
        rows = list(reversed(shown))
        ok, value, below, above = _whiskers([c["win_rate_a"] for _, c in rows], [c["ci_low"] for _, c in rows],
                                            [c["ci_high"] for _, c in rows])
        y = np.arange(len(rows), dtype=float)
        colour = HUMAN_COLOUR if self.votes_only else JUDGE_COLOUR
        if ok.any():
            plot.add_bars(pg.BarGraphItem(x0=np.zeros(int(ok.sum())), y=y[ok], width=value[ok], height=0.6,
                                          brush=colour, pen=pg.mkPen(colour)),
                          pg.ErrorBarItem(x=value[ok], y=y[ok], left=below[ok], right=above[ok], beam=0.25,
                                          pen=pg.mkPen(plot.palette().text().color(), width=1.5)))
        plot.addItem(pg.InfiniteLine(pos=50, angle=90, pen=_DASH))
        ticks = [(float(i), f"{_short(name, 18)} ({c['n']})") for i, (name, c) in enumerate(rows)]
        plot.getPlotItem().getAxis("left").setTicks([ticks])
        plot.setXRange(0, 104, padding=0)
        plot.setYRange(-0.6, len(rows) - 0.4, padding=0)

    # -- theme -----------------------------------------------------------------------------------------
    def _style_warning(self) -> None:
        c = colors(palette_look(self.palette()))
        self.warning.setStyleSheet(f"QLabel#LengthBiasWarning {{ background: {c['warning_bg']}; color: {c['text']}; "
                                   f"border: 1px solid {c['warning']}; border-radius: 4px; padding: 6px; "
                                   "font-weight: 600; }")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._style_warning()
