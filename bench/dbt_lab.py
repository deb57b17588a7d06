"""The daily `dbt run` timed several times on one warm SQL server, the lakehouse restored between runs.

`bench.bench_dbt` times each step once, and the +1 % next-day run varies between runs of
the same code by more than #19's margin; the first run after a server start is much
slower than the next ones (its JVM has compiled nothing yet). This lab builds a lakehouse
of ``--events`` generated events (bench_dbt's files and seeds), fully refreshed through the
SQL server, then ``--runs`` times on that one server: loads bench_dbt's +1 % next-day file,
runs `dbt run` (profiled as bench_dbt profiles it: dbt's phases and models, the server's
stages), and before the next run puts every Delta table back at its version from before the load. Delta's
RESTORE brings back the table properties too, so dbt's arrival watermarks go back with the
rows, and the next run finds the same window. Each run is printed as a share of the full
refresh timed in the same lab, with their median. The full refresh runs on the same server
first, so every timed run is a warm one, as a scheduled run on a long-running server.

A change to the models is compared by running the lab before and after it, minutes apart:
the machine's speed drifts within a day (docs/benchmarks.md, 2026-12-06). A change to the
server's JVM or Spark settings is compared inside one lab: each ``--variant NAME=OPTIONS``
gets a server of its own, started with ``OPTIONS`` as its JVM options (``-Dspark.…`` and
``-Dhive.…`` reach Spark's and HiveServer2's settings, except those the server's command sets
itself, which win), and its runs on the same lakehouse, one variant after the other; the full
refresh runs once, on a server with the defaults. Every variant's first run is on a server
that has compiled nothing yet.

    python -m bench.dbt_lab --events 10000000 --runs 3
    python -m bench.dbt_lab --events 1000000 --runs 2 --variant defaults= --variant interpreted=-Dspark.sql.codegen.factoryMode=NO_CODEGEN
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Annotated

import typer

from bench import bench_console
from bench.bench_dbt import PY, SCRATCH_DEFAULT, Recorder, Step, main_events_csv, next_day_csv, record_profiled, running_sql_server
from lakehouse import config
from lakehouse.sql_server import thrift_cursor


def delta_tables(lake: Path) -> list[Path]:
    """Every Delta table of a lakehouse: bronze's (events, quarantine) and the warehouse's (dbt's)."""
    roots = [lake / "bronze", *sorted((lake / "warehouse").glob("*.db"))]
    return sorted(log.parent for root in roots for log in root.glob("*/_delta_log"))


def table_version(cursor, table: Path) -> int:
    """The latest version of the Delta table at ``table`` (the first row of its history)."""
    cursor.execute(f"describe history delta.`{table}` limit 1")
    return int(cursor.fetchone()[0])


def restore(cursor, versions: dict[Path, int]) -> list[Path]:
    """Put every table back at its recorded version (the changed ones only); return those restored."""
    changed = [table for table, version in versions.items() if table_version(cursor, table) != version]
    for table in changed:
        cursor.execute(f"restore table delta.`{table}` to version as of {versions[table]}")
    return changed


def parse_variant(text: str) -> tuple[str, str]:
    """``NAME=OPTIONS`` as (name, JVM options); the options may be empty (the defaults)."""
    name, sep, options = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"expected NAME=JVM-OPTIONS, got {text!r}")
    return name.strip(), options.strip()


@contextlib.contextmanager
def server_jvm_options(options: str) -> Iterator[None]:
    """``options`` in JDK_JAVA_OPTIONS while a server starts: its JVM keeps them, later processes do not get them."""
    before = os.environ.get("JDK_JAVA_OPTIONS")
    if options:
        os.environ["JDK_JAVA_OPTIONS"] = f"{before or ''} {options}".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("JDK_JAVA_OPTIONS", None)
        else:
            os.environ["JDK_JAVA_OPTIONS"] = before


def summary_rows(full_refresh: float, runs: list[Step]) -> list[tuple[str, ...]]:
    """One row per run (wall s, its share of the full refresh, least s, tasks), then their median."""

    def share(seconds: float) -> str:
        return f"{100 * seconds / full_refresh:.1f} %"

    rows = []
    for i, run in enumerate(runs, start=1):
        least = run.least_seconds
        rows.append(
            (
                str(i),
                f"{run.seconds:,.1f}",
                share(run.seconds),
                f"{least:,.1f} ({share(least)})" if least is not None else "",
                f"{run.task_seconds:,.1f}" if run.task_seconds is not None else "",
            )
        )
    if len(runs) > 1:
        middle = median(run.seconds for run in runs)
        rows.append(("median", f"{middle:,.1f}", share(middle), "", ""))
    return rows


def cli(
    events: Annotated[int, typer.Option(help="Events in the lakehouse (bench_dbt's generated files and seeds).")] = 10_000_000,
    days: Annotated[int, typer.Option(help="Days the generated events span.")] = 7,
    runs: Annotated[int, typer.Option(min=1, help="Next-day runs on each server.")] = 3,
    workdir: Annotated[Path, typer.Option(help="Scratch folder, shared with bench_dbt's generated files.")] = SCRATCH_DEFAULT,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=JVM-OPTIONS (repeat): the runs again on a server started with these options, on the same lakehouse. "
            "Without it, the runs go to the server of the full refresh."
        ),
    ] = None,
) -> None:
    """Time the +1 % next-day `dbt run` several times on one warm SQL server, restoring the lakehouse between runs."""
    console = bench_console()
    variants = [parse_variant(v) for v in variant or []]
    lake = workdir / f"lab-{events}"
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_DIR"}
    env.update(LAKEHOUSE_DIR=str(lake), LAKEHOUSE_CATALOG="server")
    main_csv = main_events_csv(events, workdir, days)
    next_csv = next_day_csv(events, workdir, days)
    shutil.rmtree(lake, ignore_errors=True)
    dbt = [str(Path(PY).parent / "dbt")]
    steps: list[Step] = []
    record = Recorder(events, steps, console)
    logs = workdir / f"lab-logs-{events}"
    record("load bronze (backfill)", [PY, "-m", "streaming.backfill", str(main_csv)], env)

    def next_day_runs(spark_ui: str | None, label: str, versions: dict[Path, int], last: bool) -> list[Step]:
        """``runs`` next-day runs, each on the lakehouse as ``versions`` recorded it; the last left as it ran unless more follow."""
        done: list[Step] = []
        with thrift_cursor(config.load(env)) as cursor:
            for i in range(1, runs + 1):
                # a new modification time: the backfill takes the file as a new version of it
                # (its rows left bronze with the restore), not as one already loaded
                next_csv.touch()
                record(f"load +1% next day {label}#{i}", [PY, "-m", "streaming.backfill", str(next_csv)], env)
                record_profiled(record, f"dbt run (+1% next day) {label}#{i}", dbt, env, logs, console, spark_ui=spark_ui)
                done.append(steps[-1])
                if i < runs or not last:
                    restored = restore(cursor, versions)
                    console.print(f"  restored {len(restored)} tables to their versions before the load")
        return done

    results: list[tuple[str, list[Step]]] = []
    with running_sql_server(env, "server", steps, events) as spark_ui:
        record("dbt seed", [*dbt, "seed"], env)
        full = record("dbt run --full-refresh", [*dbt, "run", "--full-refresh"], env)
        with thrift_cursor(config.load(env)) as cursor:
            versions = {table: table_version(cursor, table) for table in delta_tables(lake)}
        if not variants:
            results.append(("", next_day_runs(spark_ui, "", versions, last=True)))
    for n, (name, options) in enumerate(variants, start=1):
        console.print(f"[bold]variant {name}[/]: a server started with JVM options {options or '(none)'}")
        with contextlib.ExitStack() as server:
            with server_jvm_options(options):  # only the server's start: the loads' JVMs run as before
                spark_ui = server.enter_context(running_sql_server(env, "server", steps, events))
            results.append((name, next_day_runs(spark_ui, f"{name} ", versions, last=n == len(variants))))
    from rich.table import Table

    console.print(f"full refresh {full:,.1f} s")
    for name, done in results:
        title = f"{events:,} events: next-day run" + (f", {name}" if name else "")
        table = Table(title, "seconds", "of the full refresh", "least s (tasks / cores)", "tasks core-s")
        for row in summary_rows(full, done):
            table.add_row(*row)
        console.print(table)


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
