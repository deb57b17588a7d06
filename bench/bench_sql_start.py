"""Benchmark the SQL server's cold start with and without its class archive (issue #19's fixed cost).

A `dbt run` with nothing new through a warm SQL server takes seconds; the first run
after a server start takes twice as long or more, because the new JVM loads and
verifies the classes of Spark, Hive, Delta and Derby as each statement first reaches
them. The server keeps those classes in an archive its first stop writes
(``SqlServer.class_archive``, Java's AppCDS) and maps it at later starts. This bench
times, on one lakehouse, rounds of: server start, the first `dbt run` (nothing new),
a second one (the warm figure), and the stop; alternately without the archive (deleted
before the start, so that stop writes it again) and with it. It prints each round and
the medians, and the ratio of start + first run with the archive to without.

    python -m bench.bench_dbt --events 1000000 --catalog server   # makes the lakehouse
    python -m bench.bench_sql_start --rounds 3

Uses the lakehouse that bench_dbt left (``--lakehouse``, default its 1 M one); results
are appended to bench/results/sql_start.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Annotated

import typer
from rich.table import Table

from bench import bench_console
from bench.bench_dbt import SCRATCH_DEFAULT
from lakehouse import config, services

RESULTS = Path(__file__).with_name("results") / "sql_start.jsonl"
PHASES = ("start", "first dbt run", "second dbt run", "stop")


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return round(time.perf_counter() - started, 1)


def one_round(server, env: dict[str, str], with_archive: bool) -> dict[str, float]:
    """Start, two `dbt run`s with nothing new, stop; each timed. Without the archive, it is deleted first."""
    if not with_archive:
        server.class_archive.unlink(missing_ok=True)
    elif not server.class_archive.exists():
        raise typer.BadParameter("no class archive to start with: run a round without one first")
    dbt = [str(Path(sys.executable).parent / "dbt"), "run", "--quiet"]

    def dbt_run() -> None:
        subprocess.run(dbt, env=env, cwd=config.REPO_ROOT, check=True, stdout=subprocess.DEVNULL)

    return {
        "start": _timed(server.start),
        "first dbt run": _timed(dbt_run),
        "second dbt run": _timed(dbt_run),
        "stop": _timed(server.stop),
    }


def report(rounds: list[tuple[bool, dict[str, float]]]) -> Table:
    """Every round, the median of each variant, and the ratio of start + first run (with / without)."""
    table = Table("class archive", *(f"{phase} s" for phase in PHASES), "start + first run s")
    for with_archive, times in rounds:
        table.add_row(
            "with" if with_archive else "without", *(f"{times[p]:.1f}" for p in PHASES), f"{times['start'] + times['first dbt run']:.1f}"
        )
    medians = {}
    for variant in (False, True):
        picked = [times for with_archive, times in rounds if with_archive == variant]
        medians[variant] = {p: median(t[p] for t in picked) for p in PHASES}
        row = medians[variant]
        table.add_row(
            f"median, {'with' if variant else 'without'}",
            *(f"{row[p]:.1f}" for p in PHASES),
            f"{row['start'] + row['first dbt run']:.1f}",
            style="bold",
        )
    cold = {v: medians[v]["start"] + medians[v]["first dbt run"] for v in medians}
    table.caption = f"start + first run with the archive / without: {cold[True] / cold[False]:.2f}"
    return table


def cli(
    lakehouse: Annotated[Path, typer.Option(help="A lakehouse with built marts (bench_dbt makes one).")] = SCRATCH_DEFAULT / "lake-1000000",
    rounds: Annotated[int, typer.Option(help="Rounds of each variant, alternating.")] = 3,
) -> None:
    """Time the SQL server's start and first `dbt run` without and with its class archive."""
    env = {**os.environ, "LAKEHOUSE_DIR": str(lakehouse), "LAKEHOUSE_CATALOG": "server"}
    cfg = config.load(env)
    if not cfg.warehouse_dir.exists():
        raise typer.BadParameter(f"{lakehouse} has no built marts: run `python -m bench.bench_dbt --events 1000000 --catalog server` first")
    server = services.all_services(cfg)["sql"]
    server.stop()
    console = bench_console()
    results: list[tuple[bool, dict[str, float]]] = []
    for i in range(rounds):
        for with_archive in (False, True):
            times = one_round(server, env, with_archive)
            console.print(f"round {i + 1}, {'with' if with_archive else 'without'} the archive: {times}")
            results.append((with_archive, times))
            with RESULTS.open("a") as out:
                out.write(
                    json.dumps(
                        {"lakehouse": lakehouse.name, "with_archive": with_archive, **times, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    )
                    + "\n"
                )
    console.print(report(results))


if __name__ == "__main__":
    typer.run(cli)
