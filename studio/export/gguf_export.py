"""GGUF for Llama-family models with our own tensor mapping, written through the ``gguf`` package.

No llama.cpp checkout is needed (its converter pins ``transformers<5``): the names, the q/k row
order, the hyper-parameters and the tokenizer are set here from the Hugging Face model.

The q/k permutation. Hugging Face's Llama applies RoPE with ``rotate_half``: within a head of
``d`` rows, row ``j`` (``j < d/2``) is rotated together with row ``j + d/2`` at frequency ``j``.
GGML's ``LLAMA`` rope (its "normal" mode) rotates adjacent rows ``2i`` and ``2i+1`` at frequency
``i``. So the GGUF row ``2i + s`` (``s`` in {0, 1}) of each head must be the HF row
``s·d/2 + i``: reshape the rows to ``(heads, 2, d/2)``, swap the last two axes, flatten. The key
projection uses the key/value head count (grouped-query attention). V and O are not rotated.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import StudioError

# Not MistralForCausalLM: Mistral 7B has a SentencePiece tokenizer (which we do not write) and a sliding
# window, and Mistral Nemo's Tekken pre-tokenizer split is not one we can name for llama.cpp.
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
SUPPORTED_MODEL_TYPES = ("llama",)
QUANT_TYPES = {"f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}
FILE_TYPES = {"f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0"}
LLAMA3_PRE_MARKS = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "\\p{N}{1,3}")


class GGUFExportError(StudioError):
    """The model or its tokenizer cannot be written as GGUF by us."""


def check_architecture(config: dict[str, Any]) -> None:
    """Refuse, by name, an architecture whose tensors we cannot map (before any weight is loaded)."""
    archs = list(config.get("architectures") or [])
    model_type = config.get("model_type", "")
    if any(a in SUPPORTED_ARCHITECTURES for a in archs) or (not archs and model_type in SUPPORTED_MODEL_TYPES):
        return
    named = ", ".join(archs) or model_type or "unknown"
    raise GGUFExportError(
        f"GGUF export knows Llama-architecture models ({', '.join(SUPPORTED_ARCHITECTURES)}: Llama, SmolLM, "
        f"TinyLlama…); this one is {named} — export 'merged' instead: that folder loads in transformers and vLLM")


def permute_qk(weight: np.ndarray, heads: int) -> np.ndarray:
    """HF rotate_half row order → GGML adjacent-pair row order, per head (see the module docstring)."""
    rows = weight.shape[0]
    head_dim = rows // heads
    return (weight.reshape(heads, 2, head_dim // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_LAYER_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}
_GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                 "lm_head.weight": "output.weight"}


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a Hugging Face Llama tensor; an unknown one is an error naming it."""
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    match = _LAYER.match(hf_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.{match.group(3)}"
    raise GGUFExportError(f"GGUF export does not know the tensor {hf_name!r} of this Llama-family model")


@dataclass
class Hyper:
    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    head_dim: int
    rope_theta: float
    rms_eps: float
    vocab_size: int
    rope: dict[str, Any]
    tied: bool


def hyper_parameters(config: Any) -> Hyper:
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    return Hyper(
        context_length=config.max_position_embeddings, embedding_length=config.hidden_size,
        block_count=config.num_hidden_layers, feed_forward_length=config.intermediate_size,
        head_count=heads, head_count_kv=kv, head_dim=head_dim, rope_theta=float(theta),
        rms_eps=float(config.rms_norm_eps), vocab_size=config.vocab_size, rope=rope,
        tied=bool(getattr(config, "tie_word_embeddings", False)),
    )


def rope_freq_factors(config: Any, hyper: Hyper) -> np.ndarray | None:
    """Llama 3.1's frequency-dependent RoPE scaling as GGML's ``rope_freqs`` (a divisor per frequency).

    Computed as the ratio of the plain inverse frequencies to transformers' own llama3 ones, so
    it follows whatever transformers does rather than re-deriving the schedule here.
    """
    kind = hyper.rope.get("rope_type", hyper.rope.get("type", "default")) or "default"
    if kind in ("default", "linear"):
        return None
    if kind != "llama3":
        raise GGUFExportError(f"GGUF export does not support RoPE scaling {kind!r} (only none, linear, llama3)")
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
    dim = hyper.head_dim
    plain = 1.0 / (hyper.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    return (plain / scaled.float()).numpy().astype(np.float32)


# -- the tokenizer ------------------------------------------------------------------------------
def pre_tokenizer_name(spec: dict[str, Any] | None) -> tuple[bool, str]:
    """(byte-level?, llama.cpp's pre-tokenizer name) from tokenizer.json's ``pre_tokenizer``.

    llama.cpp splits text before BPE with a regex chosen by this name, so it must match the
    split the Hugging Face tokenizer does: GPT-2's regex inside ``ByteLevel`` is "gpt2"; with
    single digits split first (SmolLM) "smollm"; Llama 3's Split regex "llama-bpe"; else "default".
    """
    if not spec:
        return False, "default"
    items = spec.get("pretokenizers", []) if spec.get("type") == "Sequence" else [spec]
    byte_level = [item for item in items if item.get("type") == "ByteLevel"]
    regexes = [str((item.get("pattern") or {}).get("Regex", "")) for item in items if item.get("type") == "Split"]
    digits = any(item.get("type") == "Digits" and item.get("individual_digits") for item in items)
    if any(all(mark in regex for mark in LLAMA3_PRE_MARKS) for regex in regexes):
        return bool(byte_level), "llama-bpe"
    if byte_level and not regexes and any(item.get("use_regex", True) for item in byte_level):
        return True, "smollm" if digits else "gpt2"
    return bool(byte_level), "default"


@dataclass
class VocabData:
    model: str
    pre: str
    tokens: list[str]
    types: list[int]
    merges: list[str]
    add_bos: bool
    add_eos: bool


def vocab_data(tokenizer: Any, vocab_size: int) -> VocabData:
    """Tokens, types and merges of a byte-level BPE fast tokenizer (GGUF tokenizer model "gpt2")."""
    from gguf import TokenType

    if not getattr(tokenizer, "is_fast", False):
        raise GGUFExportError("GGUF export needs the model's fast tokenizer (tokenizer.json); this one has none")
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model", {})
    byte_level, pre = pre_tokenizer_name(spec.get("pre_tokenizer"))
    if model.get("type") != "BPE" or not byte_level:
        kind = "SentencePiece-style" if model.get("byte_fallback") or model.get("type") == "Unigram" else model.get("type")
        raise GGUFExportError(
            f"GGUF export supports byte-level BPE tokenizers (Llama 3, SmolLM, GPT-2 style); this one is "
            f"{kind}, which it cannot write — export 'merged' instead: that folder loads in transformers and vLLM")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {i: tok for i, tok in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(int(TokenType.UNUSED))
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(int(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED))
        else:
            types.append(int(TokenType.NORMAL))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    probe = tokenizer("a")["input_ids"]
    add_bos = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
    add_eos = bool(probe) and tokenizer.eos_token_id is not None and probe[-1] == tokenizer.eos_token_id
    return VocabData(model="gpt2", pre=pre, tokens=tokens, types=types, merges=merges, add_bos=add_bos,
                     add_eos=add_eos)


# -- writing ------------------------------------------------------------------------------------
def tensor_type(name: str, shape: tuple[int, ...], quant: str):
    """Norms and other vectors stay F32 (as llama.cpp expects); matrices get the chosen type."""
    from gguf import GGMLQuantizationType

    if len(shape) < 2:
        return GGMLQuantizationType.F32
    qtype = GGMLQuantizationType[QUANT_TYPES[quant]]
    if qtype == GGMLQuantizationType.Q8_0 and shape[-1] % 32:
        return GGMLQuantizationType.F16  # Q8_0 blocks are 32 wide along a row
    return qtype


def encode(array: np.ndarray, qtype) -> np.ndarray:
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if qtype == GGMLQuantizationType.F32:
        return array.astype(np.float32)
    if qtype == GGMLQuantizationType.F16:
        return array.astype(np.float16)
    return quantize(array.astype(np.float32), qtype)


def planned_tensors(state: dict[str, Any], hyper: Hyper) -> list[tuple[str, str]]:
    """(HF name, GGUF name) in writing order; a tied output head is left out (llama.cpp reuses token_embd)."""
    plan = []
    for name in state:
        if name == "lm_head.weight" and hyper.tied:
            continue
        if name.endswith("rotary_emb.inv_freq"):
            continue
        plan.append((name, gguf_name(name)))
    return plan


def to_numpy(name: str, tensor: Any, hyper: Hyper) -> np.ndarray:
    array = tensor.detach().float().cpu().numpy()
    if ".self_attn.q_proj." in name:
        array = permute_qk(array, hyper.head_count)
    elif ".self_attn.k_proj." in name:
        array = permute_qk(array, hyper.head_count_kv)
    return array


def write_gguf(path: Path, *, model: Any, tokenizer: Any, quant: str, name: str, description: str,
               chat_template: str | None, on_progress: Callable[[str, int, int], None],
               check_cancel: Callable[[], None]) -> None:
    """The merged model (a transformers Llama in memory) as one GGUF file, one tensor in memory at a time."""
    import gguf
    from gguf import GGMLQuantizationType
    from gguf.quants import quant_shape_to_byte_shape

    config = model.config
    hyper = hyper_parameters(config)
    vocab = vocab_data(tokenizer, hyper.vocab_size)
    state = model.state_dict()
    plan = planned_tensors(state, hyper)
    freq_factors = rope_freq_factors(config, hyper)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_description(description)
    writer.add_file_type(int(gguf.LlamaFileType[FILE_TYPES[quant]]))
    if quant == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(hyper.context_length)
    writer.add_embedding_length(hyper.embedding_length)
    writer.add_block_count(hyper.block_count)
    writer.add_feed_forward_length(hyper.feed_forward_length)
    writer.add_rope_dimension_count(hyper.head_dim)
    writer.add_rope_freq_base(hyper.rope_theta)
    writer.add_head_count(hyper.head_count)
    writer.add_head_count_kv(hyper.head_count_kv)
    writer.add_layer_norm_rms_eps(hyper.rms_eps)
    writer.add_vocab_size(hyper.vocab_size)
    if hyper.head_dim * hyper.head_count != hyper.embedding_length:
        writer.add_key_length(hyper.head_dim)
        writer.add_value_length(hyper.head_dim)
    if (hyper.rope.get("rope_type") or hyper.rope.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(hyper.rope.get("factor", 1.0)))

    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    for attr, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                      ("pad_token_id", writer.add_pad_token_id), ("unk_token_id", writer.add_unk_token_id)):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            add(int(value))
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if chat_template:
        writer.add_chat_template(chat_template)

    # Pass 1: every tensor's name, shape and size (the header comes before the data).
    infos: list[tuple[str, str, Any]] = []
    if freq_factors is not None:
        writer.add_tensor_info("rope_freqs.weight", freq_factors.shape, np.float32, freq_factors.nbytes)
    for hf_name, out_name in plan:
        shape = tuple(state[hf_name].shape)
        qtype = tensor_type(out_name, shape, quant)
        if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            dtype = np.float32 if qtype == GGMLQuantizationType.F32 else np.float16
            writer.add_tensor_info(out_name, shape, dtype, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        else:
            byte_shape = quant_shape_to_byte_shape(shape, qtype)
            writer.add_tensor_info(out_name, byte_shape, np.uint8, int(np.prod(byte_shape)), raw_dtype=qtype)
        infos.append((hf_name, out_name, qtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    # Pass 2: convert and write one tensor at a time.
    total = len(infos) + (freq_factors is not None)
    done = 0
    if freq_factors is not None:
        writer.write_tensor_data(freq_factors)
        done += 1
    for hf_name, out_name, qtype in infos:
        check_cancel()
        data = encode(to_numpy(hf_name, state[hf_name], hyper), qtype)
        writer.write_tensor_data(data)
        done += 1
        on_progress("tensors", done, total)
    writer.close()

