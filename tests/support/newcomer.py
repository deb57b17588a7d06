"""Running commands as a newcomer types them: in a fresh clone, with none of the project's variables set."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lakehouse import config

COMMAND_TIMEOUT_S = 600
# Variables a newcomer has not set: the project's settings and the families the README names,
# the JVM options the test session sets for its own JVMs (tests/conftest.py), and gRPC's fork
# setting, which importing `lakehouse` put into the test session: the clone's programs must set it themselves.
_PREFIXES = ("LAKEHOUSE_", "KAFKA_", "MONGO_", "MLFLOW_", "SPARK_", "DBT_", "JAVA_TOOL_OPTIONS", "GRPC_ENABLE_FORK_SUPPORT")


def newcomer_env() -> dict[str, str]:
    """This process's environment without any of the project's settings (the test session sets several)."""
    names = {s.name for s in config.SETTINGS}
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith(_PREFIXES)}


def sh(clone: Path, command: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run one command line in the clone as a shell would, output and errors together."""
    return subprocess.run(
        ["bash", "-c", command], cwd=clone, env=newcomer_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def ok(result: subprocess.CompletedProcess, what: str) -> str:
    """The command's output; a failed assertion with its tail when it did not exit 0."""
    assert result.returncode == 0, f"`{what}` exited {result.returncode}:\n{result.stdout[-8000:]}"
    return result.stdout
