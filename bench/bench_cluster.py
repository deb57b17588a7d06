"""One worker against two: the same backfill on a standalone cluster of this machine, and in local mode.

Generates a CSV of ``--events`` events, then backfills it into a fresh lakehouse folder
(``python -m streaming.backfill``, a process of its own, as a user runs it) three ways:
``local[2]``; a ``lakehouse.cluster`` of one worker; one of two workers. Each worker
offers one core and 1 GB, each application takes one core per executor. It prints each
run's wall time (Spark start-up included: that is what a user waits for), its ratio to
the one-worker run, and the bronze row count, which must be the same in all three.

Usage: ``python -m bench.bench_cluster [--events 200000]``
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from bench import bench_console
from lakehouse import config
from lakehouse.cluster import start_cluster, stop_cluster
from streaming.generate import generate

console = bench_console()
_ROWS = re.compile(r"([\d,]+) rows to bronze, ([\d,]+) to quarantine")


def backfill(csv: Path, env: dict[str, str]) -> tuple[float, int]:
    """Seconds the backfill process took, and the rows it wrote to bronze."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streaming.backfill", str(csv)], cwd=config.REPO_ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    match = _ROWS.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"backfill failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, int(match.group(1).replace(",", ""))


def on_cluster(csv: Path, workers: int, root: Path) -> tuple[float, int]:
    """The backfill on a fresh cluster of ``workers`` one-core workers (stopped after)."""
    env = {
        **os.environ,
        "LAKEHOUSE_DIR": str(root / f"workers-{workers}"),
        "SPARK_CLUSTER_WORKERS": str(workers),
        "SPARK_CLUSTER_WORKER_CORES": "1",
        "SPARK_CLUSTER_WORKER_MEMORY": "1g",
        "SPARK_CORES_MAX": str(workers),
    }
    env["SPARK_MASTER"] = config.load(env).cluster_master_url
    cfg = config.load(env)
    start_cluster(cfg)
    try:
        return backfill(csv, env)
    finally:
        stop_cluster(cfg)


def main(events: int = typer.Option(200_000, help="Events in the generated file.")) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = Path(tmp)
        csv = root / "events.csv"  # plain text: a gzip file is one split, one task, whatever the workers
        generate(csv, events, date(2019, 11, 1), 7, seed=11, progress=False)
        local = backfill(csv, {**os.environ, "LAKEHOUSE_DIR": str(root / "local"), "SPARK_MASTER": "local[2]"})
        console.print(f"local[2]: {local[0]:.1f} s")
        one = on_cluster(csv, 1, root)
        console.print(f"one worker: {one[0]:.1f} s")
        two = on_cluster(csv, 2, root)
    table = Table(title=f"backfill of {events:,} events ({csv.name}, {os.cpu_count()} cores on this machine)")
    for name in ("run", "seconds", "vs one worker", "bronze rows"):
        table.add_column(name, justify="right")
    for name, (seconds, rows) in (("local[2]", local), ("cluster, 1 worker", one), ("cluster, 2 workers", two)):
        table.add_row(name, f"{seconds:.1f}", f"{seconds / one[0]:.2f}", f"{rows:,}")
    console.print(table)
    if not local[1] == one[1] == two[1]:
        console.print("[red]the three runs wrote different row counts[/]")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
