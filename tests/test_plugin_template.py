"""plugins/README.md: its template is the good-csv test plugin verbatim, it installs and works, its tables are complete."""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from studio.core import registry
from studio.core.plugins.discovery import REQUIRED_FIELDS, load_plugins
from studio.core.plugins.model import ENABLED

REPO = Path(__file__).resolve().parents[1]
README = REPO / "plugins" / "README.md"
FIXTURE = REPO / "tests" / "plugin_fixtures" / "good-csv"
# A caption line `csv-format/PATH`: then a fenced block: the file PATH of the template.
BLOCK = re.compile(r"^`csv-format/([^`]+)`:\n\n```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TEMPLATE_FILES = ["pyproject.toml", "distill_csv_format/__init__.py", "distill_csv_format/manifest.py",
                  "distill_csv_format/csv_format.py"]


def template() -> dict[str, str]:
    return dict(BLOCK.findall(README.read_text(encoding="utf-8")))


def test_the_readme_template_is_the_good_csv_fixture_verbatim() -> None:
    blocks = template()
    assert sorted(blocks) == sorted(TEMPLATE_FILES)
    fixture_files = sorted(str(p.relative_to(FIXTURE)) for p in FIXTURE.rglob("*") if p.is_file()
                           and "__pycache__" not in p.parts)
    assert fixture_files == sorted(TEMPLATE_FILES)  # the README shows every file of the plugin
    for name, text in blocks.items():
        assert text == (FIXTURE / name).read_text(encoding="utf-8"), f"plugins/README.md's {name} differs from {FIXTURE / name}"


def test_the_template_written_from_the_readme_installs_and_reads_csv(tmp_path: Path) -> None:
    from studio.core.formats import get_format
    from studio.core.plugins import install as plugin_install

    folder = tmp_path / "csv-format"
    for name, text in template().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    site = tmp_path / "site"
    (record,) = plugin_install.install(folder, target=site)  # the README's `plugins install ./csv-format`
    assert (record.name, record.state, record.error) == ("csv-format", ENABLED, "")
    sample = tmp_path / "tasks.csv"
    sample.write_text('instruction,input,output\nName a colour.,,"Blue, for one."\n', encoding="utf-8")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        load_plugins(reload=True)
        csv_format = get_format("csv")
        records = csv_format.read_samples(sample, sample.read_text(encoding="utf-8"))
        assert [(r.instruction, r.input, r.output) for r in records] == [("Name a colour.", "", "Blue, for one.")]
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()
        for module in [m for m in sys.modules if m.split(".")[0] == "distill_csv_format"]:
            del sys.modules[module]
        load_plugins(reload=True)
    assert "csv" not in registry.DATASET_FORMATS


def test_the_readme_names_every_manifest_field_and_extension_point() -> None:
    text = README.read_text(encoding="utf-8")
    for field in (*REQUIRED_FIELDS, "title", "description", "key", "target", "help"):
        assert re.search(rf"^\| [^|]*`{field}`[^|]*\|", text, re.MULTILINE), f"plugins/README.md: no row for {field!r}"
    for point in registry.ALL:
        assert re.search(rf"^\| `{point}` \|", text, re.MULTILINE), f"plugins/README.md: no row for the {point} point"
    for example in ("openai-batch/", "vllm-serve/", "DISTILL_STUDIO_NO_PLUGINS=1", "plugins install", "--dry-run"):
        assert example in text


@pytest.mark.parametrize("name", ["openai-batch", "vllm-serve"])
def test_the_readme_s_first_party_distributions_are_the_real_ones(name: str) -> None:
    import tomllib

    project = tomllib.loads((REPO / "plugins" / name / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert f"`{name}/` (distribution `{project['name']}`)" in README.read_text(encoding="utf-8")
