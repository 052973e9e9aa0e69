"""The root verb of each instruction and its direct object, as in Alpaca's data-shape figure.

Needs spaCy and an English pipeline (the optional ``shape`` extra plus
``python -m spacy download en_core_web_sm``); without them :class:`ShapeUnavailable`
says exactly what to install, so the UI can show it instead of a chart.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from studio.core.errors import StudioError

MODEL = "en_core_web_sm"


class ShapeUnavailable(StudioError):
    """spaCy or its English model is missing; the message says how to install them."""


def load_parser(model: str = MODEL):
    try:
        import spacy
    except ImportError:
        raise ShapeUnavailable(
            "The root-verb chart needs spaCy: pip install 'distill-studio[shape]' "
            f"and then python -m spacy download {model}"
        ) from None
    try:
        return spacy.load(model, disable=["ner", "lemmatizer", "textcat"])
    except OSError:
        raise ShapeUnavailable(
            f"spaCy is installed but its English model is not: python -m spacy download {model}"
        ) from None


def verb_object(doc) -> tuple[str, str] | None:
    """(root verb, its direct object) of the first sentence, lower-cased; None if not a verb."""
    for token in doc:
        if token.dep_ == "ROOT":
            if token.pos_ != "VERB":
                return None
            objects = [child.lemma_.lower() or child.text.lower() for child in token.children if child.dep_ == "dobj"]
            return (token.lemma_.lower() or token.text.lower(), objects[0] if objects else "")
    return None


def count_pairs(instructions: Iterable[str], parser=None, batch_size: int = 256) -> Iterator[Counter]:
    """Yield the running (verb, object) counts every batch, so a worker can show progress."""
    parser = parser or load_parser()
    counts: Counter = Counter()
    batch: list[str] = []
    for text in instructions:
        batch.append(text)
        if len(batch) >= batch_size:
            counts.update(p for p in map(verb_object, parser.pipe(batch)) if p)
            batch.clear()
            yield counts
    if batch:
        counts.update(p for p in map(verb_object, parser.pipe(batch)) if p)
    yield counts


def top_pairs(counts: Counter, verbs: int = 20, objects: int = 4) -> dict[str, list[tuple[str, int]]]:
    """The most common root verbs, each with its most common direct objects.

    Objects past the first ``objects`` are summed under "…", so a verb's entries add up
    to its count ("" is a verb without a direct object).
    """
    by_verb: dict[str, Counter] = {}
    for (verb, obj), n in counts.items():
        by_verb.setdefault(verb, Counter())[obj] += n
    ranked = sorted(by_verb.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:verbs]
    result = {}
    for verb, objs in ranked:
        top = objs.most_common(objects)
        rest = sum(objs.values()) - sum(n for _, n in top)
        result[verb] = top + ([("…", rest)] if rest else [])
    return result
