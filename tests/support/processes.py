"""Run project commands as separate OS processes, as users and crashes see them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lakehouse import config


def start_module(module: str, args: list[str], log_file: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m module args`` from the repository root, in its own process group, output to log_file.

    ``env``: the whole environment of the process (default: this one's), e.g. with a setting changed.
    """
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=config.REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group (the Spark JVM too), as a crash would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def terminate(proc: subprocess.Popen, timeout: float = 120) -> None:
    """SIGTERM the process group and wait for a clean exit."""
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=timeout)
