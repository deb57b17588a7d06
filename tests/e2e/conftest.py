"""The newcomer's clone and its first `make run`, shared by the end-to-end tests that meet the project as a user does.

Session-scoped: the newcomer test runs the README's commands in it, and the notebook
test executes the clone's notebook on the lakehouse that run built, so the whole job
runs once for both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lakehouse import config, services
from tests.support.newcomer import newcomer_env, ok, sh

RUN_ARGS = "--events 20000 --days 8 --live-events 2000"
RUN_TIMEOUT_S = 1800


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory):
    """The committed tree in a fresh folder, with the installed .venv and .deps linked in; its services stopped after."""
    root = tmp_path_factory.mktemp("newcomer") / "clickstream-lakehouse"
    subprocess.run(["git", "clone", "-q", str(config.REPO_ROOT), str(root)], check=True)
    for name in (".venv", ".deps"):
        (root / name).symlink_to(config.REPO_ROOT / name)
    defaults = config.load(newcomer_env())
    busy = [f"{name} (port {svc.port})" for name, svc in services.all_services(defaults).items() if services.port_open(svc.port)]
    if busy:
        pytest.fail(f"the newcomer test needs the default ports; in use: {busy}. Stop your own `make run --keep-services` first.")
    try:
        yield root
    finally:
        sh(root, "make services-stop", timeout=120)


@pytest.fixture(scope="session")
def first_run(clone: Path) -> tuple[str, dict]:
    """`make run` in the clone, as the README gives it (small RUN_ARGS): its output and summary.json."""
    out = ok(sh(clone, f'make run RUN_ARGS="{RUN_ARGS}"', timeout=RUN_TIMEOUT_S), "make run")
    return out, json.loads((clone / "output" / "summary.json").read_text())
