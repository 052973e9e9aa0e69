"""The ROUGE-L near-duplicate filter makes exactly rouge_score's decisions."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from studio.core.dedup import (
    Match,
    NearDuplicateIndex,
    Verdict,
    cluster,
    lcs_length,
    rouge_l_f,
    tokenize,
)

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
rouge_tokenize = pytest.importorskip("rouge_score.tokenize")

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
        assert abs(got - expected) <= 1e-12, (a, b)
        assert got == expected, (a, b)  # bit-identical: the threshold test cannot flip


def test_rouge_l_f_zero_cases() -> None:
    assert rouge_l_f([], []) == 0.0
    assert rouge_l_f(["a"], []) == 0.0
    assert rouge_l_f([], ["a"]) == 0.0
    assert rouge_l_f(["a"], ["b"]) == 0.0
    assert rouge_l_f(["a", "b"], ["a", "b"]) == 1.0


# -------------------------------------------------------------- incremental


def brute_force(texts: list[str]) -> list[tuple[bool, float, int]]:
    """Alpaca's filter, literally: rouge_score against every kept text."""
    tokenizer = SCORER._tokenizer
    kept_tokens: list[list[str]] = []
    kept_numbers: list[int] = []
    out = []
    for number, text in enumerate(texts):
        tokens = tokenizer.tokenize(text)
        scores = [rouge_scorer._score_lcs(tokens, other).fmeasure for other in kept_tokens]
        best = max(scores, default=0.0)
        nearest = kept_numbers[scores.index(best)] if best > 0 else -1
        keep = not best > THRESHOLD
        if keep:
            kept_tokens.append(tokens)
            kept_numbers.append(number)
        out.append((keep, best, nearest))
    return out


def test_incremental_decisions_identical_to_rouge_score(
    seeds: list[str], samples: list[str]
) -> None:
    texts = seeds + samples[:800]
    # A few planted near-duplicates, so that the drop branch is exercised for sure.
    texts += [texts[5], texts[200].upper() + "!", " ".join(texts[300].split()[:-1])]
    expected = brute_force(texts)

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
    assert sum(not keep for keep, _, _ in expected) >= 3


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
