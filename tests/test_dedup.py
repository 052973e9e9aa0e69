"""The ROUGE-L near-duplicate filter makes exactly rouge_score's decisions."""
from __future__ import annotations

import itertools
import json
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize

from studio.core.dedup import (
    Match,
    NearDuplicateIndex,
    Verdict,
    cluster,
    lcs_length,
    rouge_l_f,
    tokenize,
)

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
THRESHOLD = 0.7
REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    for candidate in (REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "shared" / "data"):
        if (candidate / "seed_tasks.jsonl").exists() and (
            candidate / "alpaca_sample_2000.json"
        ).exists():
            return candidate
    pytest.skip("../shared/data (seed_tasks.jsonl, alpaca_sample_2000.json) is not present")


@pytest.fixture(scope="module")
def seeds() -> list[str]:
    path = _data_dir() / "seed_tasks.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["instruction"] for line in handle if line.strip()]


@pytest.fixture(scope="module")
def samples() -> list[str]:
    path = _data_dir() / "alpaca_sample_2000.json"
    return [record["instruction"] for record in json.loads(path.read_text(encoding="utf-8"))]


def reference_f(a: str, b: str) -> float:
    return SCORER.score(a, b)["rougeL"].fmeasure


# ---------------------------------------------------------------- tokenizer

TRICKY = [
    "",
    "   ",
    "\t\n\r",
    "Hello, World!",
    "don't stop-believing; it's 3.14 or 1,000",
    "e-mail: someone@example.com, url https://x.y/z?q=1&r=2",
    "café naïve résumé Ångström",
    "İstanbul ß Straße ǅ \u212a Kelvin",
    "ＡＢＣ full-width ｄｉｇｉｔｓ １２３",
    "x² H₂O ٣ Arabic-Indic digit, ½",
    "emoji 😀 ok 👍🏽 fine",
    "中文 text 日本語 mixed",
    "under_score snake_case CamelCase",
    "tab\tsep\nnew line\u00a0nbsp\u2003em space",
    "a",
    "A.B.C. U.S.A.",
    "123abc ABC123 0x1F",
    "...!!!???",
    "Mixed CASE words With Numbers 42 and 007",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tokenize_matches_rouge_score(text: str) -> None:
    assert tokenize(text) == rouge_tokenize.tokenize(text, None)
    assert tokenize(text) == SCORER._tokenizer.tokenize(text)


def test_tokenize_matches_rouge_score_on_random_unicode() -> None:
    rng = random.Random(7)
    alphabet = "aZ09 _-.,'\t\n" + "éßİ\u212aＡ１²٣中😀\u00a0\u0301"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        assert tokenize(text) == rouge_tokenize.tokenize(text, None), repr(text)


def test_tokenize_matches_on_real_instructions(seeds: list[str], samples: list[str]) -> None:
    for text in seeds + samples:
        assert tokenize(text) == rouge_tokenize.tokenize(text, None)


# ------------------------------------------------------------------ scoring


def test_lcs_length_matches_dynamic_programming() -> None:
    rng = random.Random(3)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randrange(0, 80))]
        b = [rng.choice("abcd") for _ in range(rng.randrange(0, 80))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i, j in itertools.product(range(len(a)), range(len(b))):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
            )
        assert lcs_length(a, b) == table[-1][-1] == lcs_length(b, a)


def test_rouge_l_f_matches_rouge_score_on_random_pairs(seeds: list[str], samples: list[str]) -> None:
    texts = seeds + samples
    rng = random.Random(11)
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(1500)]
    # Similar pairs too: a text against a copy with a few words dropped or swapped.
    for _ in range(1500):
        words = rng.choice(texts).split()
        other = [w for w in words if rng.random() > 0.2]
        if len(other) > 2 and rng.random() < 0.5:
            i, j = rng.randrange(len(other)), rng.randrange(len(other))
            other[i], other[j] = other[j], other[i]
        pairs.append((" ".join(words), " ".join(other)))
    pairs += [("", "abc"), ("abc", ""), ("", ""), ("!!!", "a b"), ("same words", "Same, words.")]
    for a, b in pairs:
        expected = reference_f(a, b)
        got = rouge_l_f(tokenize(a), tokenize(b))
        assert got == expected, (a, b)  # bit-identical: the threshold test cannot flip
        # Symmetric bit for bit, so score(kept, new) and Alpaca's _score_lcs(new, kept)
        # are the same float.
        assert reference_f(b, a) == expected, (a, b)


def test_rouge_l_f_zero_cases() -> None:
    assert rouge_l_f([], []) == 0.0
    assert rouge_l_f(["a"], []) == 0.0
    assert rouge_l_f([], ["a"]) == 0.0
    assert rouge_l_f(["a"], ["b"]) == 0.0
    assert rouge_l_f(["a", "b"], ["a", "b"]) == 1.0


# -------------------------------------------------------------- incremental


def pairwise_rouge_l(token_lists: list[list[str]]) -> np.ndarray:
    """``F[i, j]`` for every ``j < i``: rouge_score's ROUGE-L F-measure of text ``i``
    (Alpaca's new text, the target) against text ``j`` (a kept text, the prediction).

    The brute-force reference, made cheap: scoring every pair with rouge_score's own
    LCS table costs ~20 µs a pair, which is what made this test slow. This computes the
    same floats independently of studio.core.dedup (no index, no pruning, every pair
    scored): the LCS by the bit-parallel recurrence ``u = v & match; v = (v + u) |
    (v - u)`` on numpy uint64 words, for a block of rows against all columns at once,
    then precision, recall and ``2 * p * r / (p + r)`` in float64 in rouge_score's
    order of operations. ``test_reference_matrix_is_rouge_score`` and the cross-checks
    in the incremental test compare it with rouge_score itself.
    """
    count = len(token_lists)
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(word, len(vocab)) for word in tokens] for tokens in token_lists]
    absent = len(vocab)  # pads the token matrix; no text has it, so it never matches
    lengths = np.array([len(row) for row in ids], dtype=np.int64)
    width = max(int(lengths.max(initial=0)), 1)
    tokens = np.full((count, width), absent, dtype=np.int64)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = row
    lcs = np.zeros((count, count), dtype=np.int64)
    block = 128
    for start in range(0, count, block):
        rows = range(start, min(start + block, count))
        columns = rows.stop  # j < i only
        words = max(1, -(-int(lengths[start : rows.stop].max()) // 64))
        # match[w, r, t]: bits (word w) of the positions of token t in row text r.
        match = np.zeros((words, len(rows), absent + 1), dtype=np.uint64)
        for r, i in enumerate(rows):
            for position, token in enumerate(ids[i]):
                match[position // 64, r, token] |= np.uint64(1 << (position % 64))
        # Columns longest first, so that step t only touches the prefix still running.
        order = np.argsort(-lengths[:columns], kind="stable")
        running = np.searchsorted(-lengths[:columns][order], -np.arange(width), side="left")
        v = np.full((words, len(rows), columns), np.iinfo(np.uint64).max, dtype=np.uint64)
        for t in range(width):
            live = int(running[t])
            if not live:
                break
            m = match[:, :, tokens[order[:live], t]]
            cur = v[:, :, :live]
            u = cur & m
            if words == 1:
                total = cur + u  # carries past bit 63 are past every position: dropped
            else:
                total = np.empty_like(cur)
                carry = np.zeros(cur.shape[1:], dtype=np.uint64)
                for w in range(words):  # v + u over several words: wrap, carry upwards
                    partial = cur[w] + u[w]
                    total[w] = partial + carry
                    carry = ((partial < cur[w]) | (total[w] < partial)).astype(np.uint64)
            v[:, :, :live] = total | (cur - u)  # u is a submask of v: no borrow
        full = np.zeros((words, len(rows), 1), dtype=np.uint64)
        for r, i in enumerate(rows):
            for w in range(words):
                bits = min(64, max(0, int(lengths[i]) - 64 * w))
                full[w, r, 0] = np.uint64((1 << bits) - 1)
        ones = np.bitwise_count(v & full).sum(axis=0, dtype=np.int64)
        block_lcs = lengths[start : rows.stop, None] - ones
        lcs[start : rows.stop, order] = block_lcs
    target = lengths[:, None].astype(np.float64)
    prediction = lengths[None, :].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / prediction
        recall = lcs / target
        f = 2 * precision * recall / (precision + recall)
    f = np.where((precision + recall > 0) & (target > 0) & (prediction > 0), f, 0.0)
    return np.tril(f, -1)


def test_reference_matrix_is_rouge_score() -> None:
    """The fast reference against rouge_score on every pair of texts built to stress it:
    lengths around the 64-bit word boundaries (one, two and three words), a small
    alphabet (long LCSs, many carries), empty texts."""
    rng = random.Random(17)
    lengths = [0, 0, 1, 2, 3, 7, 20, 40, 63, 64, 65, 66, 100, 127, 128, 129, 150]
    token_lists = [[rng.choice("abcde") for _ in range(rng.choice(lengths))] for _ in range(34)]
    token_lists += [["x"] * 64, ["x"] * 65, ["x"] * 129, list("ab" * 70)]
    scores = pairwise_rouge_l(token_lists)
    for i, j in itertools.combinations(range(len(token_lists)), 2):
        expected = rouge_scorer._score_lcs(token_lists[j], token_lists[i]).fmeasure
        assert scores[j, i] == expected, (i, j)
        assert scores[i, j] == 0.0  # only j < i is filled


def alpaca_decisions(scores: np.ndarray) -> list[tuple[bool, float, int]]:
    """Alpaca's filter, literally, on precomputed pair scores: for each text in turn, the
    maximum over every text kept so far; kept when not above the threshold. The nearest
    is the first maximal kept text in insertion order (``scores.index(max(scores))``)."""
    kept: list[int] = []
    out = []
    for number in range(len(scores)):
        row = scores[number, kept]
        best = float(row.max()) if kept else 0.0
        nearest = kept[int(np.argmax(row))] if best > 0 else -1  # argmax: first maximum
        keep = not best > THRESHOLD
        if keep:
            kept.append(number)
        out.append((keep, best, nearest))
    return out


def incremental_texts(seeds: list[str], samples: list[str]) -> list[str]:
    """The seeds, then the 2,000 real instructions shuffled with edited copies of some of
    them (words dropped, inserted, swapped in proportion to their length), so that many
    decisions fall near the threshold, and a few planted exact and near duplicates."""
    rng = random.Random(13)
    pool = seeds + samples
    variants = []
    for _ in range(600):
        words = rng.choice(pool).split()
        for _ in range(max(1, round(len(words) * rng.uniform(0.3, 0.6)))):
            edit = rng.random()
            if edit < 0.4 and len(words) > 2:
                words.pop(rng.randrange(len(words)))
            elif edit < 0.75:
                words.insert(rng.randrange(len(words) + 1), rng.choice(rng.choice(pool).split()))
            elif len(words) > 1:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
        variants.append(" ".join(words))
    rest = samples + variants
    rng.shuffle(rest)
    planted = [pool[5], pool[200].upper() + "!", " ".join(pool[300].split()[:-1])]
    return seeds + rest + planted


def test_incremental_decisions_identical_to_rouge_score(
    seeds: list[str], samples: list[str]
) -> None:
    texts = incremental_texts(seeds, samples)
    tokens = [SCORER._tokenizer.tokenize(text) for text in texts]
    scores = pairwise_rouge_l(tokens)
    expected = alpaca_decisions(scores)

    # The reference is rouge_score wherever a decision can hinge on it: every pair that
    # gave a text its nearest score, every pair near the threshold, and random pairs.
    rng = random.Random(19)
    pairs = {(number, nearest) for number, (_, _, nearest) in enumerate(expected) if nearest >= 0}
    near = np.argwhere(np.tril(np.abs(scores - THRESHOLD) <= 0.05, -1))
    pairs.update(map(tuple, near.tolist()))
    pairs.update((i, rng.randrange(i)) for i in rng.choices(range(1, len(texts)), k=3000))
    for i, j in sorted(pairs):
        assert scores[i, j] == reference_f(texts[j], texts[i]), (i, j)

    index = NearDuplicateIndex(THRESHOLD)
    for number, text in enumerate(texts):
        nearest = index.nearest(text)
        verdict = index.check_and_add(text, key=number)
        keep, best, best_number = expected[number]
        assert verdict.added == keep and verdict.is_duplicate == (not keep), (number, text)
        assert verdict.score == best, (number, text)
        assert verdict.key == (best_number if best_number >= 0 else None)
        if best_number >= 0:
            assert nearest == Match(best_number, texts[best_number], best)
            assert verdict.text == texts[best_number]
        else:
            assert nearest is None
    assert len(index) == sum(keep for keep, _, _ in expected)
    # The data does exercise the boundary: decisions near 0.7, exactly 0.7 (kept) and
    # one rounding step above it (dropped), and hundreds of drops.
    bests = [best for _, best, _ in expected]
    assert sum(abs(best - THRESHOLD) <= 0.05 for best in bests) >= 150
    assert THRESHOLD in bests and any(THRESHOLD < best < THRESHOLD + 1e-12 for best in bests)
    assert sum(not keep for keep, _, _ in expected) >= 300


# --------------------------------------------------------------- hand-made


def test_exact_duplicate_is_dropped() -> None:
    index = NearDuplicateIndex()
    first = index.check_and_add("Write a poem about the sea.", key="a")
    assert first == Verdict(False, 0.0, None, None, added=True)
    again = index.check_and_add("write a POEM about the sea", key="b")
    assert again.is_duplicate and not again.added
    assert (again.score, again.key, again.text) == (1.0, "a", "Write a poem about the sea.")
    assert len(index) == 1


def test_empty_and_tokenless_text() -> None:
    index = NearDuplicateIndex()
    assert index.nearest("anything") is None
    assert index.check("") == Verdict(False, 0.0)
    assert index.check_and_add("").added
    assert index.check_and_add("?!").added  # no tokens: score 0 against everything
    assert index.check("").score == 0.0
    assert index.nearest("") is None
    assert index.check_and_add("hello world").added
    assert index.nearest("") is None
    assert len(index) == 3
    assert reference_f("", "") == index.check("").score


def _words(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


@pytest.mark.parametrize(
    ("lcs", "m", "n", "duplicate"),
    [
        (7, 10, 10, False),  # exactly 0.7: kept
        (14, 20, 20, False),  # exactly 0.7: kept
        (7, 9, 11, True),  # 2*7/20 is 0.7 on paper, 0.7000000000000001 in rouge_score: dropped
        (7, 7, 13, True),  # idem
        (8, 10, 10, True),  # 0.8
        (6, 10, 10, False),  # 0.6
    ],
)
def test_threshold_boundary(lcs: int, m: int, n: int, duplicate: bool) -> None:
    shared = _words(lcs, "w")
    kept = " ".join(shared + _words(m - lcs, "k"))
    new = " ".join(shared + _words(n - lcs, "n"))
    expected = reference_f(new, kept)
    assert (expected > THRESHOLD) == duplicate
    index = NearDuplicateIndex(THRESHOLD)
    index.add(kept)
    verdict = index.check(new)
    assert verdict.score == expected
    assert verdict.is_duplicate == duplicate
    assert index.check_and_add(new).added == (not duplicate)


# ------------------------------------------------ ties on paper, split by rounding


def _tie_texts(
    n: int, ties: list[tuple[int, int, int]], fillers: range
) -> tuple[str, list[str], list[str]]:
    """A new text of ``n`` words; kept texts of lengths m with an LCS of L against it
    (its first L words in order), led by ``extra`` more of its words in reverse order,
    which raise the overlap (hence the bound, and how early it is looked at) but not
    the LCS; and fillers: the first c words of the new text reversed, a high bound
    2c/(c+n) but an LCS of 1, more than one round's batch of them, so that the index
    prunes between rounds while a tie text is still waiting."""
    new = [f"w{i}" for i in range(n)]
    tie_texts = []
    for number, (m, lcs, extra) in enumerate(ties):
        words = new[n - extra :][::-1] + new[:lcs]
        words += [f"t{number}x{i}" for i in range(m - len(words))]
        assert len(words) == m and lcs + extra <= n
        tie_texts.append(" ".join(words))
    filler_texts = [" ".join(new[:c][::-1]) for c in fillers]
    return " ".join(new), tie_texts, filler_texts


@pytest.mark.parametrize(
    ("n", "ties", "fillers"),
    [
        # 2*14/(19+21) == 2*21/(39+21) == 0.7: 0.7 (kept) and 0.7000000000000001. The
        # rejected text holds all 21 words, so it is looked at first, in any order.
        pytest.param(21, [(19, 14, 5), (39, 21, 0)], range(15, 21), id="21-words"),
        # The rejected text is looked at after the kept-at-0.7 one (whose overlap is
        # higher) and after a round of fillers: pruning may not drop it when it was
        # added later.
        pytest.param(26, [(14, 14, 0), (34, 21, 5)], range(18, 26), id="26-words"),
        pytest.param(30, [(30, 21, 9), (50, 28, 0)], range(22, 30), id="30-words"),
        # Three ways: 0.7000000000000001 twice (the earliest added is the nearest), 0.7.
        pytest.param(
            36, [(24, 21, 0), (44, 28, 0), (64, 35, 1)], range(26, 36), id="36-words-3-way"
        ),
    ],
)
def test_ties_on_paper_decided_as_rouge_score_in_every_insertion_order(
    n: int, ties: list[tuple[int, int, int]], fillers: range
) -> None:
    new, tie_texts, filler_texts = _tie_texts(n, ties, fillers)
    assert n >= 21
    # On paper every tie text scores exactly 0.7; rouge_score's floats fall on both
    # sides of the threshold.
    assert all(Fraction(2 * lcs, m + n) == Fraction(7, 10) for m, lcs, _ in ties)
    reference = {text: reference_f(text, new) for text in tie_texts + filler_texts}
    assert {reference[text] > THRESHOLD for text in tie_texts} == {True, False}
    assert all(reference[text] < 0.2 for text in filler_texts)

    half = len(filler_texts) // 2
    units = [[text] for text in tie_texts] + [filler_texts[:half], filler_texts[half:]]
    orders = list(itertools.permutations(units))
    wrong = []
    for order in orders:
        kept = [text for unit in order for text in unit]
        index = NearDuplicateIndex(THRESHOLD)
        for text in kept:
            index.add(text, key=text)
        scores = [reference[text] for text in kept]  # score(kept, new), in insertion order
        best = max(scores)
        nearest = kept[scores.index(best)]
        duplicate = best > THRESHOLD
        above = [text for text in kept if reference[text] > THRESHOLD]
        got = (
            index.nearest(new),
            index.check(new),
            [match.key for match in index.matches_above(new)],
            index.check_and_add(new).added,
        )
        if got != (Match(nearest, nearest, best), Verdict(duplicate, best, nearest, nearest),
                   above, not duplicate):
            wrong.append(([kept.index(text) for text in tie_texts], got[1]))
    assert not wrong, f"{len(wrong)} of {len(orders)} insertion orders differ: {wrong[:3]}"


def test_nearest_is_the_true_maximum_and_earliest_on_ties() -> None:
    index = NearDuplicateIndex()
    index.add("the cat sat on the mat", key="first")
    index.add("the cat sat", key="second")
    index.add("a dog ran in the park today", key="third")
    index.add("the cat sat on the mat", key="fourth")  # add() does not filter
    match = index.nearest("the cat sat on a mat")
    assert match is not None and match.key == "first"
    assert match.score == reference_f("the cat sat on a mat", "the cat sat on the mat")
    assert index.nearest("a dog ran") == Match(
        "third", "a dog ran in the park today", reference_f("a dog ran", "a dog ran in the park today")
    )
    assert [m.key for m in index.matches_above("the cat sat on the mat", 0.7)] == ["first", "fourth"]


def test_default_keys_are_insertion_numbers() -> None:
    index = NearDuplicateIndex()
    index.add("alpha beta gamma")
    index.check_and_add("delta epsilon")
    assert index.nearest("alpha beta").key == 0
    assert index.nearest("delta").key == 1


# ----------------------------------------------------------------- cluster


def brute_components(texts: list[str], threshold: float) -> list[list[int]]:
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(texts)), 2):
        if reference_f(texts[j], texts[i]) > threshold:
            parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


def test_cluster_equals_brute_force_components(samples: list[str]) -> None:
    rng = random.Random(5)
    base = samples[:60]
    texts = list(base)
    for _ in range(60):  # variants of some of them: chains and stars of near-duplicates
        words = rng.choice(texts).split()
        if len(words) > 3:
            words.pop(rng.randrange(len(words)))
        texts.append(" ".join(words))
    texts += ["", "", "?", texts[0]]
    rng.shuffle(texts)
    for threshold in (0.7, 0.5, 0.9):
        got = cluster(texts, threshold)
        assert sorted(got) == brute_components(texts, threshold)
        assert sorted(i for group in got for i in group) == list(range(len(texts)))
        assert any(len(group) > 1 for group in got)


def test_cluster_small_hand_made() -> None:
    texts = ["write a poem about cats", "x", "Write a poem about cats!", "write a poem about dogs", ""]
    assert cluster(texts) == [[0, 2, 3], [1], [4]]
    assert cluster([]) == []
