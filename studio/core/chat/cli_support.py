"""``distill-studio chat``: one prompt to one model, the answer streamed to stdout.

Without ``--base-url`` it talks to the project's own server, found through the info file the
server writes when it is ready (``<project>/serve/server.json``); the project database is not
opened, so this works beside an open app. The answer goes to stdout as it streams; timings go
to stderr, so ``distill-studio chat ... > answer.txt`` keeps only the answer.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.chat.conversations import Answer, ColumnSpec
from studio.core.chat.session import stream_answer, user_turn
from studio.core.chat.sources import (
    DEFAULT_KEY_ENV, ENDPOINT, ModelSource, client_for, endpoint_label, is_studio_server, studio_client,
)
from studio.core.errors import StudioError
from studio.core.serving.catalog import BASE_ALIAS
from studio.core.serving.server_info import ServerInfo, info_path, read_info

if TYPE_CHECKING:
    from studio.core.llm.client import LLMClient

EXIT_OK, EXIT_ERROR = 0, 1


def project_server(project: Path | None) -> ServerInfo:
    """The project's running server, or a StudioError saying how to start one."""
    from studio.core.paths import default_project_dir

    root = Path(project).expanduser() if project is not None else default_project_dir()
    path = info_path(root)
    info = read_info(path)
    if info is None:
        raise StudioError(f"No studio server is running for the project {root} ({path} is missing or its process "
                          f"has exited); start one with `distill-studio serve --project {root}`, "
                          "or give --base-url URL.")
    return info


def _project_info(project: Path | None) -> ServerInfo | None:
    """The project's running server, or None (no project folder, no server)."""
    from studio.core.paths import default_project_dir

    try:
        root = Path(project).expanduser() if project is not None else default_project_dir()
        return read_info(info_path(root))
    except (OSError, StudioError):
        return None


def _client(args: argparse.Namespace) -> tuple[LLMClient, str, bool]:
    """(client, model id, whether it is the studio server: then the Alpaca input goes as its extension)."""
    model = args.model
    key_env = getattr(args, "api_key_env", None)
    if getattr(args, "base_url", None):
        variable = key_env or DEFAULT_KEY_ENV
        source = ModelSource(ENDPOINT, endpoint_label(args.base_url, model), base_url=args.base_url, model=model,
                             api_key_env=variable)
        studio = is_studio_server(source, _project_info(getattr(args, "project", None)), probe=True)
        if studio:
            return studio_client(args.base_url, model), model, True
        client, model_id = client_for(source, None)
        if key_env is not None and client.key is not None and not client.key.found:
            print(f"note: {variable} is not set; sending no API key", file=sys.stderr)
        return client, model_id, False
    if key_env is not None:  # given explicitly
        print("note: --api-key-env is ignored without --base-url (the project's own server takes no key)",
              file=sys.stderr)
    info = project_server(getattr(args, "project", None))
    known = info.catalog.ids()
    if model not in known and model != BASE_ALIAS:
        raise StudioError(f"The studio server at {info.url} has no model {model!r}; it serves: {', '.join(known)}.")
    return studio_client(info.url, model), model, True


def cmd_chat(args: argparse.Namespace) -> int:
    """Stream one answer to stdout; 1 with one ``error:`` line on stderr when it cannot."""
    try:
        client, model, studio_server = _client(args)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    column = ColumnSpec(source=ModelSource(ENDPOINT, model, base_url=client.endpoint.base_url, model=model),
                        system=getattr(args, "system", None) or "",
                        temperature=_or(getattr(args, "temperature", None), 0.7),
                        max_tokens=int(_or(getattr(args, "max_tokens", None), 512)))
    if getattr(args, "top_p", None) is not None:
        column.top_p = float(args.top_p)
    messages: list[dict] = []
    if column.system:
        messages.append({"role": "system", "content": column.system})
    messages.append(user_turn(args.prompt, getattr(args, "input", None) or "", studio_server=studio_server))
    out = sys.stdout

    def show(text: str) -> None:
        out.write(text)
        out.flush()

    async def run() -> Answer:
        try:
            return await stream_answer(client, model, messages, column, show, lambda: False)
        finally:
            await client.aclose()

    answer = asyncio.run(run())
    if answer.text and not answer.text.endswith("\n"):
        out.write("\n")
        out.flush()
    if answer.error:
        print(f"error: {answer.error}", file=sys.stderr)
        return EXIT_ERROR
    print(_stats(answer), file=sys.stderr)
    return EXIT_OK


def _stats(answer: Answer) -> str:
    parts = [f"{answer.tokens} tokens"]
    if answer.ttft_s is not None:
        parts.append(f"first token after {answer.ttft_s:.2f} s")
    if answer.tokens_per_s is not None:
        parts.append(f"{answer.tokens_per_s:.1f} tokens/s")
    parts.append(f"finish: {answer.finish_reason or 'unknown'}")
    return "[" + ", ".join(parts) + "]"


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``chat`` verb's arguments (the lead's cli.py adds --project the usual way)."""
    parser.add_argument("--base-url", default=None, metavar="URL",
                        help="an OpenAI-compatible endpoint (default: the project's own running server)")
    parser.add_argument("--model", required=True, metavar="NAME", help="the model id to send (see /v1/models)")
    parser.add_argument("--system", default="", metavar="S", help="a system prompt")
    parser.add_argument("--input", default="", metavar="TEXT", help="the Alpaca form's optional input")
    parser.add_argument("--temperature", type=float, default=0.7, metavar="T", help="sampling temperature")
    parser.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling cut-off")
    parser.add_argument("--max-tokens", type=int, default=512, metavar="N", help="most tokens in the answer")
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help="environment variable holding the endpoint's API key "
                             f"(--base-url only; default {DEFAULT_KEY_ENV})")
    parser.add_argument("prompt", metavar="PROMPT", help="what to ask")
