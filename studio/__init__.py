"""Distill Studio: distill a teacher LLM into a small local model."""
__version__ = "0.1.0"
