"""A tiny Llama-architecture base model built on the spot, for CPU tests (no machine here can download weights).

``build_tiny_llama`` trains a byte-level BPE tokenizer on a small built-in English corpus, builds a
2-layer ``LlamaForCausalLM`` around it and pre-trains it fully for a few hundred steps. A purely
random base barely moves under LoRA; this short pre-training gives LoRA something to adapt, so a
test sees the loss fall within tens of steps. The result is a normal model folder (safetensors,
``config.json``, tokenizer files with bos/eos/pad and a chat template) that
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load like any other.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

STANFORD_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:"
)
STANFORD_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
    "{instruction}\n\n### Input:\n{input}\n\n### Response:"
)

# A deliberately simple chat template: BOS, then "<|role|>\n" turns; the assistant turn ends in EOS.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ '\\n' }}"
    "{{ message['content'] }}{% if message['role'] == 'assistant' %}{{ eos_token }}"
    "{% else %}{{ '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{{ '\\n' }}{% endif %}"
)

_SUBJECTS = ["The cat", "A small dog", "My friend", "The teacher", "A young girl", "The old man",
             "Our team", "The farmer", "A happy child", "The doctor"]
_VERBS = ["reads", "likes", "finds", "makes", "sees", "wants", "helps", "cleans", "paints", "opens"]
_OBJECTS = ["a red book", "the blue door", "a warm cup of tea", "the green garden", "a new song",
            "the kitchen table", "a bright lamp", "the quiet river", "a long letter", "the open window"]
_PLACES = ["in the morning", "after school", "at night", "near the park", "every day", "on Sunday",
           "before dinner", "in the city", "by the sea", "with a smile"]

_INSTRUCTIONS = [
    ("Name a color.", "", "Blue is a color."),
    ("Give an example of a fruit.", "", "An apple is a fruit."),
    ("What is the capital of France?", "", "The capital of France is Paris."),
    ("Write a short greeting.", "", "Hello, it is nice to meet you."),
    ("Add the two numbers.", "2 and 3", "2 plus 3 is 5."),
    ("Add the two numbers.", "4 and 1", "4 plus 1 is 5."),
    ("Translate the word to French.", "cat", "The French word for cat is chat."),
    ("Translate the word to French.", "dog", "The French word for dog is chien."),
    ("Name an animal that can fly.", "", "A bird can fly."),
    ("Describe the weather today.", "", "The weather is sunny and warm."),
    ("Write a sentence about the sea.", "", "The sea is wide and blue."),
    ("Give the opposite of the word.", "hot", "The opposite of hot is cold."),
    ("Give the opposite of the word.", "big", "The opposite of big is small."),
    ("Make the sentence shorter.", "The very big dog is running very fast.", "The dog runs fast."),
    ("List three colors.", "", "Red, green and blue."),
    ("What day comes after Monday?", "", "Tuesday comes after Monday."),
    ("Count to five.", "", "One, two, three, four, five."),
    ("Name a planet.", "", "Mars is a planet."),
    ("Give a tip for good sleep.", "", "Go to bed at the same time every night."),
    ("Classify the animal.", "whale", "A whale is a mammal."),
]


def default_texts(seed: int = 0) -> list[str]:
    """200 short English lines: simple sentences, instructions with answers in Alpaca's prompt and in chat turns."""
    rng = random.Random(seed)
    lines = []
    for _ in range(120):
        lines.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
                     f"{rng.choice(_PLACES)}.")
    for instruction, input, output in _INSTRUCTIONS * 3:
        prompt = (STANFORD_PROMPT_INPUT.format(instruction=instruction, input=input) if input
                  else STANFORD_PROMPT_NO_INPUT.format(instruction=instruction))
        lines.append(prompt + output)          # Stanford's train.py: prompt + output, no separator
    for instruction, input, output in _INSTRUCTIONS:  # the chat template's turns (BOS and EOS come from encoding)
        user = f"{instruction}\n\n{input}" if input else instruction
        lines.append(f"<|user|>\n{user}\n<|assistant|>\n{output}")
    rng.shuffle(lines)
    return lines


def train_tokenizer(texts: list[str], vocab_size: int = 2000):
    """A byte-level BPE tokenizer (``tokenizers``) wrapped as a fast tokenizer with <s> </s> <pad>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    bos = core.token_to_id("<s>")
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", model_max_length=2048)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llama(target_dir: Path, *, texts: list[str] | None = None, pretrain_steps: int = 600,
                     seed: int = 0) -> Path:
    """Tokenizer + pre-trained 2-layer Llama (hidden 128) saved to ``target_dir``; returns it.

    Deterministic for a given ``seed`` and ``texts``. About 20 s on one CPU thread at 600 steps.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    target_dir = Path(target_dir)
    corpus = list(texts) if texts is not None else default_texts(seed)
    tokenizer = train_tokenizer(corpus)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    encoded = [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for text in corpus]
    _pretrain(model, encoded, steps=pretrain_steps, pad_id=tokenizer.pad_token_id, seed=seed)
    model.eval()
    target_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target_dir)
    tokenizer.save_pretrained(target_dir)
    (target_dir / "tiny_model.json").write_text(
        json.dumps({"pretrain_steps": pretrain_steps, "seed": seed, "texts": len(corpus)}) + "\n",
        encoding="utf-8")
    return target_dir


def _pretrain(model, encoded: list[list[int]], *, steps: int, pad_id: int, seed: int,
              batch_size: int = 8, max_tokens: int = 96) -> None:
    """Plain full-parameter next-token training on shuffled, padded mini-batches."""
    import torch

    if steps <= 0:
        return
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 30) * max(0.05, 1 - step / steps))
    model.train()
    for _ in range(steps):
        batch = [ids[:max_tokens] for ids in rng.sample(encoded, min(batch_size, len(encoded)))]
        longest = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)


if __name__ == "__main__":  # python -m tests.tiny_model DIR: build one by hand
    import sys
    import time

    started = time.perf_counter()
    print(build_tiny_llama(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-llama")),
          f"{time.perf_counter() - started:.1f} s")
