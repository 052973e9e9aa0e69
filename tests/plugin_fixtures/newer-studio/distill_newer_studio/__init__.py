"""Test fixture: a plugin that needs a newer Distill Studio."""
