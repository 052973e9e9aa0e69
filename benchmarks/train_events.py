"""The Train panel's events pipeline: can the GUI thread keep up with a job that logs 1,000 times a second?

A writer thread appends ``log`` events (the real protocol) to an ``events.jsonl`` — steady at
1,000 events/s for a few seconds, then one burst of 10,000 — and the real Train panel follows
the file as it follows a job: ``EventTail`` reads only new bytes, ``LiveRun.ingest`` appends to
numpy buffers, and its 10 Hz timer redraws the five plots, the progress bar, status line and
log pane once per tick.

* ours — that pipeline, unchanged;
* baseline — the same panel, same file, same ingestion, but redrawing after every event (what
  a panel that calls ``setData`` from its event slot does).

Reported per side: GUI-thread cost per event (ingestion, and ingestion + redraws amortised),
the cost of one redraw, how many redraws ran, the GUI thread's worst stall (a 5 ms ticker's
longest gap, benchmarks/stall_meter.py's method) and the lag: from the writer's last line to
the panel having drawn it. Then the ratios. Offscreen Qt; the plots do paint.

    python benchmarks/train_events.py [--rate 1000] [--seconds 5] [--burst 10000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import multiprocessing
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from benchmarks.stall_meter import GapMeter  # noqa: E402
from studio.ui.train_panel import TrainPanel  # noqa: E402


def log_line(step: int) -> str:
    return json.dumps({"type": "log", "time": time.time(), "step": step, "loss": 3.0 / (1 + step / 500),
                       "learning_rate": 2e-4, "grad_norm": 0.8, "tokens_per_s": 5000.0 + step % 97,
                       "gpu_memory_gb": 11.5}) + "\n"


def writer(path: Path, rate: int, seconds: float, burst: int, queue) -> None:
    """Steady ``rate`` events/s in 10 ms slices, a pause, then ``burst`` events in one write.

    A process of its own, as the job is: its JSON encoding does not take the GUI's GIL.
    Marks are wall-clock times (``time.time``), comparable across the two processes.
    """
    marks: dict = {}
    step = 0
    with open(path, "a", encoding="utf-8") as out:
        start = time.perf_counter()
        per_slice = max(1, rate // 100)
        while time.perf_counter() - start < seconds:
            out.write("".join(log_line(step + i) for i in range(1, per_slice + 1)))
            out.flush()
            step += per_slice
            target = start + step / rate
            time.sleep(max(0.0, target - time.perf_counter()))
        marks["steady_end"] = (time.time(), step)
        queue.put(dict(marks))
        time.sleep(0.5)
        text = "".join(log_line(step + i) for i in range(1, burst + 1))
        out.write(text)
        out.flush()
        step += burst
        marks["burst_end"] = (time.time(), step)
    marks["total"] = step
    queue.put(marks)


def run(mode: str, rate: int, seconds: float, burst: int) -> dict:
    app = QApplication.instance() or QApplication([])
    cost = {"tick": 0.0, "ingest": 0.0, "redraw": 0.0, "redraws": 0, "paint": 0.0, "paints": 0}
    original_paint = pg.GraphicsView.paintEvent

    def timed_paint(view, event) -> None:  # Qt paints after the timer's slot: count it too
        t0 = time.perf_counter()
        original_paint(view, event)
        cost["paint"] += time.perf_counter() - t0
        cost["paints"] += 1

    pg.GraphicsView.paintEvent = timed_paint
    panel = TrainPanel()
    panel.resize(1280, 800)
    panel.show()
    app.processEvents()
    folder = Path(tempfile.mkdtemp(prefix="train-events-"))
    path = folder / "events.jsonl"
    path.touch()
    live = panel.follow_events_file(path)
    # Warm-up outside the measurement: the first paint of five plots (fonts, axes) takes ~150 ms once.
    with open(path, "a", encoding="utf-8") as out:
        out.write(log_line(0))
    deadline = time.perf_counter() + 0.6
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    warm_events = live.events_seen

    cost.update(paint=0.0, paints=0)  # the warm-up's first paints are not counted
    original_ingest, original_redraw = live.ingest, panel.redraw

    def timed_redraw() -> None:
        t0 = time.perf_counter()
        original_redraw()
        cost["redraw"] += time.perf_counter() - t0
        cost["redraws"] += 1

    if mode == "ours":
        def timed_ingest(events: list[dict]) -> None:
            t0 = time.perf_counter()
            original_ingest(events)
            cost["ingest"] += time.perf_counter() - t0
        panel.redraw = timed_redraw  # type: ignore[method-assign]
    else:
        def timed_ingest(events: list[dict]) -> None:  # redraw on every event
            for event in events:
                t0 = time.perf_counter()
                original_ingest([event])
                cost["ingest"] += time.perf_counter() - t0
                timed_redraw()
        panel.redraw = lambda: None  # type: ignore[method-assign]
    live.ingest = timed_ingest  # type: ignore[method-assign]
    original_tick = panel.tick

    def timed_tick() -> None:  # everything the timer does: read new bytes, parse, ingest, redraw
        t0 = time.perf_counter()
        original_tick()
        cost["tick"] += time.perf_counter() - t0

    panel._timer.timeout.disconnect()
    panel._timer.timeout.connect(timed_tick)

    marks: dict = {}
    drawn_at: dict = {}
    meter = GapMeter()
    loop = QEventLoop()

    def check() -> None:
        while not queue.empty():
            marks.update(queue.get())
        total = marks.get("total")
        x = panel.plots.curve_data("loss")[0] if mode == "ours" else live.series["loss"].x
        shown = int(x[-1]) if len(x) else 0
        if "steady_end" in marks and "steady" not in drawn_at and shown >= marks["steady_end"][1]:
            drawn_at["steady"] = time.time()
        if total is not None and shown >= total:
            drawn_at["burst"] = time.time()
            loop.quit()

    checker = QTimer(interval=2)
    checker.timeout.connect(check)
    meter.start()
    checker.start()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    thread = context.Process(target=writer, args=(path, rate, seconds, burst, queue), daemon=True)
    started = time.perf_counter()
    thread.start()
    QTimer.singleShot(int((seconds + 120) * 1000), loop.quit)  # a baseline that never catches up
    loop.exec()
    worst_stall_ms = meter.stop()
    checker.stop()
    thread.join(5)
    pg.GraphicsView.paintEvent = original_paint
    events = live.events_seen - warm_events
    panel.shutdown()
    panel.close()
    return {
        "mode": mode, "events": events, "wall_s": time.perf_counter() - started,
        "ingest_us_per_event": cost["ingest"] / max(1, events) * 1e6,
        "tick_us_per_event": cost["tick"] / max(1, events) * 1e6,
        "gui_us_per_event": (cost["tick"] + cost["paint"]) / max(1, events) * 1e6,
        "paint_ms": cost["paint"] / max(1, cost["paints"]) * 1e3, "paints": cost["paints"],
        "redraw_ms": cost["redraw"] / max(1, cost["redraws"]) * 1e3, "redraws": cost["redraws"],
        "worst_stall_ms": worst_stall_ms,
        "steady_lag_ms": (drawn_at["steady"] - marks["steady_end"][0]) * 1e3 if "steady" in drawn_at else None,
        "burst_lag_ms": (drawn_at["burst"] - marks["burst_end"][0]) * 1e3 if "burst" in drawn_at else None,
    }


def show(result: dict) -> None:
    lag = lambda v: f"{v:,.0f} ms" if v is not None else "never caught up"  # noqa: E731
    print(f"{result['mode']:>8}: {result['events']:,} events · ingestion {result['ingest_us_per_event']:.1f} µs/event"
          f" · timer {result['tick_us_per_event']:.1f} µs/event (read, parse, ingest, setData)"
          f" · with painting {result['gui_us_per_event']:.1f} µs/event · {result['redraws']:,} redraws"
          f" of {result['redraw_ms']:.2f} ms, {result['paints']:,} plot paints of {result['paint_ms']:.1f} ms · worst stall {result['worst_stall_ms']:.0f} ms"
          f" · lag after steady {lag(result['steady_lag_ms'])}, after the burst {lag(result['burst_lag_ms'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{args.rate:,} log events/s for {args.seconds:g} s, then a burst of {args.burst:,}; "
          f"{os.cpu_count()} CPUs, Qt {os.environ['QT_QPA_PLATFORM']}")
    ours = run("ours", args.rate, args.seconds, args.burst)
    show(ours)
    base = run("baseline", args.rate, args.seconds, args.burst)
    show(base)
    print(f"ratio (baseline / ours): GUI time per event {base['gui_us_per_event'] / ours['gui_us_per_event']:.1f}×, "
          f"worst stall {base['worst_stall_ms'] / max(1.0, ours['worst_stall_ms']):.1f}×, "
          f"redraws {base['redraws'] / max(1, ours['redraws']):.0f}×")


if __name__ == "__main__":
    main()
