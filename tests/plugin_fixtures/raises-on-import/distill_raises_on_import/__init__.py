"""Test fixture: a plugin whose code raises at import (the manifest is fine)."""
