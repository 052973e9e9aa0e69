"""A valid manifest: the error only shows when the format is used (its module raises at import)."""

MANIFEST = {
    "name": "raises-on-import",
    "version": "0.1.0",
    "studio": ">=0.1",
    "title": "Raises on import",
    "description": "Test fixture: the TSV format's module raises RuntimeError when imported.",
    "contributions": {
        "dataset_formats": [
            {"key": "tsv", "target": "distill_raises_on_import.tsv_format:TSV_FORMAT", "title": "TSV"},
        ],
    },
}
