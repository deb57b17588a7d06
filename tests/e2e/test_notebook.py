"""The exploration notebook runs top to bottom against a lakehouse built by the run command.

Why a test: a notebook nobody executes rots silently (a renamed mart column, a moved
function). This opens the notebook of the newcomer's clone (``tests/e2e/conftest.py``:
a fresh clone where ``make run`` built a small lakehouse with services, Kafka, the
streaming ingest, dbt, training and live scoring), executes it in a fresh kernel of
this venv's Python with none of the project's variables set, as a user would after
``make run``, and checks it drew its figures, shows the pipeline's own funnel numbers
and the models it trained. A second run with MLflow unreachable must print a note,
not raise.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import nbformat
import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from lakehouse import config
from ml.feature_contract import TASK_SPECS
from tests.support.newcomer import newcomer_env, ok, sh

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NOTEBOOK = config.REPO_ROOT / "notebooks" / "exploration.ipynb"
KERNEL = "lakehouse-test-python"
CELL_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def built_lakehouse(clone: Path, first_run: tuple[str, dict]) -> tuple[Path, dict]:
    """The clone's lakehouse after `make run`, with its services up for the notebook.

    In the suite these tests run between the newcomer's README commands that start the
    services and the first that stops one (tests/conftest.py); alone, `make run` has
    stopped them, and the clone's fixture stops them at the end.
    """
    ok(sh(clone, "make services-start"), "make services-start")
    return clone, first_run[1]


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec that runs this interpreter (the venv), whatever kernels the machine has installed."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / KERNEL
    spec_dir.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": KERNEL, "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def execute(kernel_specs: KernelSpecManager, env: dict[str, str], notebook: Path) -> nbformat.NotebookNode:
    """Execute a committed notebook from its folder (as a user opening it would) and return it with outputs."""
    nb = nbformat.read(notebook, as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, startup_timeout=300, resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute(env=env)  # raises CellExecutionError naming the cell on the first error
    finally:
        shutdown(km)
    return nb


def shutdown(km: KernelManager) -> None:
    """Stop the kernel and wait for its Spark JVM to exit, so the next Derby catalog user can boot.

    nbclient leaves a kernel it was handed (``km=``) running; its JVM would keep the
    metastore lock ("Another instance of Derby may have already booted the database").
    """
    if not km.has_kernel:
        return
    try:
        kernel = psutil.Process(km.provisioner.pid)
        procs = [kernel, *kernel.children(recursive=True)]
    except (psutil.NoSuchProcess, AttributeError, TypeError):
        procs = []
    km.shutdown_kernel(now=False)
    _, alive = psutil.wait_procs(procs, timeout=120)
    for p in alive:  # only the kernel we started and its own children
        p.kill()
    psutil.wait_procs(alive, timeout=30)


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def text_of(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in outputs(nb):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        for mime in ("text/plain", "text/markdown", "text/html"):
            if mime in o.get("data", {}):
                parts.append(o["data"][mime])
    return "\n".join(parts)


def images(nb: nbformat.NotebookNode) -> int:
    return sum(1 for o in outputs(nb) if "image/png" in o.get("data", {}))


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook with outputs stripped"


def test_the_run_scored_a_live_slice_with_the_streaming_scorer(built_lakehouse) -> None:
    """The run command's last step: every session of the held-out day got a prediction row from the scorer."""
    _, summary = built_lakehouse
    live = summary["live"]
    assert live["events"] > 1000 and live["sessions"] > 100
    assert live["sessions_scored"] == live["sessions"]
    assert live["prediction_rows"] >= live["sessions"]
    assert 0 < live["latency_p50_s"] <= live["latency_p95_s"]


def test_notebook_runs_on_the_pipeline_lakehouse(built_lakehouse, kernel_specs) -> None:
    clone, summary = built_lakehouse
    nb = execute(kernel_specs, newcomer_env(), clone / "notebooks" / "exploration.ipynb")
    text = text_of(nb)

    # Figures: EDA, sessions, the three funnel PNGs from lakehouse.figures, feature marts and both model grids.
    assert images(nb) >= 12, f"only {images(nb)} figures were drawn"
    assert not any(o.get("output_type") == "error" for o in outputs(nb))

    # The notebook reads the same lakehouse the pipeline wrote: its funnel total is the pipeline's.
    sessions = re.search(r"\*\*Overall\*\*: ([\d,]+) sessions", text)
    assert sessions, "the overall funnel line is missing"
    assert int(sessions.group(1).replace(",", "")) == summary["funnel"]["sessions"] > 0
    assert str(clone / "lakehouse-data") in text

    # Both models the pipeline trained are shown with their winner and the champion.
    assert "no finished training runs" not in text and "MLflow not reachable" not in text
    for task, facts in summary["models"].items():
        assert f"winner: {facts['winner']}" in text, f"{task} winner not shown"
    for task in summary["models"]:  # a champion, or the plain note that the gate has not let one through
        name = TASK_SPECS[task].registered_model
        assert f"champion: {name} v" in text or f"'{name}' has no champion yet" in text
    assert "baseline: has_cart" in text and "baseline: popularity" in text


def test_notebook_without_mlflow_prints_a_note(built_lakehouse, kernel_specs) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clone, _ = built_lakehouse
    env = newcomer_env() | {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    nb = execute(kernel_specs, env, clone / "notebooks" / "exploration.ipynb")
    text = text_of(nb)
    assert "note: no MLflow server answers" in text
    assert "winner: " not in text
    assert images(nb) >= 10, "the lakehouse sections should still draw their figures"
