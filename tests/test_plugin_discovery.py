"""Plugin discovery: manifests read as data from real installed distributions, every error a record's."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from studio.core import formats, registry
from studio.core.plugins.model import DISABLED, ENABLED, ERROR
from tests.plugin_support import PACKAGES, PLUGIN_NAMES


def _by_name(records: list) -> dict:
    return {r.name: r for r in records}


def test_the_four_installed_test_plugins_are_discovered_with_their_states(with_test_plugins: list) -> None:
    records = _by_name(with_test_plugins)
    assert set(PLUGIN_NAMES) <= set(records)
    good = records["csv-format"]
    assert (good.state, good.error, good.version, good.distribution) == (ENABLED, "", "1.0.0", "distill-studio-csv-format")
    assert [(c.point, c.key) for c in good.contributions] == [("dataset_formats", "csv")]
    assert Path(good.location).name == "manifest.py"
    assert registry.DATASET_FORMATS.get("csv").source == "csv-format"

    broken = records["broken-manifest"]
    assert broken.state == ERROR and "not plain data" in broken.error
    raises = records["raises-on-import"]
    assert raises.state == ENABLED and "tsv" in registry.DATASET_FORMATS  # its error shows on first use
    newer = records["newer-studio"]
    assert newer.state == ERROR and ">=99" in newer.error and "0.1.0" in newer.error
    assert "future" not in registry.DATASET_FORMATS
    assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES]  # discovery imported nothing


def test_the_good_plugin_reads_and_writes_csv(with_test_plugins: list, tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text('instruction,input,output\nSay hi,,Hi\n"Add, then say","1,2","3\nthree"\n', encoding="utf-8")
    assert formats.detect_format(path, path.read_text(encoding="utf-8")) == "csv"
    records = formats.read_samples(path)
    assert records == [formats.Record("Say hi", "", "Hi"), formats.Record("Add, then say", "1,2", "3\nthree")]
    out = tmp_path / "out.csv"
    formats.write_samples(out, records, "csv")
    assert formats.read_samples(out, "csv") == records
    assert "csv" in formats.sample_formats()

    bad = tmp_path / "bad.csv"
    bad.write_text("instruction,input,output\nok,,fine\n,,no instruction\n", encoding="utf-8")
    with pytest.raises(formats.FormatError, match=r"bad\.csv, line 3: the instruction is empty"):
        formats.read_samples(bad)
