"""The model server process: ``python -m studio.serve`` (one base model, its LoRA adapters, the OpenAI API).

Only this package (and studio/train, studio/export) imports torch, transformers, peft, fastapi
and uvicorn; importing ``studio.serve`` itself stays light, so the CLI can name ``main``.
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM / Ctrl+C; 0 on a clean exit, 2 when it cannot start."""
    from studio.serve.process import run

    return run(argv)
