"""Root verbs and their objects: counted with any parser that behaves like spaCy's."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from studio.core import root_verbs


@dataclass
class Token:
    text: str
    dep_: str
    pos_: str
    children: list = field(default_factory=list)

    @property
    def lemma_(self) -> str:
        return self.text.lower()


class FakeParser:
    """First word is the root (a verb unless it is "The"), the second its direct object."""

    def pipe(self, texts):
        for text in texts:
            words = text.split()
            root = Token(words[0], "ROOT", "DET" if words[0] == "The" else "VERB")
            if len(words) > 1:
                root.children.append(Token(words[1], "dobj", "NOUN"))
            yield [root, *root.children]


def test_counts_verbs_with_objects_in_batches() -> None:
    texts = ["Write poem", "Write story", "Write poem", "Give list", "Explain", "The end"] * 3
    snapshots = list(root_verbs.count_pairs(texts, FakeParser(), batch_size=4))
    assert len(snapshots) == 5  # running counts after each batch, then the last
    counts = snapshots[-1]
    assert counts == Counter({("write", "poem"): 6, ("write", "story"): 3, ("give", "list"): 3, ("explain", ""): 3})
    top = root_verbs.top_pairs(counts, verbs=2, objects=1)
    assert top == {"write": [("poem", 6), ("…", 3)], "explain": [("", 3)]}


def test_without_spacy_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_spacy(name, *args, **kwargs):
        if name == "spacy":
            raise ImportError("no spacy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spacy)
    with pytest.raises(root_verbs.ShapeUnavailable, match="pip install"):
        root_verbs.load_parser()


def test_the_chart_draws_pairs(qtbot) -> None:
    from studio.ui.data_shape_widget import DataShapeWidget

    widget = DataShapeWidget()
    qtbot.addWidget(widget)
    widget.show_verbs({"write": [("poem", 6), ("…", 3)], "explain": [("", 3)]})
    assert not widget.verbs_chart.isHidden()
    assert widget.verbs_chart.labels == ["explain:", "write:poem", "write:…"]  # drawn bottom-up
