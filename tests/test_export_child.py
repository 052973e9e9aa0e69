"""``python -m studio.export`` as a real child process on the tiny pre-trained Llama and a real peft adapter.

Every export is checked by loading it back with an independent reader: plain peft for the adapter,
transformers for the merged model, ``gguf.GGUFReader`` for the GGUF file. The GGUF values are
compared with ``W + (alpha / r) · B @ A`` computed here from the adapter's own safetensors (not
through peft's merge) and the q/k rows un-permuted with an index formula, not the exporter's reshape.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio.core.training.prompt_format import render_prompt
from tests.export_support import REPO_ROOT, export_env, make_run, run_child

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

INSTRUCTION = "Name a color."


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("export-run") / "runs" / "7", tiny_base)


@pytest.fixture(scope="module")
def gqa_base(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Llama with grouped-query attention (2 kv heads for 4) and tied embeddings, the tiny tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokenizer) + 6, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("gqa") / "gqa-llama"
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def export_here(run: Path, out: Path, fmt: str, quant: str | None = None, base: Path | None = None) -> dict:
    """The export in this process (torch is loaded already): the child's own code path, minus its start-up."""
    from studio.export.job import run_export

    return run_export(run, out, fmt, quant, str(base) if base else None)


@pytest.fixture(scope="module")
def f16_export(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("f16") / "gguf-f16"
    return out, run_child(run_dir, out, "gguf", "f16")


def events(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def done(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    final = events(result)[-1]
    assert final["event"] == "done"
    return final


def prompt_ids(tokenizer, instruction: str = INSTRUCTION):
    return tokenizer(render_prompt("alpaca", instruction), return_tensors="pt")["input_ids"]


def base_and_adapter(base: Path, adapter: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).eval()


# -- adapter ----------------------------------------------------------------------------------------
def test_the_adapter_export_loads_with_plain_peft_and_gives_the_runs_logits(run_dir: Path, tiny_base: Path,
                                                                            tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "exports" / "student-adapter"
    final = done(run_child(run_dir, out, "adapter"))
    assert final["path"] == str(out)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= set(final["files"])

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = prompt_ids(tokenizer)
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = plain(ids).logits
        exported = PeftModel.from_pretrained(plain, str(out)).eval()
        exported_logits = exported(ids).logits
        original_logits = base_and_adapter(tiny_base, run_dir / "adapter")(ids).logits
    torch.testing.assert_close(exported_logits, original_logits)
    assert (exported_logits - base_logits).abs().max() > 1e-2   # the adapter does change the model

    card = (out / "README.md").read_text(encoding="utf-8")
    assert "sha256:feedc0ffee1234" in card and str(tiny_base) in card and "accepted-v1" in card
    assert "| `lora_r` | 4 |" in card and "### Instruction:\nGive three tips" in card
    assert not list(out.parent.glob(".*partial*"))


# -- merged -----------------------------------------------------------------------------------------
def test_the_merged_model_gives_the_same_greedy_tokens_as_base_plus_adapter(run_dir: Path, tiny_base: Path,
                                                                          tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = tmp_path / "merged"
    result = run_child(run_dir, out, "merged")
    final = done(result)
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md"} <= set(
        final["files"])
    assert final["bytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    stages = [e["stage"] for e in events(result) if e["event"] == "progress"]
    assert stages[0] == "load" and "save" in stages

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    reference = base_and_adapter(tiny_base, run_dir / "adapter")
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32).eval()
    settings = dict(max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    differs = False
    for instruction in (INSTRUCTION, "What is the capital of France?", "Count to five."):
        ids = prompt_ids(tokenizer, instruction)
        with torch.no_grad():
            got = merged.generate(ids, **settings)
            want = reference.generate(input_ids=ids, **settings)
            base = plain.generate(ids, **settings)
        assert got.tolist() == want.tolist()
        differs |= got.tolist() != base.tolist()
    assert differs

    # the chat template is the training prompt, so chat-template tools prompt it as it was trained
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered == render_prompt("alpaca", INSTRUCTION)
    assert GenerationConfig.from_pretrained(str(out)).eos_token_id == tokenizer.eos_token_id
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "sha256:feedc0ffee1234" in card and str(tiny_base) in card


# -- gguf -------------------------------------------------------------------------------------------
def merged_reference(base: Path, adapter: Path) -> dict[str, np.ndarray]:
    """W + (alpha / r) · B @ A for every LoRA'd weight, from the safetensors files themselves."""
    from safetensors.numpy import load_file

    weights = load_file(str(base / "model.safetensors"))
    lora = load_file(str(adapter / "adapter_model.safetensors"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    out = {name: w.astype(np.float32) for name, w in weights.items()}
    for key, a in lora.items():
        if ".lora_A." not in key:
            continue
        b = lora[key.replace(".lora_A.", ".lora_B.")]
        target = key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
        out[target] = out[target] + scale * (b.astype(np.float32) @ a.astype(np.float32))
    return out


def unpermute(rows: np.ndarray, heads: int) -> np.ndarray:
    """GGUF row r of head h is HF row h·d + (r mod 2)·d/2 + r div 2 (GGML pairs adjacent rows)."""
    d = rows.shape[0] // heads
    restored = np.empty_like(rows)
    for h in range(heads):
        for r in range(d):
            restored[h * d + (r % 2) * (d // 2) + r // 2] = rows[h * d + r]
    return restored


HF_OF = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
         "output.weight": "lm_head.weight"}
LAYER_OF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def hf_name(name: str) -> str:
    if name in HF_OF:
        return HF_OF[name]
    _, layer, part, kind = name.split(".")
    return f"model.layers.{layer}.{LAYER_OF[part]}.{kind}"


def field(reader, key: str):
    return reader.fields[key].contents()


def check_gguf(path: Path, base: Path, run: Path, quant: str, *, tied: bool) -> None:
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(str(base))
    reference = merged_reference(base, run / "adapter")
    if tied:
        reference.pop("lm_head.weight", None)
    reader = GGUFReader(str(path))
    names = {t.name for t in reader.tensors}
    expected = set()
    for key in reference:
        for g, h in HF_OF.items():
            if h == key:
                expected.add(g)
        if key.startswith("model.layers."):
            _, _, layer, *rest = key.split(".")
            module, kind = ".".join(rest[:-1]), rest[-1]
            part = next(p for p, m in LAYER_OF.items() if m == module)
            expected.add(f"blk.{layer}.{part}.{kind}")
    assert names == expected
    assert ("output.weight" in names) is not tied

    want_type = {"f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}[quant]
    tolerance = {"f16": 2e-3, "bf16": 2e-2, "q8_0": 3e-2}[quant]
    for tensor in reader.tensors:
        want = reference[hf_name(tensor.name)]
        assert tuple(int(n) for n in tensor.shape) == tuple(reversed(want.shape)), tensor.name  # GGML order
        if want.ndim == 1:
            assert tensor.tensor_type == Q.F32, tensor.name
        else:
            assert tensor.tensor_type == want_type, tensor.name
        got = dequantize(tensor.data, tensor.tensor_type).reshape(want.shape).astype(np.float32)
        if tensor.name.endswith("attn_q.weight"):
            got = unpermute(got, config.num_attention_heads)
        elif tensor.name.endswith("attn_k.weight"):
            got = unpermute(got, config.num_key_value_heads)
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= tolerance * scale, (tensor.name, np.abs(got - want).max())

    head_dim = config.hidden_size // config.num_attention_heads
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.context_length") == config.max_position_embeddings
    assert field(reader, "llama.embedding_length") == config.hidden_size
    assert field(reader, "llama.block_count") == config.num_hidden_layers
    assert field(reader, "llama.feed_forward_length") == config.intermediate_size
    assert field(reader, "llama.attention.head_count") == config.num_attention_heads
    assert field(reader, "llama.attention.head_count_kv") == config.num_key_value_heads
    assert field(reader, "llama.rope.dimension_count") == head_dim
    assert field(reader, "llama.rope.freq_base") == pytest.approx(config.rope_parameters["rope_theta"])
    assert field(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(config.rms_norm_eps)
    assert field(reader, "llama.vocab_size") == config.vocab_size

    tokenizer = AutoTokenizer.from_pretrained(str(run / "tokenizer"))
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == config.vocab_size
    assert tokens[: len(tokenizer)] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert field(reader, "tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    types = field(reader, "tokenizer.ggml.token_type")
    assert types[tokenizer.eos_token_id] == gguf.TokenType.CONTROL and types[10] == gguf.TokenType.NORMAL
    merges = field(reader, "tokenizer.ggml.merges")
    assert len(merges) > 100 and all(len(m.split(" ")) == 2 for m in merges[:50])
    template = field(reader, "tokenizer.chat_template")
    assert "### Instruction:" in template and "### Response:" in template


def test_the_gguf_child_reports_every_tensor_and_writes_the_modelfile_and_card(f16_export, tiny_base: Path,
                                                                               run_dir: Path) -> None:
    out, result = f16_export
    final = done(result)
    assert set(final["files"]) == {"student-f16.gguf", "Modelfile", "README.md", "export.json"}
    tensor_events = [e for e in events(result) if e["event"] == "progress" and e["stage"] == "tensors"]
    assert [e["done"] for e in tensor_events] == list(range(1, tensor_events[-1]["total"] + 1))
    check_gguf(out / "student-f16.gguf", tiny_base, run_dir, "f16", tied=False)

    modelfile = (out / "Modelfile").read_text(encoding="utf-8")
    assert "FROM ./student-f16.gguf" in modelfile
    assert 'PARAMETER stop "</s>"' in modelfile and 'PARAMETER stop "### Instruction:"' in modelfile
    assert ('{{ else if eq .Role "user" }}Below is an instruction that describes a task. Write a response that '
            'appropriately completes the request.\n\n### Instruction:\n{{ .Content }}\n\n### Response:') in modelfile
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "sha256:feedc0ffee1234" in card and str(tiny_base) in card and "ollama create" in card


@pytest.mark.parametrize("quant", ["q8_0", "bf16"])
def test_quantised_gguf_holds_every_tensor_within_tolerance(run_dir: Path, tiny_base: Path, tmp_path: Path,
                                                            quant: str) -> None:
    result = export_here(run_dir, tmp_path / quant, "gguf", quant)
    assert f"student-{quant}.gguf" in result["files"]
    check_gguf(tmp_path / quant / f"student-{quant}.gguf", tiny_base, run_dir, quant, tied=False)


def read_back_with_transformers(folder: Path, name: str, base: Path, adapter: Path, tolerance: float) -> None:
    """transformers' own GGUF loader (written for llama.cpp's files: it un-permutes q/k, maps the names and
    rebuilds the tokenizer) must give the logits and the token ids of base + adapter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter.parent / "tokenizer"))
    text = render_prompt("alpaca", "Translate the word to French.", "cat 123")
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got = loaded(ids).logits
        want = base_and_adapter(base, adapter)(ids).logits
    assert (got - want).abs().max() < tolerance
    from_gguf = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
    assert from_gguf(text)["input_ids"] == ids[0].tolist()


def test_transformers_gguf_loader_reads_the_file_back_as_the_same_model(f16_export, run_dir: Path,
                                                                         tiny_base: Path) -> None:
    out, result = f16_export
    done(result)
    read_back_with_transformers(out, "student-f16.gguf", tiny_base, run_dir / "adapter", tolerance=2e-2)


def test_grouped_query_attention_and_tied_embeddings_are_mapped(gqa_base: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "3", gqa_base, name="gqa")
    out = tmp_path / "gguf"
    export_here(run, out, "gguf", "f16")
    check_gguf(out / "gqa-f16.gguf", gqa_base, run, "f16", tied=True)
    from gguf import GGUFReader

    tokens = GGUFReader(str(out / "gqa-f16.gguf")).fields["tokenizer.ggml.tokens"].contents()
    assert tokens[-1] == f"[PAD{len(tokens) - 1}]"     # the embedding rows past the tokenizer's vocabulary
    read_back_with_transformers(out, "gqa-f16.gguf", gqa_base, run / "adapter", tolerance=2e-2)


# -- errors and cancel ------------------------------------------------------------------------------
def test_an_architecture_we_cannot_convert_is_named(run_dir: Path, tiny_base: Path, tmp_path: Path) -> None:
    other = tmp_path / "qwen-moe"
    shutil.copytree(tiny_base, other)
    config = json.loads((other / "config.json").read_text())
    config.update(architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe")
    (other / "config.json").write_text(json.dumps(config))
    from studio.export.gguf_export import GGUFExportError

    out = tmp_path / "out"
    with pytest.raises(GGUFExportError) as error:
        export_here(run_dir, out, "gguf", "f16", base=other)
    assert str(error.value) == ("GGUF export knows Llama-architecture models (LlamaForCausalLM: Llama, SmolLM, "
                                "TinyLlama…); this one is Qwen2MoeForCausalLM — export 'merged' instead: that "
                                "folder loads in transformers and vLLM")
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_q4_k_m_without_llama_cpp_names_the_extra(run_dir: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    from studio.export.job import ExportError

    with pytest.raises(ExportError) as error:
        export_here(run_dir, tmp_path / "q4", "gguf", "q4_k_m")
    assert "llama-cpp-python" in str(error.value) and "gguf-kquants" in error.value.hint
    assert list(tmp_path.iterdir()) == []


def test_a_base_model_that_is_not_on_this_machine_is_never_downloaded(run_dir: Path, tmp_path: Path) -> None:
    from studio.export.job import ExportError

    with pytest.raises(ExportError) as error:
        export_here(run_dir, tmp_path / "m", "merged", base=Path("someone/not-cached-model"))
    assert "never downloads" in str(error.value) and "--base-model" in error.value.hint
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_that_is_not_an_export_is_refused(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    from studio.export.job import ExportError

    with pytest.raises(ExportError, match="not an earlier export"):
        export_here(run_dir, out, "adapter")
    assert (out / "notes.txt").read_text() == "keep me"
    # an earlier export there is replaced whole, leaving nothing beside it
    export_here(run_dir, tmp_path / "again", "adapter")
    (tmp_path / "again" / "stale.txt").write_text("from the first export")
    export_here(run_dir, tmp_path / "again", "adapter")
    assert not (tmp_path / "again" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]


def test_sigterm_mid_export_leaves_no_target(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cancelled"
    argv = [sys.executable, "-m", "studio.export", "--run-dir", str(run_dir), "--out", str(out),
            "--format", "gguf", "--quant", "q8_0", "--threads", "1"]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=export_env(),
                             cwd=REPO_ROOT)
    try:
        first = json.loads(child.stdout.readline())
        assert first["event"] == "progress" and first["stage"] == "load"
        assert list(tmp_path.glob(".cancelled.partial-*"))         # it writes beside the target
        child.send_signal(signal.SIGTERM)
        rest, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    last = json.loads(rest.strip().splitlines()[-1])
    assert child.returncode == 1 and last["event"] == "error" and "cancelled" in last["message"]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_job_runners_stop_file_cancels_too(run_dir: Path, tmp_path: Path) -> None:
    stop = tmp_path / "stop.flag"
    stop.touch()
    env = export_env()
    env["STUDIO_STOP_FILE"] = str(stop)
    result = subprocess.run([sys.executable, "-m", "studio.export", "--run-dir", str(run_dir), "--out",
                             str(tmp_path / "x"), "--format", "adapter"], capture_output=True, text=True,
                            env=env, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 1 and "cancelled" in events(result)[-1]["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stop.flag"]


def test_a_chat_format_run_keeps_the_base_models_chat_template(tiny_base: Path, tmp_path: Path) -> None:
    from gguf import GGUFReader

    from tests.tiny_model import CHAT_TEMPLATE

    run = make_run(tmp_path / "runs" / "4", tiny_base, prompt_format="chat", name="chatty")
    out = tmp_path / "gguf"
    export_here(run, out, "gguf", "q8_0")
    reader = GGUFReader(str(out / "chatty-q8_0.gguf"))
    assert reader.fields["tokenizer.chat_template"].contents() == CHAT_TEMPLATE
    modelfile = (out / "Modelfile").read_text(encoding="utf-8")
    # Ollama does not run the GGUF's Jinja: the Modelfile carries the same template in Go (QA of issue 10)
    assert ('TEMPLATE """{{ if .System }}<|system|>\n{{ .System }}\n{{ end }}<|user|>\n{{ .Prompt }}\n'
            '<|assistant|>\n{{ .Response }}</s>"""') in modelfile, modelfile
    assert modelfile.count("PARAMETER stop") == 1 and 'PARAMETER stop "</s>"' in modelfile
    assert "<|user|>\nGive three tips" in (out / "README.md").read_text(encoding="utf-8")


def test_llama3_rope_scaling_becomes_ggmls_frequency_divisors() -> None:
    import math

    from transformers import LlamaConfig

    from studio.export.gguf_export import hyper_parameters, rope_freq_factors

    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    config = LlamaConfig(hidden_size=256, num_attention_heads=2, num_hidden_layers=1, intermediate_size=64,
                         max_position_embeddings=131072, rope_parameters=rope)
    factors = rope_freq_factors(config, hyper_parameters(config))
    d = 128
    for i, got in enumerate(factors):         # Meta's published llama 3.1 schedule, wavelength by wavelength
        wavelen = 2 * math.pi * 500000.0 ** (2 * i / d)
        if wavelen < 8192 / 4.0:
            want = 1.0
        elif wavelen > 8192 / 1.0:
            want = 8.0
        else:
            smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0)
            want = 1 / ((1 - smooth) / 8.0 + smooth)
        assert got == pytest.approx(want, rel=1e-4)
    assert rope_freq_factors(LlamaConfig(hidden_size=64, num_attention_heads=2),
                             hyper_parameters(LlamaConfig(hidden_size=64, num_attention_heads=2))) is None


def test_q4_k_m_writes_f16_then_asks_llama_cpp_to_quantise(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """llama-cpp-python is an optional extra not installed here: a stand-in with its API records the call."""
    import ctypes
    import types

    class Params(ctypes.Structure):
        _fields_ = [("ftype", ctypes.c_int)]

    calls = []

    def quantize(source: bytes, target: bytes, params) -> int:
        calls.append((Path(source.decode()), Path(target.decode()), params._obj.ftype))
        from gguf import GGUFReader

        assert GGUFReader(source.decode()).fields["general.file_type"].contents() == 1   # MOSTLY_F16
        shutil.copyfile(source, target)
        return 0

    fake = types.SimpleNamespace(llama_model_quantize_default_params=Params, LLAMA_FTYPE_MOSTLY_Q4_K_M=15,
                                 llama_model_quantize=quantize)
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)
    result = export_here(run_dir, tmp_path / "q4", "gguf", "q4_k_m")
    assert sorted(result["files"]) == ["Modelfile", "README.md", "export.json", "student-q4_k_m.gguf"]
    (source, target, ftype), = calls
    assert ftype == 15 and target.name == "student-q4_k_m.gguf" and not source.exists()
    assert "FROM ./student-q4_k_m.gguf" in (tmp_path / "q4" / "Modelfile").read_text()


# -- cancelling and file modes (QA of issue 10) ------------------------------------------------------------
def test_ctrl_c_then_sigterm_while_loading_leaves_nothing(run_dir: Path, tmp_path: Path) -> None:
    """A terminal's Ctrl+C reaches the child as SIGINT, then the CLI sends SIGTERM: the cleanup still completes."""
    out = tmp_path / "cancelled"
    argv = [sys.executable, "-m", "studio.export", "--run-dir", str(run_dir), "--out", str(out),
            "--format", "merged", "--threads", "1"]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=export_env(),
                             cwd=REPO_ROOT)
    try:
        first = json.loads(child.stdout.readline())
        assert first["event"] == "progress" and first["stage"] == "load"
        child.send_signal(signal.SIGINT)
        child.send_signal(signal.SIGTERM)
        rest, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    last = json.loads(rest.strip().splitlines()[-1])
    assert child.returncode == 1 and last == {"event": "error", "message": "export cancelled; nothing was written",
                                              "hint": ""}, err[-2000:]
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_stale_partials_of_dead_exports_are_removed_and_files_get_the_default_mode(run_dir: Path,
                                                                                    tmp_path: Path) -> None:
    import os
    import stat

    run = tmp_path / "runs" / "7"
    shutil.copytree(run_dir, run)
    (run / "adapter" / "adapter_model.safetensors").chmod(0o600)  # as a temp-file writer leaves it
    out = tmp_path / "student"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".student.partial-{dead.pid}"
    live = tmp_path / ".student.partial-1"          # pid 1 is alive: maybe another export at work
    for folder in (stale, live):
        folder.mkdir()
        (folder / "half.bin").write_bytes(b"x")
    old_mask = os.umask(0o022)
    try:
        export_here(run, out, "adapter")
    finally:
        os.umask(old_mask)
    assert not stale.exists() and live.exists()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes.pop("student") == 0o755 and modes["adapter_model.safetensors"] == 0o644
    assert set(modes.values()) == {0o644}, modes
