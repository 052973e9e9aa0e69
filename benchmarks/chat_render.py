"""The GUI thread's longest stall while three chat columns stream long Markdown answers: ours vs naive.

Three ~10k-token answers (paragraphs, lists, headings, fenced code) stream at the same time from
a loopback OpenAI-compatible server in its own process (tests/fake_chat_server.py), through the
real ``openai`` client. A 5 ms timer on the GUI thread (benchmarks/stall_meter.py) records the
longest gap between its ticks from the send until every answer is on screen.

* ours — the real Chat panel: one 30 Hz tick takes what arrived; only the live Markdown segment
  of a column is re-rendered (completed blocks are frozen into their own segments);
* naive-markdown — what a straightforward panel does: each delta reaches the GUI thread as a
  signal and the column's ``QTextBrowser`` is re-rendered with ``setMarkdown(whole answer)``;
* naive-append — each delta is a signal and is appended as plain text at the end of the
  document (no Markdown at all), the cheapest per-token repaint.

A naive variant that falls behind keeps the GUI thread busy after the streams end; its time is
cut at ``--limit`` seconds: later deltas are only counted, not drawn (then "cut" is printed, with
the gap measured until then and the renders done). Other
jobs on this 2-core machine move the figures: compare the columns, not the absolute numbers.

    python benchmarks/chat_render.py [--tokens 10000] [--delay 0.0005] [--limit 120] [--only ours,...]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

from benchmarks.stall_meter import measure  # noqa: E402

MODELS = ("model-a", "model-b", "model-c")


class ServerProcess:
    """tests/fake_chat_server.py in a child process, so its CPU and GIL are not the GUI's."""

    def __init__(self, tokens: int, delay: float):
        self.argv = [sys.executable, str(REPO / "tests" / "fake_chat_server.py"), "--tokens", str(tokens),
                     "--delay", str(delay)]
        self.process: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)
        self.base_url = self.process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def run_ours(base_url: str, limit_s: float) -> dict:
    from PySide6.QtWidgets import QApplication

    from studio.core.project import Project
    from studio.ui.chat_panel import ChatPanel
    from studio.ui.project_context import ProjectContext

    app = QApplication.instance() or QApplication([])
    root = Path(tempfile.mkdtemp(prefix="chat-bench-")) / "project"
    project = Project.create(root)
    for model in reversed(MODELS):
        project.generation.create_run(name=model, mode="alpaca", teacher_model=model, base_url=base_url, config={},
                                      prompt_template="")
    context = ProjectContext(project)
    panel = ChatPanel()
    panel.resize(1280, 760)
    panel.show()
    panel.set_context(context)
    while len(panel.sources) < len(MODELS) or panel.jobs.active_jobs():  # opened, read, warmed up: idle
        app.processEvents()
        time.sleep(0.01)
    panel.add_column()
    panel.add_column()
    for column in panel.columns:
        column.settings.max_tokens.setValue(32768)
    panel.prompt.text.setPlainText("Write at length.")
    elapsed, gap = measure(panel.send, lambda: bool(panel.conversation.turns) and not panel.is_streaming(),
                           limit_s=limit_s)
    views = [column.answer_view(0) for column in panel.columns]
    result = {"seconds": elapsed, "gap_ms": gap, "chars": sum(len(v.text) for v in views),
              "renders": sum(v.render_count for v in views), "segments": sum(v.segments() for v in views),
              "cut": panel.is_streaming()}
    panel.shutdown()
    context.close()
    project.close()
    panel.deleteLater()
    return result


def run_naive(base_url: str, limit_s: float, *, markdown: bool) -> dict:
    """Three QTextBrowsers side by side; one queued signal per delta; each one repaints."""
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QTextBrowser, QWidget

    from studio.core.llm.client import LLMClient, StreamEnd
    from studio.core.llm.endpoint import EndpointConfig
    from studio.core.llm.keys import NO_KEY

    _app = QApplication.instance() or QApplication([])  # kept alive for the run

    class Bridge(QObject):
        delta = Signal(int, str)

    window = QWidget()
    row = QHBoxLayout(window)
    browsers = [QTextBrowser() for _ in MODELS]
    for browser in browsers:
        row.addWidget(browser)
    window.resize(1280, 760)
    window.show()
    texts = ["" for _ in MODELS]
    state = {"sent": 0, "drawn": 0, "ended": 0, "renders": 0, "cut": False}
    started = [time.perf_counter()]
    lock = threading.Lock()
    bridge = Bridge()

    def on_delta(column: int, text: str) -> None:
        texts[column] += text
        state["drawn"] += 1
        if state["cut"] or time.perf_counter() - started[0] > limit_s:
            state["cut"] = True  # fallen too far behind: the rest is only counted (the gap so far stands)
            return
        browser = browsers[column]
        if markdown:
            browser.setMarkdown(texts[column])
        else:
            cursor = browser.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(text)
        bar = browser.verticalScrollBar()
        bar.setValue(bar.maximum())
        state["renders"] += 1

    bridge.delta.connect(on_delta)

    def stream(column: int, model: str) -> None:
        client = LLMClient(EndpointConfig(base_url=base_url, model=model), api_key=NO_KEY)
        for item in client.stream_sync([{"role": "user", "content": "Write at length."}], model=model,
                                       max_tokens=32768):
            if isinstance(item, StreamEnd):
                break
            with lock:
                state["sent"] += 1
            bridge.delta.emit(column, item)
        with lock:
            state["ended"] += 1

    def start() -> None:
        started[0] = time.perf_counter()
        for n, model in enumerate(MODELS):
            threading.Thread(target=stream, args=(n, model), daemon=True).start()

    def done() -> bool:
        with lock:
            return state["ended"] == len(MODELS) and state["drawn"] >= state["sent"]

    elapsed, gap = measure(start, done, limit_s=limit_s * 3)
    result = {"seconds": elapsed, "gap_ms": gap, "chars": sum(len(t) for t in texts), "renders": state["renders"],
              "segments": len(MODELS), "cut": state["cut"] or not done()}
    bridge.delta.disconnect(on_delta)  # a variant cut at the limit stops drawing here
    window.close()
    window.deleteLater()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=10_000, help="deltas (~4 characters each) per answer")
    parser.add_argument("--delay", type=float, default=0.0005, help="seconds between a stream's deltas")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before a variant is cut")
    parser.add_argument("--only", default="ours,naive-append,naive-markdown")
    options = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    QApplication.instance() or QApplication([])
    wanted = options.only.split(",")
    print(f"3 columns × {options.tokens} deltas of ~4 characters, {options.delay * 1000:.1f} ms apart per stream")
    print(f"{'variant':16} {'max gap ms':>10} {'seconds':>8} {'renders':>8} {'chars':>8}  note")
    for name in wanted:
        with ServerProcess(options.tokens, options.delay) as server:
            if name == "ours":
                result = run_ours(server.base_url, options.limit)
            elif name in ("naive-markdown", "naive-append"):
                result = run_naive(server.base_url, options.limit, markdown=name == "naive-markdown")
            else:
                parser.error(f"unknown variant {name!r}")
        note = f"cut at {options.limit:.0f} s, far behind the stream" if result["cut"] else ""
        if name == "ours":
            note = note or f"{result['segments']} segments"
        print(f"{name:16} {result['gap_ms']:>10.0f} {result['seconds']:>8.1f} {result['renders']:>8} "
              f"{result['chars']:>8}  {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
