"""The results view shows the numbers with their intervals, the length-bias warning and the plots."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from studio.core.evaluation.model import Outcome, judge_outcome
from studio.core.evaluation.stats import agreement, summarise
from studio.ui.eval_results_view import EvalResultsView


@pytest.fixture
def view(qtbot):
    widget = EvalResultsView()
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    return widget


def _alpaca() -> list[Outcome]:
    winners = ["a"] * 90 + ["b"] * 89 + ["tie"] * 73
    return [judge_outcome(i, 0, 1, w, w, 500, 500, category="Gmail" if i % 3 else "Twitter")
            for i, w in enumerate(winners)]


def _longer_wins() -> list[Outcome]:
    rng = np.random.default_rng(1)
    outcomes = []
    for i in range(252):
        a, b = int(max(10, rng.normal(900, 300))), int(max(10, rng.normal(600, 300)))
        winner = "a" if a > b else "b"
        outcomes.append(judge_outcome(i, 0, 1, winner, winner, a, b))
    return outcomes


def test_empty_state(view):
    assert view.empty.isVisible() and not view.body.isVisible()
    assert view.current_pair() is None


def test_shows_the_numbers_with_the_wilson_interval(view):
    view.show_result(summarise(_alpaca(), ["student", "text-davinci-003"]))
    assert not view.empty.isVisible() and view.body.isVisible()
    card = view.cards["win_rate"]
    assert card.value.text() == "50.3 %"
    assert "50.3 % (43.0–57.5 %, Wilson 95 %)" in card.text()
    assert card.title.text() == "Win rate of student"
    assert view.cards["record"].value.text() == "90 / 73 / 89"
    assert view.cards["inconsistent"].value.text() == "0"
    assert view.cards["consistency"].value.text() == "100.0 %"
    assert view.cards["lengths"].value.text() == "500 / 500"
    assert view.cards["lc"].value.text() == "50.2 %"  # equal lengths: LC is the ties-half rate, (90 + 36.5) / 252
    assert not view.warning.isVisible()
    assert not view.pair_combo.isVisible()  # one pair: nothing to pick
    assert not view.rank_box.isVisible()
    assert not view.cards["human"].isVisible() and not view.cards["agreement"].isVisible()


def test_plot_items_exist_with_intervals(view):
    view.show_result(summarise(_alpaca(), ["A", "B"]))
    # Win rate: a judge bar and a length-controlled bar, each with its whiskers.
    assert len(view.rate_plot.bars) == 2 and len(view.rate_plot.error_bars) == 2
    items = view.rate_plot.getPlotItem().items
    assert sum(isinstance(i, pg.BarGraphItem) for i in items) == 2
    assert sum(isinstance(i, pg.ErrorBarItem) for i in items) == 2
    whiskers = view.rate_plot.error_bars[0].opts
    assert whiskers["x"][0] == pytest.approx(100 * 90 / 179)
    assert whiskers["x"][0] - whiskers["left"][0] == pytest.approx(43.03, abs=0.01)
    assert whiskers["x"][0] + whiskers["right"][0] == pytest.approx(57.52, abs=0.01)
    # Per category: two categories, one bar item with two bars and whiskers.
    assert view.category_plot.isVisible()
    assert len(view.category_plot.bars) == 1 and len(view.category_plot.error_bars) == 1
    assert len(view.category_plot.bars[0].opts["y"]) == 2


def test_length_bias_warning_is_visible(view):
    view.show_result(summarise(_longer_wins(), ["long", "short"]))
    pair = view.current_pair()
    assert pair.length_bias
    assert view.warning.isVisible()
    assert "Length bias" in view.warning.text() and "longer answers" in view.warning.text()
    assert "▲" in view.cards["lc"].value.text()
    assert not view.category_plot.isVisible()  # no categories in these prompts
    view.show_result(summarise(_alpaca(), ["A", "B"]))
    assert not view.warning.isVisible()


def test_a_length_confounded_pair_and_a_one_sided_ranking_interval_are_shown(view):
    outcomes = [judge_outcome(i, 0, 1, w, w, 300 + 7 * (i % 5), 50) for i, w in enumerate("ab" * 15)]
    view.show_result(summarise(outcomes, ["long", "short"]))
    assert view.warning.isVisible()
    assert "long's answer was longer on every prompt" in view.warning.text()
    assert view.cards["lc"].value.text() == "— ▲"
    always = ([Outcome(p, 0, 1, "a", 1, 1) for p in range(10)] + [Outcome(p, 0, 2, "a", 1, 1) for p in range(10)]
              + [Outcome(p, 1, 2, "a" if p % 2 else "b", 1, 1) for p in range(10)])
    view.show_result(summarise(always, ["always", "half", "other"], bootstrap_rounds=100))
    assert view.rank_table.item(0, 3).text().startswith("≥ ")


def test_human_votes_and_agreement(view):
    judge = _alpaca()
    human = [Outcome(i, 0, 1, "a" if i % 2 else "tie", 500, 500, both_bad=not i % 2) for i in range(20)]
    view.show_result(summarise(judge, ["A", "B"]), human=summarise(human, ["A", "B"]),
                     agreement=agreement(judge, human))
    assert view.cards["human"].isVisible() and view.cards["agreement"].isVisible()
    assert view.cards["human"].value.text() == "100.0 %"
    assert "10 both bad" in view.cards["human"].detail.text()
    share, n = agreement(judge, human)
    assert view.cards["agreement"].value.text() == f"{100 * share:.1f} %"
    assert f"of {n} prompts" in view.cards["agreement"].detail.text()
    assert len(view.rate_plot.bars) == 3  # judge, length-controlled, human


def test_more_than_two_systems_show_the_ranking_and_a_pair_selector(view, qtbot):
    strengths = [1.0, 0.0, -1.0]
    rng = np.random.default_rng(2)
    outcomes = []
    for prompt in range(60):
        for i, j in ((0, 1), (0, 2), (1, 2)):
            p = 1 / (1 + np.exp(-(strengths[i] - strengths[j])))
            outcomes.append(Outcome(prompt, i, j, "a" if rng.random() < p else "b", 100 + 10 * j, 100,
                                    category="x" if prompt % 2 else "y"))
    result = summarise(outcomes, ["strong", "middle", "weak"], bootstrap_rounds=200)
    view.show_result(result)
    assert view.rank_box.isVisible() and view.pair_combo.isVisible()
    assert view.pair_combo.count() == 3
    assert [view.rank_table.item(r, 1).text() for r in range(3)] == ["A  strong", "B  middle", "C  weak"]
    ticks = view.rank_plot.getPlotItem().getAxis("left")._tickLevels[0]
    assert sorted(label for _, label in ticks) == ["A", "B", "C"]  # the letters of the win-rate plot's key
    assert view.rank_table.item(0, 0).text() == "1"
    assert len(view.rank_plot.bars) == 1 and len(view.rank_plot.error_bars) == 1
    assert len(view.rank_plot.bars[0].opts["y"]) == 3
    assert len(view.rate_plot.bars[0].opts["y"]) == 3  # one judge bar per pair

    with qtbot.waitSignal(view.pair_selected) as signal:
        view.pair_combo.setCurrentIndex(2)
    assert signal.args == [1, 2]
    assert view.cards["win_rate"].title.text() == "Win rate of middle"
    middle_weak = result.pairs[2]
    assert view.cards["record"].value.text() == f"{middle_weak.wins_a} / {middle_weak.ties} / {middle_weak.wins_b}"
    # A new result for the same systems keeps the pair the user picked.
    view.show_result(result)
    assert view.selected_pair() == (1, 2)
    view.show_result(None)
    assert view.empty.isVisible() and not view.rank_plot.bars


def test_a_votes_only_result_speaks_of_the_votes_not_a_judge(view):
    result = summarise(_longer_wins(), ["run-3 (student)", "gpt-4o-mini (teacher)"])
    result.meta["judge"] = "human"  # what the panel's worker writes for a result computed from votes
    view.show_result(result)
    assert view.warning.isVisible()
    assert "judge" not in view.warning.text() and "votes" in view.warning.text()
    assert "judge" not in view.rate_key.text() and "votes" in view.rate_key.text()
    assert not view.cards["inconsistent"].isVisible() and not view.cards["consistency"].isVisible()
    judged = summarise(_longer_wins(), ["run-3 (student)", "gpt-4o-mini (teacher)"])
    view.show_result(judged)
    assert "judge" in view.warning.text() and "judge" in view.rate_key.text()
    assert view.cards["consistency"].isVisible()


def test_the_rate_plot_names_pairs_by_letter_and_keys_the_full_names(view):
    """Long system names elided on the y axis read as noise ("run-3 (...udent)"): letters there, names below."""
    view.show_result(summarise(_alpaca(), ["run-3 (student)", "gpt-4o-mini (teacher)"]))
    ticks = view.rate_plot.getPlotItem().getAxis("left")._tickLevels[0]
    assert [label for _, label in ticks] == ["A vs B"]
    assert "A = run-3 (student) · B = gpt-4o-mini (teacher)" in view.rate_key.text()
    assert view.rate_plot.getPlotItem().titleLabel.text == "Win rate, 95 % interval"


def test_long_system_names_do_not_widen_the_rate_plot_past_the_others(view):
    """Three endpoint labels in the key must wrap: unwrapped, they pushed the ranking and category plots to slivers."""
    labels = [f"{name} @ 127.0.0.1:40787" for name in ("student-run-3", "gpt-4o-mini", "llama-base")]
    outcomes = [Outcome(p, i, j, "a" if (p + i) % 3 else "b", 500, 400, category="c" if p % 2 else "d")
                for p in range(30) for i, j in ((0, 1), (0, 2), (1, 2))]
    view.resize(860, 560)
    view.show_result(summarise(outcomes, labels, bootstrap_rounds=100))
    for _ in range(5):
        view.repaint()
    widths = [view.rate_box.width(), view.rank_box.width(), view.category_plot.width()]
    assert min(widths) > 0.6 * max(widths), widths
