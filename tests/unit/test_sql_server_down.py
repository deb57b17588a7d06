"""A catalog client started while the lakehouse SQL server is down says how to start it, and exits 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from lakehouse import config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [["lakehouse.sql", "select 1"], ["lakehouse.figures", "--out", "unused"]])
def test_a_client_without_a_server_is_told_how_to_start_it(command: list[str]):
    env = {**os.environ, "LAKEHOUSE_CATALOG": "server", "SQL_SERVER_CONNECT_PORT": str(_free_port())}
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, env=env, cwd=config.REPO_ROOT, timeout=120)
    assert done.returncode == 1
    assert "The lakehouse SQL server is not running" in done.stderr
    assert "`python -m lakehouse.services start sql`" in done.stderr
    assert "Traceback" not in done.stderr
