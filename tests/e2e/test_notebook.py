"""The exploration notebook runs top to bottom against a lakehouse built by the run command.

Why a test: a notebook nobody executes rots silently (a renamed mart column, a moved
function). This builds a small lakehouse with the real `python -m lakehouse.pipeline`
(services, Kafka, streaming ingest, dbt, training, live scoring), executes
``notebooks/exploration.ipynb`` in a fresh kernel of this venv's Python, and checks it
drew its figures, shows the pipeline's own funnel numbers and the models it trained.
A second run with MLflow unreachable must print a note, not raise.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import nbformat
import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from lakehouse import config, services

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NOTEBOOK = config.REPO_ROOT / "notebooks" / "exploration.ipynb"
KERNEL = "lakehouse-test-python"
CELL_TIMEOUT_S = 900
PIPELINE_TIMEOUT_S = 2400


@pytest.fixture(scope="module")
def built_lakehouse(tmp_path_factory: pytest.TempPathFactory):
    """Run the pipeline small in the test lakehouse; leave its services up for the notebook, stop them after."""
    cfg = config.load()
    output = tmp_path_factory.mktemp("pipeline-output")
    # Services other tests' fixtures started must survive this module.
    started_here = [svc for svc in services.all_services(cfg).values() if svc.pid() is None]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lakehouse.pipeline", "--events", "20000", "--days", "8", "--keep-services", "--output", str(output)],
            cwd=config.REPO_ROOT,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=PIPELINE_TIMEOUT_S,
        )
        if proc.returncode != 0:
            pytest.fail(f"pipeline failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
        # The subprocess has exited, so its Spark driver released the Derby catalog the kernel will open.
        yield cfg, json.loads((output / "summary.json").read_text())
    finally:
        for svc in started_here:
            svc.stop()


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec that runs this interpreter (the venv), whatever kernels the machine has installed."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / KERNEL
    spec_dir.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": KERNEL, "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def execute(kernel_specs: KernelSpecManager, env: dict[str, str], nb: nbformat.NotebookNode | None = None) -> nbformat.NotebookNode:
    """Execute the committed notebook from notebooks/ (as a user opening it would) and return it with outputs."""
    nb = nb if nb is not None else nbformat.read(NOTEBOOK, as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, startup_timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
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
    cfg, summary = built_lakehouse
    nb = execute(kernel_specs, os.environ.copy())
    text = text_of(nb)

    # Figures: EDA, sessions, the three funnel PNGs from lakehouse.figures, feature marts and both model grids.
    assert images(nb) >= 12, f"only {images(nb)} figures were drawn"
    assert not any(o.get("output_type") == "error" for o in outputs(nb))

    # The notebook reads the same lakehouse the pipeline wrote: its funnel total is the pipeline's.
    sessions = re.search(r"\*\*Overall\*\*: ([\d,]+) sessions", text)
    assert sessions, "the overall funnel line is missing"
    assert int(sessions.group(1).replace(",", "")) == summary["funnel"]["sessions"] > 0
    assert str(cfg.lakehouse_dir) in text

    # Both models the pipeline trained are shown with their winner and the champion.
    assert "no finished training runs" not in text and "MLflow not reachable" not in text
    for task, facts in summary["models"].items():
        assert f"winner: {facts['winner']}" in text, f"{task} winner not shown"
    assert text.count("champion: ") >= 2
    assert "baseline: has_cart" in text and "baseline: popularity" in text


def test_notebook_without_mlflow_prints_a_note(built_lakehouse, kernel_specs) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    nb = execute(kernel_specs, env)
    text = text_of(nb)
    assert "note: no MLflow server answers" in text
    assert "winner: " not in text
    assert images(nb) >= 10, "the lakehouse sections should still draw their figures"
