"""A valid manifest for Distill Studio 99 or later: refused by this version, never imported."""

MANIFEST = {
    "name": "newer-studio",
    "version": "0.1.0",
    "studio": ">=99",
    "title": "Needs a newer studio",
    "description": "Test fixture: asks for a Distill Studio version that does not exist yet.",
    "contributions": {
        "dataset_formats": [
            {"key": "future", "target": "distill_newer_studio.future_format:FUTURE_FORMAT", "title": "Future"},
        ],
    },
}
