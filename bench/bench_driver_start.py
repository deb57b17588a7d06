"""Benchmark a job's Spark driver start with and without the SQL server's class archive.

Every job the project starts (the ingest, the scorer, the backfill, reconciliation, the
pipeline) is a new Spark driver JVM, which loads and verifies the classes of Spark and
Delta before its first batch. `lakehouse.spark.get_spark` maps the archive the SQL
server writes at its first stop (``lakehouse.sql_server.class_archive``, Java's AppCDS).
This bench starts, in alternating rounds, a driver in a new process with the settings
``get_spark`` gives a job (``driver_conf``, the archive mapped) or with the lakehouse's
alone (``spark_conf``, without it), then writes and reads a first Delta table of 1,000
rows, and prints each round, the medians and their ratio.

    python -m lakehouse.services start sql && python -m lakehouse.services stop sql   # writes the archive once
    python -m bench.bench_driver_start --rounds 3
"""

from __future__ import annotations

import json
import subprocess
import sys
from statistics import median
from typing import Annotated

import typer
from rich.table import Table

from bench import bench_console
from lakehouse import config
from lakehouse.sql_server import class_archive

# A job's first seconds: its driver, then a first Delta write and read. Prints seconds to the session and in all.
_JOB = """
import json, sys, tempfile, time
started = time.perf_counter()
from pyspark.sql import SparkSession
from lakehouse import config
from lakehouse.spark import driver_conf, spark_conf
cfg = config.load()
conf = driver_conf(cfg, catalog=False) if sys.argv[1] == "with" else spark_conf(cfg, catalog=False)
builder = SparkSession.builder.appName("bench-driver-start")
for key, value in conf.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
session = time.perf_counter() - started
path = tempfile.mkdtemp() + "/t"
spark.range(1000).selectExpr("id", "cast(id as string) as s").write.format("delta").save(path)
assert spark.read.format("delta").load(path).count() == 1000
print(json.dumps({"session": session, "first delta write and read": time.perf_counter() - started - session}))
spark.stop()
"""
PHASES = ("session", "first delta write and read")


def one_round(with_archive: bool) -> dict[str, float]:
    """A job's driver in a new process: seconds to its session and to its first Delta write and read."""
    variant = "with" if with_archive else "without"
    out = subprocess.run([sys.executable, "-c", _JOB, variant], cwd=config.REPO_ROOT, capture_output=True, text=True, check=True)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {p: round(times[p], 1) for p in PHASES}


def report(rounds: list[tuple[bool, dict[str, float]]]) -> Table:
    """Every round, the median of each variant, and the ratio of their totals (with / without)."""
    table = Table("class archive", *(f"{p} s" for p in PHASES), "in all s")
    for with_archive, times in rounds:
        table.add_row("with" if with_archive else "without", *(f"{times[p]:.1f}" for p in PHASES), f"{sum(times.values()):.1f}")
    totals = {v: median(sum(t.values()) for w, t in rounds if w == v) for v in (False, True)}
    table.add_row("median in all", "", "", f"without {totals[False]:.1f}, with {totals[True]:.1f}")
    table.add_row("with / without", "", "", f"[bold]{totals[True] / totals[False]:.2f}[/]")
    return table


def cli(rounds: Annotated[int, typer.Option(min=1, help="Rounds of each variant, alternating.")] = 3) -> None:
    """Time a job's driver start with the class archive and without it, in alternating rounds."""
    console = bench_console()
    archive = class_archive(config.load())
    if not archive.exists():
        raise typer.BadParameter(f"no class archive at {archive}: start and stop the SQL server once first (see the module's help)")
    results = []
    for i in range(rounds):
        for with_archive in (False, True):
            times = one_round(with_archive)
            results.append((with_archive, times))
            console.print(f"round {i + 1}, {'with' if with_archive else 'without'} the archive: {times}")
    console.print(report(results))


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
