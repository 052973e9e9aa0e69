"""The Batch API generation backend (issue 12: being built)."""
