"""The streaming scorer as a process of its own: start it, wait until it scores, stop it.

The run command's live slice and ``bench/bench_scorer.py`` both run the scorer the way
production does (``python -m streaming.scorer`` with its own JVM) and need the same three
steps; the clock of a latency figure starts only once the scorer says it runs, so JVM
start-up and model loading never count as latency.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lakehouse import config

READY_LINE = "scorer running"  # streaming.scorer logs it (this constant) once its query has started


def launch(topic: str, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m streaming.scorer --topic TOPIC`` with its output in ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, "-m", "streaming.scorer", "--topic", topic],
            cwd=config.REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_until_running(proc: subprocess.Popen, log_path: Path, timeout: float = 240.0) -> None:
    """Block until the scorer logs that its query runs; fail with the log's tail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if READY_LINE in log_path.read_text(errors="replace"):
            time.sleep(3)  # a few empty batches: the trigger loop is in its steady state
            return
        if proc.poll() is not None:
            break
        time.sleep(1)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    state = f"exited with code {proc.returncode}" if proc.poll() is not None else f"did not start within {timeout:.0f} s"
    raise RuntimeError(f"the scorer {state}; last lines of {log_path}:\n{tail}")


def stop(proc: subprocess.Popen, grace: float = 120.0) -> None:
    """SIGTERM (the scorer stops its query and drains the outbox), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:  # e.g. far behind: the rows it wrote stand, the checkpoint resumes the rest
        proc.kill()
        proc.wait()
