"""A Distill Studio plugin: the CSV dataset format (see manifest.py and csv_format.py)."""
