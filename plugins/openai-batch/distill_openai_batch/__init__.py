"""Distill Studio plugin: a generation backend that sends a run's requests through the OpenAI Batch API."""
