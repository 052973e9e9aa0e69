"""A scripted stand-in for ``python -m studio.train CONFIG.json``, for the Train panel's tests.

It speaks the real events protocol and the job's file conventions (job.pid while it runs,
events appended to events.jsonl, stop.request checked every step, resume continues the step
count) but trains nothing, so a panel test runs in seconds. FAKE_STEPS, FAKE_DELAY and
FAKE_EVAL_EVERY shape the run; FAKE_PID_DELAY seconds pass before job.pid is written (a job slow to
start, as the real one importing torch); FAKE_IGNORE_STOP=1 makes it deaf to Stop (killed by the timeout); a base model named "missing" gives an error event and exit 1.
(Its file name holds "studio": launch.live_pid takes only such command lines for the job.)
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    run_dir = Path(config["run_dir"])
    events_path, stop_path, pid_path = run_dir / "events.jsonl", run_dir / "stop.request", run_dir / "job.pid"
    steps = int(os.environ.get("FAKE_STEPS", "20"))
    delay = float(os.environ.get("FAKE_DELAY", "0.02"))
    eval_every = int(os.environ.get("FAKE_EVAL_EVERY", "10"))
    time.sleep(float(os.environ.get("FAKE_PID_DELAY", "0")))
    pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")

    def emit(event_type: str, **fields) -> None:
        line = json.dumps({"type": event_type, "time": time.time(), **fields})
        with open(events_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        print(line, flush=True)

    try:
        start = 0
        if config.get("resume") and events_path.exists():
            for line in events_path.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                if event["type"] in ("checkpoint", "stopped"):
                    start = int(event["step"])
        no_split = float(config.get("settings", {}).get("validation_fraction", 0.1)) == 0
        emit("config", run_id=config["run_id"], config=config, versions={"fake": "1"}, device="cpu",
             train_samples=6, eval_samples=0 if no_split else 1)
        if config["base_model"].endswith("missing"):
            emit("error", message=f"{config['base_model']}: no such model folder",
                 hint="choose a folder with config.json", kind="model")
            return 1
        for step in range(start + 1, steps + 1):
            time.sleep(delay)
            emit("log", step=step, loss=5.0 / step, learning_rate=1e-4, grad_norm=1.0 + step / 100,
                 tokens_per_s=1000.0 + step, gpu_memory_gb=None)
            emit("progress", step=step, max_steps=steps, epoch=step / steps, eta_s=(steps - step) * delay)
            if step % eval_every == 0:
                emit("eval", step=step, eval_loss=6.0 / step)
                emit("samples", step=step, samples=[{"instruction": "Say hi.", "input": "", "reference": "Hi.",
                                                     "answer": f"Hi at step {step}."}])
            if stop_path.exists() and not os.environ.get("FAKE_IGNORE_STOP"):
                emit("checkpoint", step=step, path=str(run_dir / "checkpoints" / f"checkpoint-{step}"))
                emit("stopped", step=step, checkpoint=str(run_dir / "checkpoints" / f"checkpoint-{step}"))
                return 0
        (run_dir / "adapter").mkdir(exist_ok=True)
        (run_dir / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
        emit("done", step=steps, adapter=str(run_dir / "adapter"), train_loss=1.0, runtime_s=steps * delay)
        return 0
    finally:
        pid_path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
