"""The serving catalog: one base model and the adapters of the runs trained on it; the server's info file."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from studio.core.serving.catalog import (ADAPTER, BASE, BASE_ALIAS, Catalog, CatalogError, build_catalog,
                                         run_model_id)
from studio.core.serving.server_info import ServerInfo, info_path, read_info, remove_info, write_info
from studio.core.training.runs import TrainingRun
from studio.core.training.settings import TrainSettings


def model_folder(root: Path, name: str, *, chat_template: bool = False) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    tokenizer_config = {"chat_template": "{{ messages }}"} if chat_template else {}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def make_run(root: Path, run_id: int, base: Path | str, *, name: str = "", adapter: bool = True,
             prompt_format: str = "alpaca") -> TrainingRun:
    run_dir = root / "runs" / str(run_id)
    (run_dir / "adapter").mkdir(parents=True)
    if adapter:
        (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    now = time.time()
    return TrainingRun(id=run_id, name=name or f"run-{run_id}", snapshot_id=1, snapshot_name="s", base_model=str(base),
                       settings=TrainSettings(prompt_format=prompt_format), status="done", run_dir=run_dir,
                       created_at=now, updated_at=now, finished_at=now, error="", last_step=10, max_steps=10)


def test_catalog_offers_the_newest_runs_base_and_the_adapters_trained_on_it(tmp_path: Path) -> None:
    tiny, other = model_folder(tmp_path, "tiny"), model_folder(tmp_path, "other")
    runs = [make_run(tmp_path, 1, tiny, name="first"), make_run(tmp_path, 2, other),
            make_run(tmp_path, 3, tiny, prompt_format="alpaca-lora"), make_run(tmp_path, 4, tiny, adapter=False)]
    catalog = build_catalog(runs, base_model=str(tiny))
    assert catalog.ids() == ["tiny", "first", "run-3"]
    assert catalog.base.kind == BASE and catalog.base.parent is None
    assert [m.kind for m in catalog.adapters] == [ADAPTER, ADAPTER]
    assert {m.parent for m in catalog.adapters} == {"tiny"}
    assert catalog.find("run-3").prompt_format == "alpaca-lora"
    assert catalog.find("first").adapter_path == str(runs[0].adapter_dir)
    assert catalog.find(BASE_ALIAS) is catalog.base and catalog.find("nope") is None
    assert catalog.base.prompt_format == "alpaca"  # no chat template: the students' format
    assert len(catalog.skipped) == 1 and "#2" in catalog.skipped[0] and "other" in catalog.skipped[0]
    assert Catalog.from_dict(json.loads(json.dumps(catalog.to_dict()))) == catalog

    newest = build_catalog(runs)  # no base given: the newest run with an adapter decides (run 3 → tiny)
    assert newest.base.id == "tiny"


def test_the_base_is_chatted_with_through_its_chat_template_when_it_has_one(tmp_path: Path) -> None:
    base = model_folder(tmp_path, "chatty", chat_template=True)
    catalog = build_catalog([make_run(tmp_path, 1, base)])
    assert catalog.base.prompt_format == "chat" and catalog.find("run-1").prompt_format == "alpaca"


def test_named_runs_must_exist_have_adapters_and_share_a_base(tmp_path: Path) -> None:
    tiny, other = model_folder(tmp_path, "tiny"), model_folder(tmp_path, "other")
    runs = [make_run(tmp_path, 1, tiny), make_run(tmp_path, 2, other), make_run(tmp_path, 3, tiny, adapter=False)]
    assert build_catalog(runs, only=["1"]).ids() == ["tiny", "run-1"]
    assert build_catalog(runs, only=["run-2"]).ids() == ["other", "run-2"]
    with pytest.raises(CatalogError, match="no training run named ghost"):
        build_catalog(runs, only=["ghost"])
    with pytest.raises(CatalogError, match="has no adapter"):
        build_catalog(runs, only=["3"])
    with pytest.raises(CatalogError, match="do not share one base"):
        build_catalog(runs, only=["1", "2"], base_model=str(tiny))
    with pytest.raises(CatalogError, match="no trained run"):
        build_catalog([])
    assert build_catalog([], base_model=str(tiny)).ids() == ["tiny"]


def test_a_hub_id_that_is_not_on_this_machine_is_refused_not_downloaded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CatalogError, match="never downloads"):
        build_catalog([], base_model="someorg/some-model")
    assert run_model_id(make_run(tmp_path, 7, "someorg/some-model", name="")) == "run-7"


def test_server_info_round_trips_and_a_dead_servers_file_reads_as_none(tmp_path: Path) -> None:
    tiny = model_folder(tmp_path, "tiny")
    info = ServerInfo(pid=os.getpid(), host="0.0.0.0", port=8765, catalog=build_catalog([], base_model=str(tiny)),
                      started_at=1.0)
    path = info_path(tmp_path)
    write_info(path, info)
    assert json.loads(path.read_text())["url"] == "http://127.0.0.1:8765/v1"
    assert read_info(path) == info
    remove_info(path, pid=os.getpid() + 1)  # another server's pid: the file stays
    assert path.exists()
    dead = ServerInfo(pid=2 ** 22 + 12345, host="127.0.0.1", port=1, catalog=info.catalog)
    write_info(path, dead)
    assert read_info(path) is None and read_info(path, check_alive=False) == dead
    remove_info(path)
    assert not path.exists() and read_info(path) is None


def test_a_stopped_run_without_adapter_is_told_to_resume_and_a_moved_base_to_give_one(tmp_path: Path) -> None:
    import dataclasses

    tiny = model_folder(tmp_path, "tiny")
    stopped = dataclasses.replace(make_run(tmp_path, 3, tiny, adapter=False), status="stopped")
    with pytest.raises(CatalogError) as caught:
        build_catalog([stopped], only=["3"])
    assert str(caught.value) == "#3 run-3 has no adapter yet: resume it (distill-studio train resume 3) or train it"
    created = dataclasses.replace(make_run(tmp_path, 4, tiny, adapter=False), status="created")
    with pytest.raises(CatalogError, match="has no adapter yet: train it first"):
        build_catalog([created], only=["4"])

    moved = make_run(tmp_path, 5, tmp_path / "was-here")
    with pytest.raises(CatalogError, match=r"was-here.*if it has moved, give --base-model PATH"):
        build_catalog([moved])
