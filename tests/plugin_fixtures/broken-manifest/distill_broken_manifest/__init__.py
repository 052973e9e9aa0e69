"""Test fixture: a plugin whose manifest is not plain data."""
