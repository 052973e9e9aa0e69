"""Serving the local models: which models a server offers, where a running server is, how it starts.

Pure Python (no torch): the GUI, the CLI and the server process share these facts.
"""
