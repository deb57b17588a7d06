"""Benchmark the dbt marts: full refresh on N generated events, then incremental runs after +1 %.

Targets (issue #4): full refresh within 5x the floor at 10 M events; the incremental run
under 15 % of the full refresh. Two incremental runs: after 1 % more events on the day
after the loaded ones (the usual scheduled run), then after 1 % more spread over the
last two loaded days (late events: every feature of those days is recomputed, since
product and user history features change with them). A last run with nothing new
shows the fixed cost.

``--fixed-cost`` measures only that last figure, two ways on the same lakehouse (issue
#19): dbt's ``session`` method (a Spark JVM started inside the dbt process, the Derby
catalog opened by it) against ``thrift`` to the lakehouse SQL server (a JVM that is
already running); each repeated, the ratio printed.

Why these numbers: a dbt run's cost only means something next to the cheapest thing
Spark can do with the same data, so each size also times one plain Spark
scan-and-aggregate over bronze (the floor) in a fresh process, like dbt's, and after
the full refresh the bound: every table it wrote, read and written again unchanged, the
writing that any build of the same marts must do, with none of the work. Each step
runs as a child process; wall time and the peak resident memory of its whole process
tree (Python + the Spark JVM) are sampled with psutil. Through the SQL server
(``--catalog server``) each dbt step also adds up the Spark stages the server ran for it
(``bench/spark_stages.py``, from its UI): their tasks' time over the server's cores is the least wall
time that work can take on this machine, so a target below it needs less work, not
better scheduling.

    python -m bench.bench_dbt --events 1000000 --events 10000000
    python -m bench.bench_dbt --events 10000000 --catalog server
    python -m bench.bench_dbt --fixed-cost --events 100000

Uses its own lakehouse folder (--workdir, default lakehouse-bench-dbt in the system temp
folder) so it never touches the user's marts; results are appended to
bench/results/dbt.jsonl.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bench import bench_console, dbt_profile
from bench.spark_stages import StageCounter
from lakehouse.config import REPO_ROOT

PY = sys.executable
# The platform's temp folder (TMPDIR, TEMP...), not a fixed path: a fixed one does not exist everywhere.
SCRATCH_DEFAULT = Path(tempfile.gettempdir()) / "lakehouse-bench-dbt"
# Fixed seeds: every machine generates the same events, so runs compare across sessions.
MAIN_SEED, NEXT_DAY_SEED, LATE_SEED = 1, 8, 7
FLOOR_SQL = """
select event_date, event_type, count(*) as n, count(distinct user_id) as users, sum(price) as amount
from delta.`{path}` group by event_date, event_type
"""


class Catalog(StrEnum):
    """How dbt reaches Spark (``LAKEHOUSE_CATALOG``)."""

    embedded = "embedded"
    server = "server"


@dataclass
class Step:
    events: int
    step: str
    seconds: float
    peak_rss_mb: float
    # dbt steps through the SQL server: the server's stages for the step (bench/spark_stages.py)
    task_seconds: float | None = None
    least_seconds: float | None = None
    stage_busy_seconds: float | None = None
    task_seconds_by_model: dict[str, float] | None = None


def measure(cmd: list[str], env: dict[str, str], label: str) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS of its process tree in MiB)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise RuntimeError(f"{label} failed ({' '.join(cmd)}):\n{tail}")
    return seconds, peak / 2**20


def floor_script(path: Path) -> str:
    return (
        "from lakehouse.spark import get_spark\n"
        "spark = get_spark('bench-floor', catalog=False)\n"
        f"print(spark.sql({FLOOR_SQL.format(path=path)!r}).collect().__len__())\n"
    )


BOUND_SCRIPT = """
import sys
from pathlib import Path
from lakehouse.spark import get_spark
spark = get_spark('bench-bound', catalog=False)
warehouse, scratch = Path(sys.argv[1]), Path(sys.argv[2])
for table in sorted(p for p in warehouse.iterdir() if (p / '_delta_log').is_dir()):
    detail = spark.sql(f"describe detail delta.`{table}`").first()
    partitioned = f"partitioned by ({', '.join(detail.partitionColumns)})" if detail.partitionColumns else ""
    properties = ", ".join(f"'{k}' = '{v}'" for k, v in detail.properties.items() if k.startswith('delta.'))
    spark.sql(
        f"create or replace table delta.`{scratch / table.name}` using delta {partitioned} "
        f"{'tblproperties (' + properties + ')' if properties else ''} as select * from delta.`{table}`"
    )
"""


def bound_cmd(lake: Path) -> list[str]:
    """The least any build of these marts must spend on writing: each table the full
    refresh wrote, read and written again as it is (same partitions and statistics
    properties, in a fresh process like dbt's), with no computation at all."""
    return [PY, "-c", BOUND_SCRIPT, str(lake / "warehouse" / "analytics.db"), str(lake / "bound-copy")]


def generate(out: Path, events: int, days: int, *, start: str, seed: int) -> None:
    """A generated REES46 file (``streaming.generate``): ``events`` over ``days`` from ``start``."""
    cmd = [PY, "-m", "streaming.generate", "--out", str(out), "--events", str(events), "--days", str(days), "--start", start]
    subprocess.run([*cmd, "--seed", str(seed), "-q"], cwd=REPO_ROOT, check=True)


def next_day_csv(events: int, workdir: Path, days: int) -> Path:
    """1 % more events on the day after the ``days`` loaded ones (what a scheduled run finds), generated once."""
    path = workdir / "data" / f"events-{events}-plus1pct-next.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, max(events // 100, 1), 1, start=f"2019-11-{days + 1:02d}", seed=NEXT_DAY_SEED)
    return path


def main_events_csv(events: int, workdir: Path, days: int) -> Path:
    """The ``events`` loaded first, over ``days`` from 2019-11-01, generated once."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    main_csv = data / f"events-{events}.csv"
    if not main_csv.exists():
        generate(main_csv, events, days, start="2019-11-01", seed=MAIN_SEED)
    return main_csv


@dataclass
class Recorder:
    """Times the steps of one size, printing each and keeping it in ``steps``."""

    events: int
    steps: list[Step]
    console: object

    def __call__(self, step: str, cmd: list[str], env: dict[str, str]) -> float:
        self.console.print(f"[bold]{self.events:,}[/] {step} ...")
        seconds, peak = measure(cmd, env, step)
        self.steps.append(Step(self.events, step, round(seconds, 1), round(peak)))
        self.console.print(f"  {seconds:,.1f} s, peak {peak:,.0f} MiB")
        return seconds


def bench_fixed_cost(events: int, workdir: Path, days: int, env_base: dict[str, str], console, repeats: int) -> list[Step]:
    """`dbt run` with nothing new: the session method against thrift to the SQL server, on one lakehouse.

    The peak RSS of a thrift run is the dbt process alone: the server's JVM is shared
    by every client and runs before and after.
    """
    lake = workdir / f"lake-fixed-{events}"
    main_csv = main_events_csv(events, workdir, days)
    if lake.exists():
        subprocess.run(["rm", "-rf", str(lake)], check=True)
    session_env = {**env_base, "LAKEHOUSE_DIR": str(lake), "LAKEHOUSE_CATALOG": "embedded"}
    server_env = {**session_env, "LAKEHOUSE_CATALOG": "server"}
    dbt = [str(Path(PY).parent / "dbt")]
    steps: list[Step] = []
    record = Recorder(events, steps, console)
    record("load bronze (backfill)", [PY, "-m", "streaming.backfill", str(main_csv)], session_env)
    record("dbt seed (session)", [*dbt, "seed"], session_env)
    record("dbt run --full-refresh (session)", [*dbt, "run", "--full-refresh"], session_env)
    for i in range(repeats):
        record(f"dbt run (nothing new), session #{i + 1}", [*dbt, "run"], session_env)
    # started after the session runs: the server holds this lakehouse's Derby catalog
    with running_sql_server(server_env, "server", steps, events) as spark_ui:
        for i in range(repeats):
            step = f"dbt run (nothing new), thrift #{i + 1}"
            record_profiled(record, step, dbt, server_env, workdir / f"dbt-logs-{events}", console, spark_ui=spark_ui)
    return steps


def record_profiled(
    record: Recorder, step: str, dbt: list[str], env: dict[str, str], logs: Path, console, *args: str, spark_ui: str | None = None
) -> None:
    """Time `dbt run` (with ``args``) as ``step``, then print where its seconds went.

    dbt's log, as JSON events, is kept in a folder of ``logs`` named after the step, for
    a closer look afterwards (``python -m bench.dbt_profile <folder>/dbt.log``). With
    ``spark_ui`` (the SQL server's), the server's stages of the step are added up too: the
    least time their tasks need on its cores, beside the wall time.
    """
    logs = logs / re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
    shutil.rmtree(logs, ignore_errors=True)
    started = time.time()
    cmd = [*dbt, "run", *args, "--log-path", str(logs), "--log-format-file", "json"]
    with StageCounter(spark_ui) if spark_ui else contextlib.nullcontext() as stages:
        seconds = record(step, cmd, env)
    console.print(dbt_profile.render(dbt_profile.profile(dbt_profile.read_events(logs / "dbt.log"), started), step))
    if stages is not None:
        summary = stages.summary
        console.print(f"  {summary.describe(seconds)}")
        console.print(f"  task core-s per model: {summary.top_models()}")
        last = record.steps[-1]
        last.task_seconds = round(summary.task_seconds, 1)
        last.least_seconds = round(summary.least_seconds, 1)
        last.stage_busy_seconds = round(summary.busy_seconds, 1)
        last.task_seconds_by_model = {model: round(seconds, 1) for model, seconds in summary.by_model.items()}


def fixed_cost_table(steps: list[Step]):
    """Median session and thrift run per size, and their ratio."""
    from statistics import median

    from rich.table import Table

    table = Table("events", "dbt run (nothing new), session s", "thrift to the SQL server s", "thrift / session")
    for n in sorted({s.events for s in steps}):
        session = median(s.seconds for s in steps if s.events == n and ", session #" in s.step)
        thrift = median(s.seconds for s in steps if s.events == n and ", thrift #" in s.step)
        table.add_row(f"{n:,}", f"{session:,.1f}", f"{thrift:,.1f}", f"{thrift / session:.2f}")
    return table


def bench_size(events: int, workdir: Path, days: int, env_base: dict[str, str], console, *, catalog: str = "embedded") -> list[Step]:
    """Generate, load, floor, dbt full refresh, +1 % load, dbt incremental; for one size.

    ``catalog`` is how dbt reaches Spark: ``embedded``, dbt's session method (each run
    starts a Spark JVM of its own: the README's earlier figures), or ``server``, thrift to
    the lakehouse SQL server (dbt's default target), started once before the first dbt
    step; then every dbt step prints where its seconds went. The loads, the floor and the
    bound are plain Spark processes either way.
    """
    lake = workdir / f"lake-{events}"
    env = {**env_base, "LAKEHOUSE_DIR": str(lake), "LAKEHOUSE_CATALOG": catalog}
    main_csv = main_events_csv(events, workdir, days)
    # +1 %, two ways: the events that come next (the day after the loaded ones: what a
    # scheduled run finds), and late events spread over the last two loaded days
    next_csv = next_day_csv(events, workdir, days)
    late_csv = main_csv.parent / f"events-{events}-plus1pct-late.csv"
    if not late_csv.exists():
        generate(late_csv, max(events // 100, 1), 2, start=f"2019-11-{days - 1:02d}", seed=LATE_SEED)
    if lake.exists():
        subprocess.run(["rm", "-rf", str(lake)], check=True)

    dbt = [str(Path(PY).parent / "dbt")]
    steps: list[Step] = []
    recorder = Recorder(events, steps, console)
    logs = workdir / f"dbt-logs-{events}"

    def record(step: str, cmd: list[str]) -> None:
        recorder(step, cmd, env)

    def record_dbt(step: str, *args: str, profiled: bool = catalog == "server") -> None:
        if profiled:
            record_profiled(recorder, step, dbt, env, logs, console, *args, spark_ui=spark_ui)
        else:
            record(step, [*dbt, "run", *args])

    record("load bronze (backfill)", [PY, "-m", "streaming.backfill", str(main_csv)])
    record("floor: spark scan+aggregate", [PY, "-c", floor_script(lake / "bronze" / "events")])
    with running_sql_server(env, catalog, steps, events) as spark_ui:
        record("dbt seed", [*dbt, "seed"])
        record_dbt("dbt run --full-refresh", "--full-refresh")
        record("bound: rewrite the tables it wrote", bound_cmd(lake))
        subprocess.run(["rm", "-rf", str(lake / "bound-copy")], check=True)
        record("load +1% next day (backfill)", [PY, "-m", "streaming.backfill", str(next_csv)])
        record_dbt("dbt run (incremental, +1% next day)")
        record("load +1% late (backfill)", [PY, "-m", "streaming.backfill", str(late_csv)])
        record_dbt("dbt run (incremental, +1% late)")
        # what an incremental run costs before any work: dbt start-up, Spark, one look-up per model
        record_dbt("dbt run (nothing new)", profiled=True)
    return steps


@contextlib.contextmanager
def running_sql_server(env: dict[str, str], catalog: str, steps: list[Step], events: int):
    """With ``catalog`` server: the lakehouse SQL server for ``env``'s lakehouse, started once (its start recorded), stopped after.

    Yields the server's Spark UI address (None without a server).
    """
    if catalog != "server":
        yield None
        return
    from lakehouse import config, services, sql_server

    # room in its UI for every stage of a dbt run (bench/spark_stages.py adds them up)
    server = services.all_services(config.load({**env, "SQL_SERVER_UI_RETAINED_STAGES": "5000"}))["sql"]
    t0 = time.perf_counter()
    server.start()
    steps.append(Step(events, "SQL server start (once)", round(time.perf_counter() - t0, 1), 0))
    try:
        yield sql_server.ui_url(server.cfg)
    finally:
        server.stop()


def cli(
    events: Annotated[list[int], typer.Option("--events", help="Sizes to benchmark (repeat the option).")] = [1_000_000, 10_000_000],  # noqa: B006
    days: Annotated[int, typer.Option(help="Days the generated events span.")] = 7,
    workdir: Annotated[Path, typer.Option(help="Scratch folder (generated files and lakehouses).")] = SCRATCH_DEFAULT,
    results: Annotated[Path, typer.Option(help="JSON lines file the results are appended to.")] = REPO_ROOT
    / "bench"
    / "results"
    / "dbt.jsonl",
    fixed_cost: Annotated[
        bool, typer.Option("--fixed-cost", help="Only time `dbt run` with nothing new: the session method against the SQL server.")
    ] = False,
    repeats: Annotated[int, typer.Option(help="Runs of each kind with --fixed-cost.")] = 3,
    catalog: Annotated[
        Catalog,
        typer.Option(
            help="How dbt reaches Spark: embedded (dbt's session method, a JVM per run) or server (thrift to the SQL server, "
            "started once; each dbt run's profile printed)."
        ),
    ] = Catalog.embedded,
) -> None:
    """Time dbt full refresh and incremental runs against the plain-Spark floor (or, with --fixed-cost, session vs server)."""
    console = bench_console()
    env_base = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_DIR"}
    all_steps: list[Step] = []
    for n in events:
        if fixed_cost:
            all_steps += bench_fixed_cost(n, workdir, days, env_base, console, repeats)
        else:
            all_steps += bench_size(n, workdir, days, env_base, console, catalog=catalog.value)
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as fh:
        for s in all_steps:
            fh.write(
                json.dumps({**asdict(s), "catalog": "both" if fixed_cost else catalog.value, "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
                + "\n"
            )
    if fixed_cost:
        console.print(fixed_cost_table(all_steps))
        return
    console.print(results_table(all_steps))


def results_table(steps: list[Step]):
    """Every step per size: seconds, against the floor, against the full refresh and the bound.

    With the SQL server, a dbt step also shows the least time its Spark tasks need on the
    server's cores, and that as a share of the full refresh or a multiple of the bound: a
    target below it needs less work, not faster scheduling.
    """
    from rich.table import Table

    table = Table("events", "step", "seconds", "x floor", "x bound", "% of full refresh", "least s (tasks / cores)", "peak RSS MiB")
    for n in sorted({s.events for s in steps}):
        mine = [s for s in steps if s.events == n]
        floor = next(s.seconds for s in mine if s.step.startswith("floor"))
        full = next(s.seconds for s in mine if s.step == "dbt run --full-refresh")
        bound = next(s.seconds for s in mine if s.step.startswith("bound"))
        for s in mine:
            times_bound = f"{s.seconds / bound:.2f}" if s.step == "dbt run --full-refresh" else ""
            share = f"{100 * s.seconds / full:.1f} %" if s.step.startswith("dbt run (") else ""
            least = ""
            if s.least_seconds is not None:
                against = (
                    f"{s.least_seconds / bound:.2f}x bound"
                    if s.step == "dbt run --full-refresh"
                    else f"{100 * s.least_seconds / full:.1f} %"
                )
                least = f"{s.least_seconds:,.1f} ({against})"
            table.add_row(
                f"{n:,}", s.step, f"{s.seconds:,.1f}", f"{s.seconds / floor:.1f}", times_bound, share, least, f"{s.peak_rss_mb:,.0f}"
            )
    return table


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
