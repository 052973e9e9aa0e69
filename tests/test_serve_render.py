"""The server's pure parts: conversations rendered as training rendered them, the wire format, streamed text."""
from __future__ import annotations

import json

import pytest

from studio.core.serving import wire
from studio.core.serving.render import RenderError, adds_special_tokens, format_stops, render_chat
from studio.core.training.prompt_format import render_prompt
from studio.serve.textstream import TextStream


class _ChatTokenizer:
    eos_token = "<|end|>"
    chat_template = "fake"

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in conversation)
        return text + ("<|assistant|>" if add_generation_prompt else "")


@pytest.mark.parametrize("fmt", ["alpaca", "alpaca-lora"])
def test_a_single_turn_is_exactly_the_training_prompt(fmt: str) -> None:
    assert render_chat(fmt, [{"role": "user", "content": "Name a colour."}], None) == render_prompt(fmt, "Name a colour.")
    assert (render_chat(fmt, [{"role": "user", "content": "Add them.", "input": "2 and 3"}], None)
            == render_prompt(fmt, "Add them.", "2 and 3"))


def test_text_formats_chain_earlier_turns_and_put_the_system_message_first() -> None:
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Add them.", "input": "2 and 3"},
                {"role": "assistant", "content": "5"},
                {"role": "user", "content": "Name a colour."}]
    expected = ("Be brief.\n\n" + render_prompt("alpaca", "Add them.", "2 and 3") + "5\n\n"
                + render_prompt("alpaca", "Name a colour."))
    assert render_chat("alpaca", messages, None) == expected
    assert adds_special_tokens("alpaca") and not adds_special_tokens("chat")
    assert format_stops("alpaca", "</s>", ["END", "</s>"]) == ["</s>", "\n### Instruction:", "END"]


def test_the_chat_format_hands_every_turn_to_the_template_with_the_input_in_the_user_turn() -> None:
    tok = _ChatTokenizer()
    one = [{"role": "user", "content": "Add them.", "input": "2 and 3"}]
    assert render_chat("chat", one, tok) == render_prompt("chat", "Add them.", "2 and 3", tokenizer=tok)
    many = [{"role": "system", "content": "S"}, {"role": "user", "content": "A"}, {"role": "assistant", "content": "B"},
            {"role": "user", "content": "C"}]
    assert render_chat("chat", many, tok) == "<|system|>S<|end|><|user|>A<|end|><|assistant|>B<|end|><|user|>C<|end|><|assistant|>"


def test_a_conversation_must_end_with_the_user() -> None:
    with pytest.raises(RenderError, match="last message"):
        render_chat("alpaca", [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], None)


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}, "max_completion_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0}, "top_p"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": "7"}, "seed"),
])
def test_bad_chat_requests_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.parse_chat_request(body)
    assert caught.value.status == 400 and caught.value.param == param
    assert set(caught.value.body()["error"]) == {"message", "type", "param", "code"}


def test_a_good_request_parses_with_openai_defaults_and_our_input_extension() -> None:
    parsed = wire.parse_chat_request({
        "model": "m", "stream": True, "stream_options": {"include_usage": True}, "stop": "###", "seed": 3,
        "temperature": 0, "max_tokens": 9,
        "messages": [{"role": "developer", "content": "S"},
                     {"role": "user", "content": [{"type": "text", "text": "Add"}, {"type": "text", "text": " them."}],
                      "input": "2 and 3"}]})
    assert parsed.messages == [{"role": "system", "content": "S"},
                               {"role": "user", "content": "Add them.", "input": "2 and 3"}]
    assert (parsed.stream, parsed.include_usage, parsed.sampling.stop, parsed.sampling.seed) == (True, True, ["###"], 3)
    assert parsed.sampling.greedy and parsed.sampling.max_tokens == 9
    with pytest.raises(wire.WireError, match="not valid JSON"):
        wire.parse_json(b"{bad")
    with pytest.raises(wire.WireError, match="one prompt"):
        wire.parse_completion_request({"model": "m", "prompt": ["a", "b"]})


def test_sse_lines_are_compact_json_events() -> None:
    line = wire.sse(wire.chat_chunk("chatcmpl-1", 5, "m", {"content": "hé"}))
    assert line.startswith("data: {") and line.endswith("}\n\n")
    assert json.loads(line[6:])["choices"][0]["delta"] == {"content": "hé"}
    assert wire.usage_chunk("chatcmpl-1", 5, "m", wire.CHAT_CHUNK, wire.usage(3, 4))["choices"] == []


def _decoder(pieces: dict[int, str]):
    return lambda ids: "".join(pieces[i] for i in ids)


def test_text_stream_holds_back_a_possible_stop_string_and_cuts_at_it() -> None:
    pieces = {1: "Blue", 2: " is", 3: " #", 4: "##", 5: " a", 6: " Instr"}
    stream = TextStream(_decoder(pieces), stops=["\n###", " ###"])
    out = [stream.add(i) for i in (1, 2, 3)]
    assert out == ["Blue", " is", ""]            # " #" might begin " ###"
    assert stream.add(4) == "" and stream.stopped  # " ###" completed: nothing of it is sent
    assert stream.sent_text == "Blue is"
    relaxed = TextStream(_decoder(pieces), stops=[" ###"])
    assert [relaxed.add(i) for i in (1, 3, 5)] == ["Blue", "", " # a"]  # " # a" is not a stop after all
    assert relaxed.finish() == "" and not relaxed.stopped


def test_text_stream_waits_for_a_whole_character() -> None:
    raw = {1: b"caf", 2: b"\xc3", 3: b"\xa9!"}
    decode = lambda ids: b"".join(raw[i] for i in ids).decode("utf-8", errors="replace")
    stream = TextStream(decode)
    assert [stream.add(i) for i in (1, 2, 3)] == ["caf", "", "é!"]


def test_a_chunk_template_writes_what_the_dict_would() -> None:
    for text in ("plain", 'quote " and \\ backslash', "é\n\u2028"):
        assert wire.ChunkTemplate.chat("c-1", 5, "m", with_usage=True)(text) == wire.sse(
            wire.chat_chunk("c-1", 5, "m", {"content": text}, with_usage=True))
        assert wire.ChunkTemplate.completion("c-1", 5, "m")(text) == wire.sse(wire.completion_chunk("c-1", 5, "m", text))
