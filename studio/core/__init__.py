"""The domain layer: project store, seeds, samples, formats.

Pure Python. Nothing here imports Qt, torch, transformers or peft at import time
(``tests/test_boundaries.py`` proves it), so every command runs headless and fast.
"""
