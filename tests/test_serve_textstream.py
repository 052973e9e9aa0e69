"""The byte-level fast path of the text stream gives exactly ``tokenizer.decode`` of the whole answer.

Random id sequences over a real byte-level BPE tokenizer (trained here, multi-byte text in its
corpus) split characters across tokens and mix in special and added tokens; the streamed
pieces, joined, must equal the one-shot decode, also with stop strings in play.
"""
from __future__ import annotations

import random

import pytest

from studio.serve.textstream import TextStream, byte_level_pieces
from tests.tiny_model import train_tokenizer

CORPUS = ["café au lait, naïve façade", "日本語のテキストです", "emoji 🙂🚀 and ünïcödé", "plain ascii words here",
          "### Instruction: say hi", "tabs\tand\nnewlines  double  spaces"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    tok = train_tokenizer(CORPUS, vocab_size=400)
    tok.add_tokens(["<tool>", " spaced added"])
    tok.add_special_tokens({"additional_special_tokens": ["<|end|>"]})
    return tok


def _stream_all(stream: TextStream, ids: list[int]) -> str:
    return "".join(stream.add(token) for token in ids) + stream.finish()


def test_the_fast_path_is_taken_for_a_byte_level_tokenizer(tokenizer) -> None:
    assert byte_level_pieces(tokenizer) is not None


def test_random_ids_stream_to_exactly_what_decode_gives(tokenizer) -> None:
    pieces = byte_level_pieces(tokenizer)
    rng = random.Random(7)
    vocab = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    for _ in range(300):
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(1, 40))]
        expected = tokenizer.decode(ids, skip_special_tokens=True)
        fast = TextStream(lambda _ids: pytest.fail("the fast path must not decode windows"), pieces=pieces)
        assert _stream_all(fast, ids) == expected, ids
        # the window path (special ids are filtered before it, as the engine does) agrees on valid text
        if "\ufffd" not in expected:
            window = TextStream(lambda part: tokenizer.decode(part, skip_special_tokens=True))
            assert _stream_all(window, [i for i in ids if i not in special]) == expected, ids


def test_real_text_streams_character_by_character_and_stops_as_before(tokenizer) -> None:
    pieces = byte_level_pieces(tokenizer)
    text = "Réponse: 日本 🙂 <tool> fin\n### Instruction: more"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decode = lambda part: tokenizer.decode(part, skip_special_tokens=True)
    fast = TextStream(decode, stops=["\n### Instruction:"], pieces=pieces)
    window = TextStream(decode, stops=["\n### Instruction:"])
    fast_out = [fast.add(i) for i in ids]
    window_out = [window.add(i) for i in ids]
    assert "".join(fast_out) == "".join(window_out) == "Réponse: 日本 🙂 <tool> fin"
    assert fast.stopped and window.stopped
    assert all("\ufffd" not in part for part in fast_out)  # a split character waits for its last byte


def test_other_tokenizers_keep_the_window_path() -> None:
    class NotByteLevel:
        backend_tokenizer = type("B", (), {"decoder": type("Metaspace", (), {})()})()

    assert byte_level_pieces(NotByteLevel()) is None
    assert byte_level_pieces(object()) is None


def test_the_engine_streams_byte_level_answers_without_windows_and_the_text_is_unchanged(tiny_base) -> None:
    import torch

    from studio.core.serving import wire
    from studio.core.serving.catalog import build_catalog
    from studio.serve.engine import Engine, Job

    catalog = build_catalog([], base_model=str(tiny_base))
    engine = Engine(catalog, device="cpu", threads=1)
    engine.load()
    assert engine.pieces is not None  # the fixture's tokenizer is byte-level BPE
    prompt = engine.encode("Name a colour and a fruit.", add_special_tokens=True)

    def answer() -> str:
        events: list[tuple] = []
        engine._generate([Job(model=catalog.base, prompt_ids=prompt, stops=[], max_new_tokens=32, emit=events.append,
                              sampling=wire.Sampling(max_tokens=32, temperature=0, ignore_eos=True))])
        assert events[-1][0] == "done"
        return "".join(event[1] for event in events if event[0] == "text")

    fast = answer()
    engine.pieces = None
    assert answer() == fast
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=32,
                                    min_new_tokens=32, do_sample=False, pad_token_id=engine.tokenizer.pad_token_id)
    assert fast == engine.tokenizer.decode(out[0, len(prompt):].tolist(), skip_special_tokens=True)
