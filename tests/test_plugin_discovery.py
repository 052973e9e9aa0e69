"""Plugin discovery: manifests read as data from real installed distributions, every error a record's."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core import formats, registry
from studio.core.errors import StudioError
from studio.core.plugins.discovery import discover, load_plugins
from studio.core.plugins.model import DISABLED, ENABLED, ERROR, PluginRecord
from studio.core.plugins.settings import SAFE_MODE_ENV, disabled_plugins, set_enabled, settings_path
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


# -- every way a plugin can be wrong: hand-made installed distributions (dist-info + package) --------------
class Site:
    """A folder on ``sys.path`` holding distributions written the way pip leaves them (dist-info + package)."""

    def __init__(self, root: Path):
        self.root = root

    def add(self, dist: str, plugin: str, manifest: str | dict | None, *, package: str = "",
            files: dict[str, str] | None = None, init: str = "") -> str:
        """Install distribution ``dist`` declaring plugin ``plugin``; returns its package name."""
        package = package or "dsp_" + dist.replace("-", "_")
        info = self.root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[distill_studio.plugins]\n{plugin} = {package}.manifest:MANIFEST\n",
                                               encoding="utf-8")
        folder = self.root / package
        folder.mkdir(exist_ok=True)
        # Importing the package at all would fail loudly: discovery must never get that far.
        (folder / "__init__.py").write_text(init or "raise RuntimeError('a plugin package was imported')\n")
        if manifest is not None:
            text = manifest if isinstance(manifest, str) else f"MANIFEST = {manifest!r}\n"
            (folder / "manifest.py").write_text(text, encoding="utf-8")
        for name, text in (files or {}).items():
            (folder / name).write_text(text, encoding="utf-8")
        importlib.invalidate_caches()
        return package


def manifest(name: str, contributions: dict | None = None, **fields) -> dict:
    return {"name": name, "version": "1.0", "studio": ">=0.1", "contributions": contributions or {}, **fields}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield Site(root)
    finally:
        sys.path.remove(str(root))
        importlib.invalidate_caches()
        for module in [m for m in sys.modules if m.startswith("dsp_")]:
            del sys.modules[module]
        load_plugins(reload=True)


def _record(name: str) -> PluginRecord:
    return _by_name(discover(disabled=set()))[name]


def _error(name: str) -> str:
    record = _record(name)
    assert record.state == ERROR, record
    return record.error


def test_a_manifest_that_is_code_is_refused_unread(site: Site) -> None:
    site.add("a-call", "a-call", "MANIFEST = dict(name='a-call')\n")
    site.add("a-name", "a-name", "VERSION = '1.0'\nMANIFEST = {'name': 'a-name', 'version': VERSION}\n")
    assert "MANIFEST in manifest.py (line 1) is not plain data" in _error("a-call")
    assert "(line 2) is not plain data" in _error("a-name")
    assert _record("a-name").location.endswith("manifest.py")
    site.add("a-list", "a-list", "MANIFEST = ['name']\n")
    assert "is a list, not a dict" in _error("a-list")
    site.add("bad-syntax", "bad-syntax", "MANIFEST = {\n")
    assert "cannot be read" in _error("bad-syntax")
    site.add("no-manifest", "no-manifest", None)
    assert "is not installed" in _error("no-manifest")
    site.add("other-name", "other-name", "OTHER = {}\n")
    assert "has no top-level MANIFEST" in _error("other-name")
    assert not [m for m in sys.modules if m.startswith("dsp_")]


@pytest.mark.parametrize("field", ["name", "version", "studio", "contributions"])
def test_a_missing_required_field_is_named(site: Site, field: str) -> None:
    data = manifest("partial")
    del data[field]
    site.add("partial", "partial", data)
    assert f"its manifest has no {field!r}" in _error("partial")


def test_the_manifest_name_must_be_the_entry_point_name(site: Site) -> None:
    site.add("mismatch", "mismatch", manifest("something-else"))
    assert "named 'something-else' but its entry point 'mismatch'" in _error("mismatch")


def test_contribution_errors_are_said_in_words(site: Site) -> None:
    cases = {
        "no-point": ({"widgets": [{"key": "w", "target": "x.y:Z"}]}, "'widgets', which is no extension point; known:"),
        "bad-target": ({"dataset_formats": [{"key": "x", "target": "dsp_bad_target.fmt.FORMAT"}]},
                       "target 'dsp_bad_target.fmt.FORMAT' is not 'package.module:attribute'"),
        "relative": ({"dataset_formats": [{"key": "x", "target": ".fmt:FORMAT"}]}, "is not 'package.module:attribute'"),
        "missing-module": ({"dataset_formats": [{"key": "x", "target": "dsp_missing_module.nowhere:FORMAT"}]},
                           "names the module 'dsp_missing_module.nowhere', which is not installed"),
        "no-key": ({"dataset_formats": [{"target": "a.b:C"}]}, "dataset_formats entry 1 has no 'key' string"),
        "spaced-key": ({"dataset_formats": [{"key": "my key", "target": "a.b:C"}]}, "key 'my key' must be letters"),
        "twice": ({"dataset_formats": [{"key": "x", "target": "a.b:C"}, {"key": "x", "target": "a.b:D"}]},
                  "contributes the dataset_formats 'x' twice"),
        "reserved": ({"dataset_formats": [{"key": "alpaca", "target": "a.b:C", "replace": True}]},
                     "'replace' cannot be set by a manifest"),
        "not-list": ({"dataset_formats": {"key": "x"}}, "contributions['dataset_formats'] must be a list"),
    }
    for name, (contributions, expected) in cases.items():
        site.add(name, name, manifest(name, contributions))
    for name, (_, expected) in cases.items():
        assert expected in _error(name), name


def test_studio_versions_outside_the_specifier_or_unreadable(site: Site) -> None:
    site.add("older", "older", manifest("older", studio="<0.1"))
    site.add("unreadable", "unreadable", manifest("unreadable", studio="0.1 or later"))
    site.add("empty", "empty", manifest("empty", studio=" "))
    # a newer plugin may contribute to points this version lacks: the version is what it is told
    site.add("future", "future", manifest("future", {"widgets": []}, studio=">=99"))
    assert "it needs Distill Studio <0.1; this is 0.1.0" in _error("older")
    assert "'0.1 or later' are not a version specifier" in _error("unreadable")
    assert "its manifest has no 'studio'" in _error("empty")
    assert "it needs Distill Studio >=99" in _error("future")


FORMAT_MODULE = (
    "from studio.core import formats\n"
    "FORMAT = formats.DatasetFormat(key={key!r}, title='T', extensions=('.t',), sniff=lambda p, t: False,\n"
    "                               read_samples=lambda p, t: [])\n"
)


def test_a_key_a_built_in_has_is_refused_and_nothing_of_the_plugin_is_registered(site: Site) -> None:
    site.add("alpaca-too", "alpaca-too", manifest("alpaca-too", {
        "dataset_formats": [{"key": "mine", "target": "dsp_alpaca_too.fmt:FORMAT"},
                            {"key": "alpaca", "target": "dsp_alpaca_too.fmt:FORMAT"}]}),
             files={"fmt.py": FORMAT_MODULE.format(key="mine")})
    record = _by_name(load_plugins(reload=True))["alpaca-too"]
    assert record.state == ERROR
    assert record.error == "its dataset format 'alpaca' is already registered by Distill Studio itself; nothing of it was loaded"
    assert registry.DATASET_FORMATS.get("alpaca").built_in
    assert "mine" not in registry.DATASET_FORMATS  # all or nothing


def test_two_plugins_one_key_the_first_keeps_it(site: Site) -> None:
    for name in ("a-first", "b-second"):
        package = "dsp_" + name.replace("-", "_")
        site.add(name, name, manifest(name, {"dataset_formats": [{"key": "shared", "target": f"{package}.fmt:FORMAT"}]}),
                 files={"fmt.py": FORMAT_MODULE.format(key="shared")}, init='"""ok"""\n')
    records = _by_name(load_plugins(reload=True))
    assert records["a-first"].state == ENABLED
    assert records["b-second"].error.startswith("its dataset format 'shared' is already registered by the plugin 'a-first'")
    assert registry.DATASET_FORMATS.get("shared").source == "a-first"


def test_two_distributions_with_one_plugin_name(site: Site) -> None:
    site.add("dist-one", "same", manifest("same"), package="dsp_one")
    site.add("dist-two", "same", manifest("same"), package="dsp_two")
    found = [r for r in discover(disabled=set()) if r.name == "same"]
    assert [r.state for r in found] == [ENABLED, ERROR]
    used, twin = found
    assert twin.distribution != used.distribution
    assert f"{used.distribution} already provides a plugin named 'same' (that one is used)" in twin.error


def test_a_malformed_entry_points_file_spoils_only_its_own_distribution(site: Site) -> None:
    site.add("fine", "fine", manifest("fine"))
    info = site.root / "garbled-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: garbled\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[distill_studio.plugins]\njust-a-name\n")
    records = discover(disabled=set())
    assert _by_name(records)["fine"].state == ENABLED
    garbled = [r for r in records if "garbled" in r.location]
    assert len(garbled) == 1 and "entry_points.txt cannot be read" in garbled[0].error


def test_a_disabled_plugin_is_not_registered_and_its_code_never_imported(site: Site, isolated_home: Path) -> None:
    site.add("off-fmt", "off-fmt", manifest("off-fmt", {"dataset_formats": [{"key": "off", "target": "dsp_off_fmt.fmt:FORMAT"}]}),
             files={"fmt.py": FORMAT_MODULE.format(key="off")}, init='"""ok"""\n')
    set_enabled("off-fmt", False)
    assert disabled_plugins() == {"off-fmt"}
    record = _by_name(load_plugins(reload=True))["off-fmt"]
    assert record.state == DISABLED and record.error == ""
    assert "off" not in registry.DATASET_FORMATS and "off" not in formats.format_keys(formats.SAMPLES)
    path = isolated_home / "x.json"
    path.write_text('[{"instruction": "a", "input": "", "output": "b"}]', encoding="utf-8")
    assert len(formats.read_seeds(path)) == 1  # every registered format was consulted
    assert not [m for m in sys.modules if m.startswith("dsp_off_fmt")]

    set_enabled("off-fmt", True)
    assert _by_name(load_plugins(reload=True))["off-fmt"].state == ENABLED
    assert "off" in formats.format_keys(formats.SAMPLES)  # loads it now
    assert "dsp_off_fmt.fmt" in sys.modules


def test_a_disabled_broken_plugin_is_disabled_with_its_error_kept(site: Site) -> None:
    site.add("broken-off", "broken-off", "MANIFEST = dict()\n")
    record = _by_name(discover(disabled={"broken-off"}))["broken-off"]
    assert record.state == DISABLED and "not plain data" in record.error


def test_safe_mode_turns_every_plugin_off(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("safe", "safe", manifest("safe"))
    monkeypatch.setenv(SAFE_MODE_ENV, "1")
    records = load_plugins(reload=True)
    assert records and {r.state for r in records} == {DISABLED}
    assert all(e.built_in for reg in registry.ALL.values() for e in reg)
    monkeypatch.setenv(SAFE_MODE_ENV, "0")
    assert _by_name(load_plugins(reload=True))["safe"].state == ENABLED


def test_unreadable_settings_mean_every_plugin_on(isolated_home: Path) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    for text in ("{not json", '{"disabled": "csv-format"}', "[1, 2]"):
        path.write_text(text, encoding="utf-8")
        assert disabled_plugins() == set()


def test_saving_settings_where_it_cannot_names_the_file(isolated_home: Path) -> None:
    settings_path().parent.parent.mkdir(parents=True, exist_ok=True)
    settings_path().parent.write_text("a file where the folder should be")
    with pytest.raises(StudioError, match="cannot save the plugin settings to .*plugins.json"):
        set_enabled("x", False)


def test_reload_is_idempotent(with_test_plugins: list) -> None:
    def snapshot() -> tuple:
        states = sorted((r.name, r.state, r.error) for r in load_plugins())
        return states, {name: [(e.key, e.source) for e in reg] for name, reg in registry.ALL.items()}

    first = snapshot()
    load_plugins(reload=True)
    load_plugins(reload=True)
    assert snapshot() == first
    assert load_plugins() == load_plugins()  # without reload: the same records, no rediscovery


class _EditableFinder:
    """What setuptools installs for ``pip install -e`` of a project it cannot expose with a .pth: a finder
    on ``sys.meta_path`` mapping a top-level package to its source folder (not on ``sys.path``)."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, folder

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / "__init__.py",
                                                      submodule_search_locations=[str(self.folder)])


def test_a_plugin_installed_editable_through_a_meta_path_finder_is_found_unimported(site: Site, tmp_path: Path) -> None:
    package = site.add("editable", "editable", manifest("editable", {
        "dataset_formats": [{"key": "ed", "target": "dsp_editable_src.fmt:FORMAT"}]}), package="dsp_editable_src")
    source = tmp_path / "checkout" / package
    source.parent.mkdir()
    (site.root / package).rename(source)  # the source lives outside sys.path
    (source / "fmt.py").write_text(FORMAT_MODULE.format(key="ed"), encoding="utf-8")
    finder = _EditableFinder(package, source)
    sys.meta_path.append(finder)
    try:
        record = _record("editable")
        assert (record.state, record.error) == (ENABLED, "")
        assert record.location == str(source / "manifest.py")
        assert not [m for m in sys.modules if m.startswith(package)]  # __init__ raises if run
    finally:
        sys.meta_path.remove(finder)
    assert "is not installed" in _record("editable").error
