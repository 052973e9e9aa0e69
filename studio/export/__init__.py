"""The export child process: ``python -m studio.export --run-dir DIR --out PATH --format F``.

The only export code that imports torch/transformers/peft. It writes a run's adapter alone, a
merged Hugging Face model or a GGUF file (our own Llama-family tensor mapping, the ``gguf``
package's writer) into a temporary folder beside ``PATH`` and renames it into place at the end,
printing one JSON event per line on stdout (see :mod:`studio.core.exporting`).
"""
