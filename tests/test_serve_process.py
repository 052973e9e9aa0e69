"""The server process's start-up, without a model: the port held from the start, one server per info
file, the libraries' warnings, the moved base model's hint and the options defined once."""
from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from studio.core.project import Project
from studio.core.samples import Sample, Status
from studio.core.serving.catalog import BASE, Catalog, ServedModel
from studio.core.serving.server_info import (
    ServerInfo,
    claim_info,
    read_info,
    write_info,
)
from studio.core.training.settings import preset_settings
from studio.serve import process
from studio.serve.cli_support import add_serve_arguments, cmd_serve


def catalog() -> Catalog:
    return Catalog(base_model="/m", models=(ServedModel(id="m", kind=BASE, parent=None, prompt_format="chat"),))


def test_the_bound_port_listens_at_once_so_nobody_can_take_it() -> None:
    sock = process._bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        rival = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with rival, pytest.raises(OSError) as caught:
            rival.bind(("127.0.0.1", port))  # a merely bound SO_REUSEADDR socket would let this through
        assert caught.value.errno == errno.EADDRINUSE
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # waits in the backlog meanwhile
            pass
    finally:
        sock.close()


def test_a_late_address_in_use_is_the_friendly_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")

    def taken(*args: object) -> int:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    monkeypatch.setattr(process, "_serve", taken)
    assert process.run(["--base-model", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the port is taken" in err[0] and "choose another with --port" in err[0]


def test_claim_info_never_overwrites_a_live_servers_file(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        first = ServerInfo(pid=os.getpid(), host="127.0.0.1", port=listening.getsockname()[1], catalog=catalog())
        assert claim_info(path, first) is None
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            second = ServerInfo(pid=sleeper.pid, host="127.0.0.1", port=1, catalog=catalog())
            assert claim_info(path, second).pid == os.getpid()   # refused: the first one lives and listens
            assert read_info(path).pid == os.getpid()
            first.port = 1   # a live pid whose port nobody listens on: a stale file (the pid was reused)
            write_info(path, first)
            assert claim_info(path, second) is None and read_info(path).pid == sleeper.pid
        finally:
            sleeper.kill()
            sleeper.wait()


def test_library_deprecation_warnings_are_hidden_ours_are_not() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        process.quiet_library_warnings()
        for module in ("transformers.modeling_utils", "peft.peft_model", "studio.serve.engine"):
            warnings.warn_explicit("`is_gradient_checkpointing` is deprecated", FutureWarning, "x.py", 1,
                                   module=module)
        warnings.warn_explicit("a user warning", UserWarning, "x.py", 1, module="transformers.generation")
    assert [(w.category, w.filename) for w in caught] == [(FutureWarning, "x.py"), (UserWarning, "x.py")]
    assert str(caught[1].message) == "a user warning"


def test_a_moved_base_model_folder_says_give_base_model(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    with Project.create(tmp_path / "p") as project:
        project.samples.add(Sample("Instruction.", "", "Output.", status=Status.ACCEPTED))
        project.snapshots.create("v1")
        run = project.training.create(snapshot="v1", base_model=str(base), settings=preset_settings("alpaca-lora"))
        run.adapter_dir.mkdir(parents=True, exist_ok=True)
        (run.adapter_dir / "adapter_config.json").write_text("{}", encoding="utf-8")
    base.rename(tmp_path / "moved")
    args = argparse.Namespace(project=tmp_path / "p")
    assert cmd_serve(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(base) in err[0] and "give --base-model PATH" in err[0], err
    assert err[0].count("--base-model") == 1


def test_the_two_parsers_share_one_definition() -> None:
    cli = argparse.ArgumentParser()
    add_serve_arguments(cli)
    ours = process.build_parser()
    shared = {action.dest: (action.default, action.help) for action in cli._actions if action.dest != "help"}
    own = {action.dest: (action.default, action.help) for action in ours._actions if action.dest != "help"}
    assert own.pop("project") == (None, "project folder: serve its trained runs")
    assert own == shared and "quiet" in shared
