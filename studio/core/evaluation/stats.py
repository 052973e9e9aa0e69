"""What a pairwise evaluation says, honestly: win rates with intervals, length control, rankings.

Alpaca's headline, 90 wins against 89, is a 50.3 % win rate whose 95 % interval spans about
43–57 %: a tie. Every number here therefore comes with its interval or its caveat:

- the win rate of A over its decisive judgments, with a Wilson 95 % interval (it stays inside
  0–1 and is honest for small counts, unlike the normal approximation);
- a length-controlled win rate, as AlpacaEval 2 does it: a logistic GLM of the outcome on
  ``tanh(length difference / its std)``, read at zero length difference, so a judge that simply
  likes longer answers is caught (``length_bias``);
- the judge's position consistency (both orders agree), per-category breakdowns, agreement
  with human votes, and a Bradley–Terry ranking with bootstrap intervals for more than two
  systems.

Plain numpy, no I/O: the CLI, the export and the results view all read :func:`summarise`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from studio.core.evaluation.model import A_WINS, B_WINS, Outcome

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile
LENGTH_BIAS_THRESHOLD = 0.10  # |LC − ties-half rate| at which the judge is flagged for length bias
# Below this many outcomes the GLM's slope is mostly noise (6 prompts once moved LC by 13 points): no flag.
LENGTH_BIAS_MIN_N = 10
# L2 penalties of the LC GLM. The length slope is regularised so that a judge that *always*
# picks the longer answer (perfectly separable data) still gives a finite fit that reads ≈ 0.5
# at zero difference; the intercept only a little, to keep a one-sided result finite.
LC_SLOPE_PENALTY = 0.1
LC_INTERCEPT_PENALTY = 1e-3
# Below this spread of tanh(d / std(d)) the length feature is all but constant (A always far
# longer than B, say: tanh saturates at 1): the GLM cannot tell length from quality and its
# intercept only splits the penalties (a long always-winning A read 100 % with a 100–100 interval).
LC_MIN_FEATURE_SPREAD = 0.05
BT_PENALTY = 1e-2  # keeps a system that never won finite; the log-strengths then have mean 0
UNCATEGORISED = "(no category)"


# -- intervals -------------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion; ``(None, None)`` when there is nothing to count.

    ``p̂ = s/n``; centre ``(p̂ + z²/2n) / (1 + z²/n)``; half-width
    ``z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/4n²)``.
    """
    if n <= 0:
        return None, None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({successes} of {n})")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _bootstrap_indexes(n: int, rounds: int, seed: int) -> np.ndarray:
    """``rounds`` resamples of ``range(n)`` with replacement, the same for the same seed."""
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def _percentiles(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(values: Sequence[Any] | np.ndarray, stat: Callable[[np.ndarray], float | None], *,
                       rounds: int = 2000, seed: int = 0, level: float = 0.95
                       ) -> tuple[float | None, float | None]:
    """A percentile bootstrap interval of ``stat`` over resamples of ``values`` (rows, with replacement).

    Reproducible: the same ``seed`` gives the same interval. A resample on which ``stat`` is
    undefined (None or NaN) is left out; ``(None, None)`` when nothing is left.
    """
    data = np.asarray(values)
    if data.shape[0] == 0 or rounds <= 0:
        return None, None
    estimates = np.empty(rounds)
    for r, rows in enumerate(_bootstrap_indexes(data.shape[0], rounds, seed)):
        value = stat(data[rows])
        estimates[r] = np.nan if value is None else value
    return _percentiles(estimates, level)


# -- length control --------------------------------------------------------------------------------
def _targets(outcomes: Sequence[Outcome]) -> np.ndarray:
    """1 when A won, 0 when B won, 0.5 for a tie (inconsistent and both-bad ties too)."""
    return np.array([1.0 if o.winner == A_WINS else 0.0 if o.winner == B_WINS else 0.5 for o in outcomes])


def _length_feature(diffs: np.ndarray) -> np.ndarray | None:
    """``tanh(d / std(d))`` per row (last axis); None when a row is :func:`_inseparable`."""
    x = _tanh_feature(diffs)
    if np.any(_inseparable(diffs, x)):
        return None
    return x


def _tanh_feature(diffs: np.ndarray) -> np.ndarray:
    std = diffs.std(axis=-1, keepdims=True)
    return np.tanh(np.divide(diffs, std, out=np.zeros_like(diffs), where=std > 0))


def _inseparable(diffs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per row: the lengths differ but the feature hardly varies, so length and quality are confounded."""
    return (x.std(axis=-1) < LC_MIN_FEATURE_SPREAD) & np.any(diffs != 0, axis=-1)


def _logistic_intercepts(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """The intercepts of L2-regularised logistic fits ``y ~ sigmoid(b + w·x)``, one per row of x/y.

    Newton–Raphson (IRLS) on the penalised log-likelihood with soft targets (ties are 0.5),
    all rows at once with a closed-form 2×2 solve: a thousand bootstrap fits cost one.
    """
    x = np.atleast_2d(x)
    y = np.atleast_2d(y)
    b = np.zeros(x.shape[0])
    w = np.zeros(x.shape[0])
    for _ in range(iterations):
        eta = b[:, None] + w[:, None] * x
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # a sigmoid that never overflows
        r = p - y
        g_b = r.sum(axis=1) + LC_INTERCEPT_PENALTY * b
        g_w = (r * x).sum(axis=1) + LC_SLOPE_PENALTY * w
        v = p * (1 - p)
        h_bb = v.sum(axis=1) + LC_INTERCEPT_PENALTY
        h_bw = (v * x).sum(axis=1)
        h_ww = (v * x * x).sum(axis=1) + LC_SLOPE_PENALTY
        det = h_bb * h_ww - h_bw * h_bw
        step_b = (h_ww * g_b - h_bw * g_w) / det
        step_w = (h_bb * g_w - h_bw * g_b) / det
        # Near-separable data (a judge that always picks the longer answer) make the first steps
        # huge; a bounded step keeps Newton on its way to the penalised optimum.
        scale = np.minimum(1.0, 5.0 / np.maximum(np.abs(step_b), np.abs(step_w)).clip(min=1e-300))
        b -= scale * step_b
        w -= scale * step_w
        if np.max(np.abs(scale * step_b)) < 1e-9 and np.max(np.abs(scale * step_w)) < 1e-9:
            break
    return b


def _sigmoid(value: np.ndarray | float) -> np.ndarray | float:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(value)))


def lc_win_rate(outcomes: Sequence[Outcome]) -> float | None:
    """AlpacaEval-2-style length-controlled win rate of A: the GLM's prediction at zero length difference.

    A logistic regression of the outcome (1 / 0 / 0.5) on ``tanh((len_a − len_b) / std)``,
    L2-regularised; LC = ``sigmoid(intercept)``. None when there are no outcomes, or when the
    feature hardly varies (A's answers longer, or shorter, than B's by about the same amount
    every time, relative to how much that amount varies): then length and quality cannot be
    separated and any intercept would be the penalties' choice, not the data's.
    """
    if not outcomes:
        return None
    diffs = np.array([o.len_a - o.len_b for o in outcomes], dtype=float)
    x = _length_feature(diffs)
    if x is None:
        return None
    return float(_sigmoid(_logistic_intercepts(x, _targets(outcomes))[0]))


def _lc_interval(outcomes: Sequence[Outcome], rounds: int, seed: int) -> tuple[float | None, float | None]:
    """A bootstrap 95 % interval of the LC win rate over prompts (all resamples fitted at once)."""
    if not outcomes or rounds <= 0:
        return None, None
    diffs = np.array([o.len_a - o.len_b for o in outcomes], dtype=float)
    targets = _targets(outcomes)
    rows = _bootstrap_indexes(len(outcomes), rounds, seed)
    d, y = diffs[rows], targets[rows]
    x = _tanh_feature(d)
    usable = ~_inseparable(d, x)
    if not usable.any():
        return None, None
    return _percentiles(_sigmoid(_logistic_intercepts(x[usable], y[usable])), 0.95)


# -- Bradley–Terry ---------------------------------------------------------------------------------
def _win_matrix(outcomes: Sequence[Outcome], n_systems: int) -> np.ndarray:
    """``W[i, j]`` = how often i beat j, a tie counting half a win for each."""
    wins = np.zeros((n_systems, n_systems))
    for o in outcomes:
        i, j = o.system_a, o.system_b
        if o.winner == A_WINS:
            wins[i, j] += 1
        elif o.winner == B_WINS:
            wins[j, i] += 1
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    return wins


def _bt_fit(wins: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Log-strengths maximising the L2-penalised Bradley–Terry likelihood (Newton's method).

    ``P(i beats j) = sigmoid(θi − θj)``. The penalty makes the optimum unique with mean 0 (the
    likelihood's gradient sums to zero, so the penalty's must too) and finite for a system
    that never won.
    """
    k = wins.shape[0]
    games = wins + wins.T
    theta = np.zeros(k)
    for _ in range(iterations):
        p = _sigmoid(theta[:, None] - theta[None, :])  # P(i beats j)
        gradient = (wins - games * p).sum(axis=1) - BT_PENALTY * theta
        weight = games * p * (1 - p)
        hessian = weight - np.diag(weight.sum(axis=1)) - BT_PENALTY * np.eye(k)
        step = np.linalg.solve(hessian, gradient)
        step *= min(1.0, 5.0 / max(float(np.abs(step).max()), 1e-300))
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta - theta.mean()


def bradley_terry(outcomes: Sequence[Outcome], n_systems: int) -> list[float]:
    """Bradley–Terry log-strengths of every system (mean 0; a tie is half a win for each side)."""
    return [float(v) for v in _bt_fit(_win_matrix(outcomes, n_systems))]


def _bt_intervals(outcomes: Sequence[Outcome], n_systems: int, rounds: int, seed: int
                  ) -> list[tuple[float | None, float | None]]:
    """Bootstrap 95 % intervals of each log-strength, resampling prompts (a prompt's pairs stay together)."""
    by_prompt: dict[int, list[Outcome]] = {}
    for o in outcomes:
        by_prompt.setdefault(o.prompt_id, []).append(o)
    if not by_prompt or rounds <= 0:
        return [(None, None)] * n_systems
    per_prompt = np.stack([_win_matrix(group, n_systems) for group in by_prompt.values()])
    estimates = np.empty((rounds, n_systems))
    for r, rows in enumerate(_bootstrap_indexes(len(per_prompt), rounds, seed)):
        counts = np.bincount(rows, minlength=len(per_prompt)).astype(float)
        estimates[r] = _bt_fit(np.tensordot(counts, per_prompt, axes=1))
    return [_percentiles(estimates[:, s], 0.95) for s in range(n_systems)]


# -- agreement and consistency ---------------------------------------------------------------------
def position_consistency(outcomes: Sequence[Outcome]) -> tuple[float | None, int]:
    """The share of outcomes judged readably in both orders whose two verdicts agree, and how many those were.

    ``(None, 0)`` for human votes (they have no orders) or when no pair was judged both ways.
    """
    both = [o for o in outcomes if o.ab is not None and o.ba is not None]
    if not both:
        return None, 0
    return sum(o.ab == o.ba for o in both) / len(both), len(both)


def agreement(judge: Sequence[Outcome], human: Sequence[Outcome]) -> tuple[float | None, int]:
    """How often the judge and the human picked the same winner (a/b/tie) where both decided a prompt and pair.

    An inconsistent judge verdict is a tie, a both-bad vote is a tie. A judge outcome with an
    unreadable (or missing) verdict in either order (``ab`` or ``ba`` None, see
    :func:`~studio.core.evaluation.model.judge_outcome`) is no decision and is left out: its
    "tie" must not count as agreeing with a human tie. Returns (share, n); share is None when
    no prompt has both.
    """
    judged = {(o.prompt_id, o.system_a, o.system_b): o.winner for o in judge
              if o.ab is not None and o.ba is not None}
    matches = [judged[key] == o.winner for o in human
               if (key := (o.prompt_id, o.system_a, o.system_b)) in judged]
    if not matches:
        return None, 0
    return sum(matches) / len(matches), len(matches)


# -- the result ------------------------------------------------------------------------------------
@dataclass
class PairResult:
    """A against B over one pair's outcomes.

    ``ties`` counts every outcome without a winner: inconsistent judgments and both-bad votes
    are ties too (``inconsistent`` and ``both_bad`` say how many), so wins_a + wins_b + ties = n.
    ``win_rate_a`` = wins_a / (wins_a + wins_b) with its Wilson 95 % interval (None without a
    decisive judgment); ``win_rate_a_ties_half`` = (wins_a + ties/2) / n; ``lc_win_rate_a`` the
    length-controlled rate with a bootstrap interval (``lc_ci_low``/``lc_ci_high``).
    """

    system_a: str
    system_b: str
    index_a: int
    index_b: int
    n: int
    wins_a: int
    wins_b: int
    ties: int
    inconsistent: int
    both_bad: int
    win_rate_a: float | None
    ci_low: float | None
    ci_high: float | None
    win_rate_a_ties_half: float | None
    lc_win_rate_a: float | None
    lc_ci_low: float | None
    lc_ci_high: float | None
    length_bias: bool
    avg_len_a: float | None
    avg_len_b: float | None
    position_consistency: float | None
    judged_both_orders: int
    per_category: dict[str, dict] = field(default_factory=dict)
    # No LC rate because one side's answer was longer on every prompt (n ≥ LENGTH_BIAS_MIN_N): the
    # raw win rate may be length as much as quality, and nothing here can say which.
    length_confounded: bool = False

    @property
    def label(self) -> str:
        return f"{self.system_a} vs {self.system_b}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PairResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class RankRow:
    """One system in the Bradley–Terry ranking: log-strength (mean 0 over systems) and its bootstrap interval.

    ``score`` is the system's share of points over all its games (a tie is half a point).
    """

    rank: int
    index: int
    system: str
    strength: float
    ci_low: float | None
    ci_high: float | None
    games: int
    score: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RankRow:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# The numbers a one-line summary (the CLI's --json) reads, taken from the first pair.
SUMMARY_KEYS = ("n", "wins_a", "wins_b", "ties", "inconsistent", "win_rate_a", "ci_low", "ci_high",
                "win_rate_a_ties_half", "lc_win_rate_a", "lc_ci_low", "lc_ci_high", "length_bias",
                "avg_len_a", "avg_len_b", "position_consistency", "both_bad", "system_a", "system_b",
                "length_confounded")


@dataclass
class EvalResult:
    """Every pair's result, the ranking (only for more than two systems), and what repeats it (``meta``).

    ``meta`` is filled by the caller: evaluation id, systems, prompt-set hash, judge, prompt ids.
    """

    systems: list[str]
    pairs: list[PairResult]
    ranking: list[RankRow] | None = None
    ci_method: str = "wilson"
    lc_method: str = "logistic GLM on tanh(length difference / std), L2-regularised, at zero difference"
    meta: dict = field(default_factory=dict)

    @property
    def first(self) -> PairResult | None:
        return self.pairs[0] if self.pairs else None

    def to_dict(self) -> dict:
        """JSON-able; the first pair's summary numbers also at the top level (None stays None → null)."""
        data: dict[str, Any] = {}
        if self.first is not None:
            first = self.first.to_dict()
            data.update({key: first[key] for key in SUMMARY_KEYS})
        data.update(systems=list(self.systems), ci_method=self.ci_method, lc_method=self.lc_method,
                    pairs=[p.to_dict() for p in self.pairs],
                    ranking=None if self.ranking is None else [r.to_dict() for r in self.ranking],
                    meta=dict(self.meta))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        ranking = data.get("ranking")
        return cls(systems=list(data.get("systems", [])), pairs=[PairResult.from_dict(p) for p in data.get("pairs", [])],
                   ranking=None if ranking is None else [RankRow.from_dict(r) for r in ranking],
                   ci_method=data.get("ci_method", "wilson"), lc_method=data.get("lc_method", cls.lc_method),
                   meta=dict(data.get("meta", {})))


def percent(value: float | None, digits: int = 1) -> str:
    """``0.503`` → ``50.3 %``; None → ``—``."""
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def interval_text(pair: PairResult) -> str:
    """``(43.0–57.5 %, Wilson 95 %)``, or why there is no win rate (no decisive judgment, no outcomes)."""
    if pair.win_rate_a is None:
        return "no decisive judgment" if pair.n else "no outcomes"
    assert pair.ci_low is not None and pair.ci_high is not None  # a win rate has its interval
    return wilson_text(pair.ci_low, pair.ci_high)


def wilson_text(low: float, high: float) -> str:
    """``(43.0–57.5 %, Wilson 95 %)``: a Wilson interval in words (a pair's, a category's)."""
    return f"({100 * low:.1f}–{100 * high:.1f} %, Wilson 95 %)"


def strength_interval_text(row: RankRow, between: str = " to ") -> str:
    """A ranking row's interval: ``+0.10 to +0.52``; one-sided for a system that won every game
    (``≥ +0.10``) or lost every one (``≤ -0.52``); ``""`` when there is none."""
    if row.ci_low is not None and row.ci_high is not None:
        return f"{row.ci_low:+.2f}{between}{row.ci_high:+.2f}"
    if row.ci_low is not None:
        return f"≥ {row.ci_low:+.2f}"
    if row.ci_high is not None:
        return f"≤ {row.ci_high:+.2f}"
    return ""


def win_rate_text(pair: PairResult) -> str:
    """``50.3 % (43.0–57.5 %, Wilson 95 %)``: the one wording of a win rate, for the CLI and the GUI alike."""
    if pair.win_rate_a is None:
        return interval_text(pair)
    return f"{percent(pair.win_rate_a)} {interval_text(pair)}"


def pair_counts(outcomes: Sequence[Outcome]) -> dict:
    """n, wins, ties and the decisive win rate with its Wilson interval (a category's row, a pair's core)."""
    wins_a = sum(o.winner == A_WINS for o in outcomes)
    wins_b = sum(o.winner == B_WINS for o in outcomes)
    low, high = wilson_interval(wins_a, wins_a + wins_b)
    return {"n": len(outcomes), "wins_a": wins_a, "wins_b": wins_b, "ties": len(outcomes) - wins_a - wins_b,
            "win_rate_a": wins_a / (wins_a + wins_b) if wins_a + wins_b else None, "ci_low": low, "ci_high": high}


def _pair_result(outcomes: Sequence[Outcome], labels: Sequence[str], i: int, j: int, *,
                 categories: bool, rounds: int, seed: int) -> PairResult:
    core = pair_counts(outcomes)
    n = core["n"]
    ties_half = (core["wins_a"] + core["ties"] / 2) / n if n else None
    lc = lc_win_rate(outcomes)
    lc_low, lc_high = _lc_interval(outcomes, rounds, seed)
    consistency, both = position_consistency(outcomes)
    per_category: dict[str, dict] = {}
    if categories and any(o.category for o in outcomes):
        groups: dict[str, list[Outcome]] = {}
        for o in outcomes:
            groups.setdefault(o.category or UNCATEGORISED, []).append(o)
        per_category = {name: pair_counts(groups[name]) for name in sorted(groups, key=lambda c: (-len(groups[c]), c))}
    return PairResult(
        system_a=labels[i], system_b=labels[j], index_a=i, index_b=j, **core,
        inconsistent=sum(o.inconsistent for o in outcomes), both_bad=sum(o.both_bad for o in outcomes),
        win_rate_a_ties_half=ties_half, lc_win_rate_a=lc, lc_ci_low=lc_low, lc_ci_high=lc_high,
        length_bias=(n >= LENGTH_BIAS_MIN_N and lc is not None and ties_half is not None
                     and abs(lc - ties_half) >= LENGTH_BIAS_THRESHOLD),
        avg_len_a=float(np.mean([o.len_a for o in outcomes])) if n else None,
        avg_len_b=float(np.mean([o.len_b for o in outcomes])) if n else None,
        position_consistency=consistency, judged_both_orders=both, per_category=per_category,
        length_confounded=n >= LENGTH_BIAS_MIN_N and lc is None and _one_side_longer(outcomes) is not None)


def _one_side_longer(outcomes: Sequence[Outcome]) -> str | None:
    """``"longer"`` / ``"shorter"`` when A's answer was so on every outcome, else None."""
    diffs = [o.len_a - o.len_b for o in outcomes]
    if diffs and all(d > 0 for d in diffs):
        return "longer"
    if diffs and all(d < 0 for d in diffs):
        return "shorter"
    return None


def length_confounded_text(pair: PairResult, name: str) -> str:
    """Why a pair has no length-controlled rate, in words (``name`` is how the reader knows A).

    LC is undefined when the length feature hardly varies: one side's answer longer on every
    prompt (``length_confounded`` when there are enough prompts to say so), or on all but a few.
    """
    side = "longer" if (pair.avg_len_a or 0) > (pair.avg_len_b or 0) else "shorter"
    every = "every prompt" if pair.length_confounded or pair.n < LENGTH_BIAS_MIN_N else "nearly every prompt"
    return f"{name}'s answer was {side} on {every}, so length and quality cannot be told apart"


def summarise(outcomes: Sequence[Outcome], labels: Sequence[str], *, categories: bool = True,
              bootstrap_rounds: int = 1000, seed: int = 0) -> EvalResult:
    """Every pair of ``labels`` (by index: 0 vs 1, 0 vs 2, …, as ``Evaluation.pairs()``) and, for more
    than two systems, a Bradley–Terry ranking with bootstrap intervals over prompts.

    A pair without outcomes is still listed (n = 0, rates None), so the first pair always exists
    for two or more systems. Reproducible: the same outcomes and seed give the same intervals.
    """
    if len(labels) < 2:
        raise ValueError("an evaluation compares at least two systems")
    by_pair: dict[tuple[int, int], list[Outcome]] = {}
    for o in outcomes:
        if not (0 <= o.system_a < o.system_b < len(labels)):
            raise ValueError(f"outcome for prompt {o.prompt_id} names systems {o.system_a} and {o.system_b}, "
                             f"but there are {len(labels)} systems (a must be < b)")
        by_pair.setdefault((o.system_a, o.system_b), []).append(o)
    pairs = [_pair_result(by_pair.get((i, j), []), labels, i, j, categories=categories,
                          rounds=bootstrap_rounds, seed=seed)
             for i in range(len(labels)) for j in range(i + 1, len(labels))]
    ranking = None
    if len(labels) > 2:
        ranking = _ranking(outcomes, labels, bootstrap_rounds, seed)
    return EvalResult(systems=list(labels), pairs=pairs, ranking=ranking)


def _ranking(outcomes: Sequence[Outcome], labels: Sequence[str], rounds: int, seed: int) -> list[RankRow]:
    k = len(labels)
    wins = _win_matrix(outcomes, k)
    strengths = _bt_fit(wins)
    intervals = _bt_intervals(outcomes, k, rounds, seed)
    games = (wins + wins.T).sum(axis=1)
    order = sorted(range(k), key=lambda s: -strengths[s])
    rows = []
    for place, s in enumerate(order):
        score = float(wins[s].sum() / games[s]) if games[s] else None
        low, high = intervals[s]
        # A system that won (lost) every game has no finite strength: the fit's value is where the
        # regularising penalty stops it, and so is every bootstrap round's, so the interval would look
        # narrow for no reason: no upper (lower) bound. The other bound is at most what the Wilson
        # interval of its score allows against its opponents' average strength (the bootstrap's own
        # bound sits at the penalty's optimum too).
        if score in (1.0, 0.0):
            n_games = round(float(games[s]))
            share_low, share_high = wilson_interval(n_games if score else 0, n_games)
            against = float(np.dot(wins[s] + wins[:, s], strengths) / games[s])
            if score == 1.0:
                bound = against + math.log(share_low / (1 - share_low))
                high, low = None, bound if low is None else min(low, bound)
            else:
                bound = against + math.log(share_high / (1 - share_high))
                low, high = None, bound if high is None else max(high, bound)
        rows.append(RankRow(rank=place + 1, index=s, system=labels[s], strength=float(strengths[s]),
                            ci_low=low, ci_high=high, games=round(float(games[s])), score=score))
    return rows
