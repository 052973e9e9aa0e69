"""The vLLM serving backend (issue 12: being built)."""
