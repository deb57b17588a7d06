"""Waiting for a scorer process: ready when it logs so, a clear error when it dies first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streaming import scorer_process


def _child(log_path, code: str) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def test_returns_once_the_scorer_says_it_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(scorer_process.time, "sleep", lambda _s: None)  # poll without pauses
    log = tmp_path / "scorer.log"
    proc = _child(log, f"import time; print({scorer_process.READY_LINE!r}, flush=True); time.sleep(30)")
    try:
        scorer_process.wait_until_running(proc, log, timeout=20)
        assert proc.poll() is None  # still running: ready was read from its log, not from its exit
    finally:
        scorer_process.stop(proc, grace=5)
    assert proc.poll() is not None


def test_a_scorer_that_exits_early_is_an_error_with_its_log(tmp_path) -> None:
    log = tmp_path / "scorer.log"
    proc = _child(log, "import sys; print('no champion and no jars', flush=True); sys.exit(3)")
    proc.wait()
    with pytest.raises(RuntimeError, match=r"exited with code 3(.|\n)*no champion and no jars"):
        scorer_process.wait_until_running(proc, log, timeout=5)
