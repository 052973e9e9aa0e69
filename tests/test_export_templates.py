"""The export's templates and the q/k permutation, without a model: Jinja and Ollama templates render the
training prompt, and the permuted rows under GGML's adjacent-pair RoPE give Hugging Face's attention scores."""
from __future__ import annotations

import numpy as np
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from studio.core.training.prompt_format import render_prompt
from studio.export import templates
from studio.export.gguf_export import GGUFExportError, check_architecture, permute_qk


def render(template: str, messages: list[dict]) -> str:
    # the environment transformers' apply_chat_template uses
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, eos_token="</s>")


@pytest.mark.parametrize("fmt", ["alpaca", "alpaca-lora"])
def test_one_turn_is_exactly_the_training_prompt(fmt: str) -> None:
    template = templates.jinja_chat_template(fmt)
    assert render(template, [{"role": "user", "content": "Say \"hi\" — {twice}\\n"}]) == render_prompt(
        fmt, "Say \"hi\" — {twice}\\n")
    assert render(template, [{"role": "user", "content": "Add.", "input": "2 and 3"}]) == render_prompt(
        fmt, "Add.", "2 and 3")


def test_a_conversation_renders_as_the_server_does() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."},
                {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}]
    want = ("Be brief.\n\n" + render_prompt("alpaca", "Name a color.") + "Blue.\n\n"
            + render_prompt("alpaca", "Another?"))
    assert render(templates.jinja_chat_template("alpaca"), messages) == want


def test_the_chat_format_keeps_the_tokenizers_own_template() -> None:
    assert templates.jinja_chat_template("chat") is None and templates.ollama_template("chat") is None
    text = templates.modelfile("m.gguf", "chat", eos_token="</s>")
    assert "TEMPLATE" not in text.replace("no TEMPLATE", "") and 'PARAMETER stop "</s>"' in text


def go_render(template: str, messages: list[dict]) -> str:
    """Enough of Go's text/template for our TEMPLATE: range .Messages, if/else if eq .Role, .Content."""
    out = []
    body = template.removeprefix("{{ range .Messages }}").removesuffix("{{ end }}{{ end }}")
    branches = {}
    for part in body.split("{{ ")[1:]:
        head, _, text = part.partition(" }}")
        if head.startswith(("if eq .Role", "else if eq .Role")):
            role = head.split('"')[1]
            branches[role] = [text]
        elif head == ".Content":
            branches[role].append(None)
            branches[role].append(text)
    for message in messages:
        out.extend(message["content"] if piece is None else piece for piece in branches[message["role"]])
    return "".join(out)


@pytest.mark.parametrize("fmt", ["alpaca", "alpaca-lora"])
def test_the_ollama_template_renders_the_same_prompt(fmt: str) -> None:
    template = templates.ollama_template(fmt)
    assert "{{-" not in template and "-}}" not in template
    assert go_render(template, [{"role": "user", "content": "Name a color."}]) == render_prompt(fmt, "Name a color.")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A?"},
                {"role": "assistant", "content": "B."}, {"role": "user", "content": "C?"}]
    assert go_render(template, messages) == render(templates.jinja_chat_template(fmt), messages)


def test_the_modelfile_names_the_file_the_template_and_the_stops() -> None:
    text = templates.modelfile("student-q8_0.gguf", "alpaca", eos_token="</s>", system="Be kind.")
    assert "FROM ./student-q8_0.gguf\n" in text
    assert 'TEMPLATE """{{ range .Messages }}' in text and 'SYSTEM """Be kind."""' in text
    assert text.count("PARAMETER stop") == 2 and 'PARAMETER stop "### Instruction:"' in text


def test_unknown_architectures_are_named() -> None:
    check_architecture({"architectures": ["LlamaForCausalLM"]})
    with pytest.raises(GGUFExportError, match="this one is MistralForCausalLM"):  # SentencePiece or Tekken
        check_architecture({"architectures": ["MistralForCausalLM"]})
    with pytest.raises(GGUFExportError, match="this one is Qwen2MoeForCausalLM"):
        check_architecture({"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe"})


def rope_hf(x: np.ndarray, pos: int, inv_freq: np.ndarray) -> np.ndarray:
    """transformers' Llama: cos/sin of cat(freqs, freqs), x * cos + rotate_half(x) * sin."""
    angles = np.concatenate([pos * inv_freq, pos * inv_freq])
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[half:], x[:half]])
    return x * np.cos(angles) + rotated * np.sin(angles)


def rope_ggml(x: np.ndarray, pos: int, inv_freq: np.ndarray) -> np.ndarray:
    """GGML's normal mode: each adjacent pair (2i, 2i+1) rotated by pos · inv_freq[i]."""
    out = x.copy()
    for i, f in enumerate(inv_freq):
        c, s = np.cos(pos * f), np.sin(pos * f)
        out[2 * i], out[2 * i + 1] = x[2 * i] * c - x[2 * i + 1] * s, x[2 * i] * s + x[2 * i + 1] * c
    return out


def test_permuted_rows_under_ggml_rope_give_the_same_attention_scores() -> None:
    rng = np.random.default_rng(0)
    heads, kv_heads, d, hidden = 4, 2, 8, 16
    wq = rng.normal(size=(heads * d, hidden))
    wk = rng.normal(size=(kv_heads * d, hidden))
    inv_freq = 1.0 / (10000 ** (np.arange(0, d, 2) / d))
    xq, xk = rng.normal(size=hidden), rng.normal(size=hidden)
    pq, pk = permute_qk(wq, heads), permute_qk(wk, kv_heads)
    for h in range(heads):
        g = h // (heads // kv_heads)
        for m, n in ((5, 2), (17, 17), (3, 11)):
            hf = rope_hf((wq @ xq)[h * d:(h + 1) * d], m, inv_freq) @ rope_hf((wk @ xk)[g * d:(g + 1) * d], n, inv_freq)
            gg = (rope_ggml((pq @ xq)[h * d:(h + 1) * d], m, inv_freq)
                  @ rope_ggml((pk @ xk)[g * d:(g + 1) * d], n, inv_freq))
            assert gg == pytest.approx(hf, rel=1e-9, abs=1e-9)
    # and without the permutation the scores differ: the check has teeth
    plain = rope_ggml((wq @ xq)[:d], 5, inv_freq) @ rope_ggml((wk @ xk)[:d], 2, inv_freq)
    assert plain != pytest.approx(rope_hf((wq @ xq)[:d], 5, inv_freq) @ rope_hf((wk @ xk)[:d], 2, inv_freq))


def test_the_model_card_names_its_sources() -> None:
    card = templates.model_card(title="s (gguf)", fmt="gguf", base_model="/m/tiny", snapshot_name="v1",
                                snapshot_hash="sha256:abc", settings={"lora_r": 8, "target_modules": ["q", "v"]},
                                example="PROMPT", how_to_load="load it", files=["a.gguf"])
    assert "sha256:abc" in card and "/m/tiny" in card and "| `target_modules` | q, v |" in card
    assert "```text\nPROMPT\n```" in card


LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def test_the_pre_tokenizer_name_follows_the_tokenizers_split() -> None:
    from studio.export.gguf_export import pre_tokenizer_name

    gpt2 = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert pre_tokenizer_name(gpt2) == (True, "gpt2")
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, gpt2]}) == (True, "smollm")
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
        {**gpt2, "use_regex": False}]}) == (True, "llama-bpe")
    assert pre_tokenizer_name({"type": "Metaspace", "replacement": "▁"}) == (False, "default")
    assert pre_tokenizer_name(None) == (False, "default")


def test_a_sentencepiece_tokenizer_is_refused_without_sending_anyone_to_llama_cpp() -> None:
    """QA of issue 10: llama.cpp's converter fails for these users; say what works instead."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from studio.export.gguf_export import vocab_data

    spm = Tokenizer(models.BPE(vocab={"<unk>": 0, "▁a": 1, "a": 2, "▁": 3}, merges=[("▁", "a")],
                               unk_token="<unk>", byte_fallback=True))
    spm.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=spm, unk_token="<unk>")
    with pytest.raises(GGUFExportError) as caught:
        vocab_data(tokenizer, 4)
    message = str(caught.value)
    assert "convert_hf_to_gguf" not in message and "llama.cpp" not in message
    assert "supports byte-level BPE tokenizers (Llama 3, SmolLM" in message and "SentencePiece-style" in message
    assert "export 'merged' instead: that folder loads in transformers and vLLM" in message


# -- a chat-format run's Ollama TEMPLATE, derived from its Jinja chat template (QA of issue 10) ---------------
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def jinja_render(template: str, bos: str, eos: str):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    compiled = env.from_string(template)
    return lambda messages, generation: compiled.render(messages=messages, add_generation_prompt=generation,
                                                        bos_token=bos, eos_token=eos)


def go_render_turn(template: str, system: str, prompt: str, response: str = "") -> str:
    """Ollama's legacy template as it renders one turn: the if/else/end blocks and the three fields."""
    import re

    fields = {"System": system, "Prompt": prompt, "Response": response}

    def branch(match: re.Match) -> str:
        yes, _, no = match.group(2).partition("{{ else }}")
        return yes if fields[match.group(1)] else no

    text = re.sub(r"\{\{ if \.(\w+) \}\}(.*?)\{\{ end \}\}", branch, template, flags=re.S)
    assert "{{ if" not in text and "{{ end" not in text
    return re.sub(r"\{\{ \.(\w+) \}\}", lambda m: fields[m.group(1)], text)


@pytest.mark.parametrize(("name", "bos", "eos", "stops"), [
    ("tiny", "<s>", "</s>", ("</s>",)),
    ("llama3", "<|begin_of_text|>", "<|eot_id|>", ("<|eot_id|>",)),
    ("chatml", "", "<|im_end|>", ("<|im_end|>",)),
])
def test_the_ollama_template_renders_what_the_chat_template_does(name: str, bos: str, eos: str,
                                                                 stops: tuple[str, ...]) -> None:
    from tests.tiny_model import CHAT_TEMPLATE

    jinja = {"tiny": CHAT_TEMPLATE, "llama3": LLAMA3_TEMPLATE, "chatml": CHATML_TEMPLATE}[name]
    render = jinja_render(jinja, bos, eos)
    chat = templates.ollama_from_chat_template(render, eos_token=eos, bos_token=bos or None)
    assert chat is not None and chat.stops == stops
    assert "{{ .System }}" in chat.template and "{{ .Prompt }}" in chat.template
    assert "{{ .Response }}" in chat.template and "QX" not in chat.template
    for system in ("Be brief.", ""):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "Hi?"}]
        want = render(messages, True).removeprefix(bos) if bos else render(messages, True)
        prompt_part = chat.template.split("{{ .Response }}")[0]  # what Ollama renders before generating
        assert go_render_turn(prompt_part, system, "Hi?") == want
    full = go_render_turn(chat.template, "Be brief.", "Hi?", "Hello.")
    answered = render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                       {"role": "assistant", "content": "Hello."}], False)
    assert full == (answered.removeprefix(bos) if bos else answered)


def test_the_tiny_templates_ollama_template_reads_as_written() -> None:
    from tests.tiny_model import CHAT_TEMPLATE

    chat = templates.ollama_from_chat_template(jinja_render(CHAT_TEMPLATE, "<s>", "</s>"), eos_token="</s>",
                                               bos_token="<s>")
    assert chat.template == ("{{ if .System }}<|system|>\n{{ .System }}\n{{ end }}<|user|>\n{{ .Prompt }}\n"
                             "<|assistant|>\n{{ .Response }}</s>")
    text = templates.modelfile("chatty-q8_0.gguf", "chat", eos_token="</s>", chat=chat)
    assert f'TEMPLATE """{chat.template}"""' in text and text.count("PARAMETER stop") == 1


def test_a_template_that_refuses_a_system_turn_gets_a_template_without_one() -> None:
    def render(messages: list[dict], generation: bool) -> str:
        if any(m["role"] == "system" for m in messages):
            raise ValueError("System role not supported")
        out = "".join(f"<start_of_turn>{m['role']}\n{m['content']}<end_of_turn>\n" for m in messages)
        return out + ("<start_of_turn>model\n" if generation else "")

    chat = templates.ollama_from_chat_template(render, eos_token="<eos>")
    assert chat is not None and "{{ .System }}" not in chat.template and "{{ if" not in chat.template
    assert chat.template == ("<start_of_turn>user\n{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n"
                             "{{ .Response }}<end_of_turn>\n")
    assert chat.stops == ("<end_of_turn>", "<eos>")
