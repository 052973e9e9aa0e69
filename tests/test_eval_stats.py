"""The statistics of a pairwise evaluation: intervals, length control, Bradley–Terry, export."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from studio.core.evaluation.model import Outcome, judge_outcome
from studio.core.evaluation.results_io import companion_paths, write_csv, write_json
from studio.core.evaluation.stats import (
    LENGTH_BIAS_MIN_N,
    LENGTH_BIAS_THRESHOLD,
    EvalResult,
    agreement,
    bootstrap_interval,
    bradley_terry,
    lc_win_rate,
    length_confounded_text,
    position_consistency,
    strength_interval_text,
    summarise,
    wilson_interval,
    win_rate_text,
)


def _outcomes(wins_a: int, wins_b: int, ties: int = 0, *, len_a: int = 100, len_b: int = 100) -> list[Outcome]:
    winners = ["a"] * wins_a + ["b"] * wins_b + ["tie"] * ties
    return [Outcome(i, 0, 1, w, len_a, len_b) for i, w in enumerate(winners)]


def test_wilson_interval_matches_alpacas_90_vs_89_computed_by_hand():
    # Wilson by hand: p = 90/179; centre = (p + z²/2n)/(1 + z²/n); half = z/(1 + z²/n)·√(p(1−p)/n + z²/4n²)
    n, z = 179, 1.959963984540054
    p = 90 / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = wilson_interval(90, 179)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    # The same by hand on paper: centre 0.502734, half-width 0.072473.
    assert (low, high) == (pytest.approx(0.430262, abs=1e-6), pytest.approx(0.575207, abs=1e-6))
    assert (round(low, 3), round(high, 3)) == (0.430, 0.575)  # STACK.md: about 43–57 %
    # Edges: nothing counted is undefined; all wins stays inside [0, 1].
    assert wilson_interval(0, 0) == (None, None)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] > 0.6


def test_one_wording_and_one_count_for_every_caller():
    # The CLI's category rows and evaluation list use these too (no second copy to drift).
    from studio.core.evaluation import cli_support, engine, judge
    from studio.core.evaluation.stats import pair_counts, wilson_text

    assert cli_support.JUDGE_ROLE is engine.JUDGE_ROLE is judge.JUDGE_ROLE
    counts = pair_counts(_outcomes(90, 89, 73))
    assert (counts["n"], counts["wins_a"], counts["wins_b"], counts["ties"]) == (252, 90, 89, 73)
    assert wilson_text(counts["ci_low"], counts["ci_high"]) == "(43.0–57.5 %, Wilson 95 %)"
    assert cli_support._interval(counts["ci_low"], counts["ci_high"]) == " (43.0–57.5 %, Wilson 95 %)"


def test_summarise_alpaca_counts_with_ties():
    result = summarise(_outcomes(90, 89, 73), ["student", "text-davinci-003"])
    pair = result.first
    assert (pair.n, pair.wins_a, pair.wins_b, pair.ties, pair.inconsistent) == (252, 90, 89, 73, 0)
    assert pair.win_rate_a == pytest.approx(90 / 179)
    assert (pair.ci_low, pair.ci_high) == wilson_interval(90, 179)
    assert pair.win_rate_a_ties_half == pytest.approx((90 + 73 / 2) / 252)
    assert result.ci_method == "wilson" and result.ranking is None
    assert win_rate_text(pair) == "50.3 % (43.0–57.5 %, Wilson 95 %)"
    # Equal lengths everywhere: nothing to control for, so LC is the ties-half rate.
    assert pair.lc_win_rate_a == pytest.approx(pair.win_rate_a_ties_half, abs=1e-3)
    assert not pair.length_bias
    assert (pair.avg_len_a, pair.avg_len_b) == (100.0, 100.0)


def test_bootstrap_interval_is_reproducible_and_brackets_the_estimate():
    values = np.random.default_rng(7).normal(3.0, 2.0, 200)
    first = bootstrap_interval(values, np.mean, rounds=500, seed=11)
    assert first == bootstrap_interval(values, np.mean, rounds=500, seed=11)
    assert first != bootstrap_interval(values, np.mean, rounds=500, seed=12)
    low, high = first
    assert low < values.mean() < high
    # About the normal-theory width: ±1.96·σ/√n.
    assert high - low == pytest.approx(2 * 1.96 * values.std() / math.sqrt(200), rel=0.2)
    # A stat undefined on a resample is left out; nothing left → (None, None).
    assert bootstrap_interval([], np.mean) == (None, None)
    assert bootstrap_interval([1, 2, 3], lambda v: None, rounds=20) == (None, None)


def _lengths(seed: int, n: int = 252) -> tuple[np.ndarray, np.ndarray]:
    """A's answers longer on average (~900 vs ~600 characters, A longer on about three prompts in four)."""
    rng = np.random.default_rng(seed)
    return (np.maximum(10, rng.normal(900, 300, n)).astype(int), np.maximum(10, rng.normal(600, 300, n)).astype(int))


def test_a_judge_that_always_prefers_the_longer_answer_is_caught_by_length_control():
    len_a, len_b = _lengths(1)
    outcomes = [Outcome(i, 0, 1, "a" if a > b else "b" if b > a else "tie", int(a), int(b))
                for i, (a, b) in enumerate(zip(len_a, len_b))]
    pair = summarise(outcomes, ["long", "short"]).first
    assert pair.win_rate_a_ties_half > 0.7  # the raw number says A is clearly better...
    assert pair.lc_win_rate_a == pytest.approx(0.5, abs=0.1)  # ...at equal length it is a coin toss
    assert pair.lc_win_rate_a == pytest.approx(lc_win_rate(outcomes))
    assert pair.length_bias
    assert pair.lc_ci_low < 0.5 < pair.lc_ci_high


def test_a_judge_of_quality_alone_keeps_lc_near_the_raw_rate():
    len_a, len_b = _lengths(2)
    draws = np.random.default_rng(3).random(len(len_a))  # quality: independent of length
    winners = np.where(draws < 0.55, "a", np.where(draws < 0.9, "b", "tie"))
    outcomes = [Outcome(i, 0, 1, str(w), int(a), int(b)) for i, (w, a, b) in enumerate(zip(winners, len_a, len_b))]
    pair = summarise(outcomes, ["A", "B"]).first
    assert pair.lc_win_rate_a == pytest.approx(pair.win_rate_a_ties_half, abs=0.05)
    assert not pair.length_bias


def test_lc_is_undefined_when_length_cannot_be_separated_from_quality():
    assert lc_win_rate([]) is None
    # A is longer by exactly the same amount every time: no data at zero difference.
    pair = summarise(_outcomes(30, 10, len_a=200, len_b=100), ["A", "B"]).first
    assert pair.lc_win_rate_a is None and not pair.length_bias


def test_lc_is_undefined_when_a_is_always_far_longer_and_always_wins():
    # A ~220 characters longer every time, give or take 20: tanh(d / std) is 1 on every prompt, so the
    # GLM's intercept is the penalties' split, not the data's (it read 100 %, bootstrap 100–100 %).
    jitter = np.random.default_rng(4).integers(0, 40, 60)
    outcomes = [Outcome(i, 0, 1, "a", 270 + int(j), 50) for i, j in enumerate(jitter)]
    pair = summarise(outcomes, ["long", "short"]).first
    assert pair.win_rate_a == 1.0
    assert pair.lc_win_rate_a is None and pair.lc_ci_low is None and pair.lc_ci_high is None
    assert not pair.length_bias


def test_all_inconsistent_outcomes_give_no_wins_and_no_win_rate():
    # A judge that always picks the first position: A wins with A first, B wins with B first.
    outcomes = [judge_outcome(i, 0, 1, "a", "b", 120, 80) for i in range(40)]
    pair = summarise(outcomes, ["A", "B"]).first
    assert (pair.wins_a, pair.wins_b, pair.ties, pair.inconsistent) == (0, 0, 40, 40)
    assert pair.win_rate_a is None and pair.ci_low is None and pair.ci_high is None
    assert win_rate_text(pair) == "no decisive judgment"
    assert pair.win_rate_a_ties_half == 0.5
    assert pair.position_consistency == 0.0 and pair.judged_both_orders == 40
    data = json.loads(json.dumps(summarise(outcomes, ["A", "B"]).to_dict()))
    assert data["win_rate_a"] is None and data["ci_low"] is None and data["inconsistent"] == 40


def test_position_consistency_counts_only_pairs_judged_both_ways():
    outcomes = [judge_outcome(0, 0, 1, "a", "a", 1, 1), judge_outcome(1, 0, 1, "b", "b", 1, 1),
                judge_outcome(2, 0, 1, "a", "tie", 1, 1), judge_outcome(3, 0, 1, None, "a", 1, 1)]
    assert position_consistency(outcomes) == (pytest.approx(2 / 3), 3)
    assert position_consistency([Outcome(0, 0, 1, "a", 1, 1)]) == (None, 0)  # a human vote has no orders


def test_bradley_terry_recovers_the_order_of_three_systems():
    strengths = np.array([1.0, 0.0, -1.0])
    rng = np.random.default_rng(5)
    outcomes = []
    for prompt in range(150):
        for i, j in ((0, 1), (0, 2), (1, 2)):
            p = 1 / (1 + math.exp(-(strengths[i] - strengths[j])))
            draw = rng.random()
            winner = "a" if draw < p * 0.9 else "b" if draw < 0.9 else "tie"
            outcomes.append(Outcome(prompt, i, j, winner, 100, 100))
    fitted = bradley_terry(outcomes, 3)
    assert fitted[0] > fitted[1] > fitted[2]
    assert sum(fitted) == pytest.approx(0, abs=1e-9)
    assert fitted[0] - fitted[2] == pytest.approx(2.0 * 0.9, abs=0.5)  # ties flatten it a little
    result = summarise(outcomes, ["strong", "middle", "weak"], bootstrap_rounds=300, seed=1)
    assert [row.system for row in result.ranking] == ["strong", "middle", "weak"]
    assert [row.rank for row in result.ranking] == [1, 2, 3]
    for row in result.ranking:
        assert row.ci_low < row.strength < row.ci_high
        assert row.games == 300
    assert result.ranking[0].ci_low > result.ranking[1].ci_high  # clearly separated
    assert [(p.system_a, p.system_b) for p in result.pairs] == [("strong", "middle"), ("strong", "weak"),
                                                                 ("middle", "weak")]
    again = summarise(outcomes, ["strong", "middle", "weak"], bootstrap_rounds=300, seed=1)
    assert again.to_dict() == result.to_dict()


def test_bradley_terry_stays_finite_for_a_system_that_never_won():
    outcomes = [Outcome(p, 0, 1, "a", 1, 1) for p in range(20)] + [Outcome(p, 1, 2, "a", 1, 1) for p in range(20)]
    fitted = bradley_terry(outcomes, 3)
    assert all(math.isfinite(v) for v in fitted) and fitted[0] > fitted[1] > fitted[2]


def test_a_system_that_won_or_lost_every_game_gets_a_one_sided_interval():
    # 0 beats 1 and 2 always; 1 and 2 split their games: 0's strength is only where the penalty stops it.
    outcomes = ([Outcome(p, 0, 1, "a", 1, 1) for p in range(20)] + [Outcome(p, 0, 2, "a", 1, 1) for p in range(20)]
                + [Outcome(p, 1, 2, "a" if p % 2 else "b", 1, 1) for p in range(20)])
    ranking = summarise(outcomes, ["always", "half", "other"], bootstrap_rounds=200).ranking
    best = ranking[0]
    assert best.system == "always" and best.score == 1.0
    assert best.ci_high is None and best.ci_low is not None and best.ci_low < best.strength
    assert strength_interval_text(best) == f"≥ {best.ci_low:+.2f}"
    for row in ranking[1:]:  # won some, lost some: a two-sided interval
        assert row.ci_low is not None and row.ci_high is not None
        assert strength_interval_text(row) == f"{row.ci_low:+.2f} to {row.ci_high:+.2f}"
    flipped = [Outcome(o.prompt_id, o.system_a, o.system_b, "b" if o.winner == "a" else "a", 1, 1) for o in outcomes]
    worst = summarise(flipped, ["never", "half", "other"], bootstrap_rounds=200).ranking[-1]
    assert worst.system == "never" and worst.score == 0.0 and worst.ci_low is None and worst.ci_high is not None
    assert strength_interval_text(worst) == f"≤ {worst.ci_high:+.2f}"


def test_a_pair_where_one_answer_is_always_longer_is_flagged_length_confounded():
    # A longer on every prompt, by amounts that vary (220–260 chars): LC undefined, and flagged.
    jitter = np.random.default_rng(4).integers(0, 40, 30)
    outcomes = [Outcome(i, 0, 1, "a" if i % 3 else "b", 270 + int(j), 50) for i, j in enumerate(jitter)]
    pair = summarise(outcomes, ["long", "short"]).first
    assert pair.lc_win_rate_a is None and pair.length_confounded
    assert length_confounded_text(pair, "A") == \
        "A's answer was longer on every prompt, so length and quality cannot be told apart"
    assert summarise(outcomes, ["long", "short"]).to_dict()["length_confounded"] is True
    shorter = [Outcome(o.prompt_id, 0, 1, o.winner, o.len_b, o.len_a) for o in outcomes]
    assert "A's answer was shorter" in length_confounded_text(summarise(shorter, ["s", "l"]).first, "A")
    # Too few prompts to flag; lengths that differ both ways have an LC rate and no flag.
    assert not summarise(outcomes[:LENGTH_BIAS_MIN_N - 1], ["long", "short"]).first.length_confounded
    mixed = summarise(_longer_wins_mixed(), ["A", "B"]).first
    assert mixed.lc_win_rate_a is not None and not mixed.length_confounded


def _longer_wins_mixed() -> list[Outcome]:
    rng = np.random.default_rng(1)
    return [Outcome(i, 0, 1, "a" if i % 2 else "b", int(rng.integers(50, 500)), int(rng.integers(50, 500)))
            for i in range(60)]


def test_per_category_breakdown():
    outcomes = ([Outcome(i, 0, 1, "a", 10, 10, category="Gmail") for i in range(8)]
                + [Outcome(8 + i, 0, 1, "b", 10, 10, category="Twitter") for i in range(3)]
                + [Outcome(11, 0, 1, "tie", 10, 10, category="Twitter"), Outcome(12, 0, 1, "a", 10, 10)])
    pair = summarise(outcomes, ["A", "B"]).first
    assert list(pair.per_category) == ["Gmail", "Twitter", "(no category)"]  # largest first
    assert pair.per_category["Gmail"] == {"n": 8, "wins_a": 8, "wins_b": 0, "ties": 0, "win_rate_a": 1.0,
                                          "ci_low": wilson_interval(8, 8)[0], "ci_high": 1.0}
    twitter = pair.per_category["Twitter"]
    assert (twitter["n"], twitter["wins_b"], twitter["ties"], twitter["win_rate_a"]) == (4, 3, 1, 0.0)
    assert summarise(outcomes, ["A", "B"], categories=False).first.per_category == {}
    assert summarise(_outcomes(3, 2), ["A", "B"]).first.per_category == {}  # no categories at all


def test_agreement_between_judge_and_human():
    judge = [judge_outcome(0, 0, 1, "a", "a", 1, 1), judge_outcome(1, 0, 1, "b", "b", 1, 1),
             judge_outcome(2, 0, 1, "a", "b", 1, 1), judge_outcome(3, 0, 1, "a", "a", 1, 1)]
    human = [Outcome(0, 0, 1, "a", 1, 1), Outcome(1, 0, 1, "a", 1, 1),
             Outcome(2, 0, 1, "tie", 1, 1, both_bad=True), Outcome(9, 0, 1, "a", 1, 1)]
    assert agreement(judge, human) == (pytest.approx(2 / 3), 3)  # prompt 9 has no judgment, 3 no vote
    assert agreement(judge, []) == (None, 0)
    # A judge "tie" from an unreadable verdict is no decision: it does not agree with a human tie.
    unreadable = [judge_outcome(0, 0, 1, None, "a", 1, 1), judge_outcome(1, 0, 1, None, None, 1, 1),
                  judge_outcome(2, 0, 1, "tie", "tie", 1, 1)]
    ties = [Outcome(p, 0, 1, "tie", 1, 1) for p in range(3)]
    assert agreement(unreadable, ties) == (1.0, 1)
    pair = summarise(human, ["A", "B"]).first
    assert pair.both_bad == 1 and pair.position_consistency is None


def test_summary_json_keys_and_round_trip():
    result = summarise(_outcomes(5, 3, 2), ["A", "B"])
    result.meta.update(evaluation_id=7, set_hash="abc")
    data = json.loads(json.dumps(result.to_dict()))
    for key in ("n", "wins_a", "wins_b", "ties", "inconsistent", "win_rate_a", "ci_low", "ci_high", "lc_win_rate_a",
                "avg_len_a", "avg_len_b"):
        assert key in data
    assert data["n"] == 10 and data["meta"]["evaluation_id"] == 7
    assert EvalResult.from_dict(data).to_dict() == data
    empty = summarise([], ["A", "B"]).to_dict()
    assert empty["n"] == 0 and empty["win_rate_a"] is None and empty["avg_len_a"] is None
    with pytest.raises(ValueError, match="systems"):
        summarise([Outcome(0, 0, 2, "a", 1, 1)], ["A", "B"])


def test_export_json_and_csv(tmp_path):
    outcomes = [Outcome(i, 0, 1, w, 10 + i, 12, category="Gmail" if i % 2 else "Slack")
                for i, w in enumerate(["a", "b", "tie", "a", "a", "b"])]
    result = summarise(outcomes, ["A", "B"], bootstrap_rounds=50)
    result.meta.update(evaluation_id=3, set_hash="f00d", judge="gpt")
    rows = [{"prompt_id": o.prompt_id, "category": o.category, "instruction": f"Say \"hi\",\nplease {o.prompt_id}",
             "winner": o.winner, "inconsistent": o.inconsistent, "human": None, "messages": [{"role": "user"}]}
            for o in outcomes]
    [json_path] = write_json(result, rows, tmp_path / "out" / "result.json")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["wins_a"] == 3 and data["meta"]["set_hash"] == "f00d" and len(data["prompts"]) == 6
    assert data["prompts"][0]["instruction"] == "Say \"hi\",\nplease 0"

    written = write_csv(result, rows, tmp_path / "result.csv")
    summary_path, ranking_path = companion_paths(tmp_path / "result.csv")
    assert written == [tmp_path / "result.csv", summary_path] and summary_path.name == "result.summary.csv"
    assert not ranking_path.exists()
    with open(tmp_path / "result.csv", newline="", encoding="utf-8") as stream:
        prompt_rows = list(csv.DictReader(stream))
    assert len(prompt_rows) == 6 and prompt_rows[1]["instruction"] == "Say \"hi\",\nplease 1"
    assert prompt_rows[0]["human"] == "" and prompt_rows[0]["inconsistent"] == "false"
    assert json.loads(prompt_rows[0]["messages"]) == [{"role": "user"}]
    with open(summary_path, newline="", encoding="utf-8") as stream:
        summary = list(csv.DictReader(stream))
    assert [row["category"] for row in summary] == ["", "Gmail", "Slack"]
    assert summary[0]["wins_a"] == "3" and summary[0]["evaluation_id"] == "3"
    assert float(summary[0]["ci_low"]) == pytest.approx(result.first.ci_low)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary file left behind

    three = summarise([Outcome(0, 0, 1, "a", 1, 1), Outcome(0, 0, 2, "a", 1, 1), Outcome(0, 1, 2, "b", 1, 1)],
                      ["x", "y", "z"], bootstrap_rounds=20)
    written = write_csv(three, [], tmp_path / "three.csv")
    assert written[-1].name == "three.ranking.csv"
    with open(written[-1], newline="", encoding="utf-8") as stream:
        assert [row["system"] for row in csv.DictReader(stream)] == ["x", "z", "y"]


def test_a_handful_of_prompts_is_never_flagged_for_length_bias() -> None:
    # Six prompts: LC moves far from the raw rate
    # on so few points, but that is noise, not a judge following length.
    lengths = [(15, 15), (30, 42), (41, 16), (29, 45), (28, 55), (17, 45)]
    winners = ["a", "a", "a", "tie", "tie", "tie"]
    outcomes = [judge_outcome(i, 0, 1, w, w, a, b) for i, ((a, b), w) in enumerate(zip(lengths, winners))]
    pair = summarise(outcomes, ["A", "B"]).pairs[0]
    assert abs(pair.lc_win_rate_a - pair.win_rate_a_ties_half) >= LENGTH_BIAS_THRESHOLD  # the gap is there...
    assert pair.n == 6 < LENGTH_BIAS_MIN_N and not pair.length_bias  # ...but six prompts are too few to say so
