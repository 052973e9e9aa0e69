"""Distill Studio plugin: a serving backend that runs ``vllm serve`` with the project's adapters as LoRA modules."""
