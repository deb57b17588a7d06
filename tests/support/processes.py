"""Run project commands as separate OS processes, as users and crashes see them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lakehouse import config


def start_module(module: str, args: list[str], log_file: Path) -> subprocess.Popen:
    """``python -m module args`` from the repository root, in its own process group, output to log_file."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=config.REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group (the Spark JVM too), as a crash would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def terminate(proc: subprocess.Popen, timeout: float = 120) -> None:
    """SIGTERM the process group and wait for a clean exit."""
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=timeout)
