"""The lakehouse SQL server: `dbt run` (Thrift) while other clients query the marts (Spark Connect, beeline).

With the embedded Derby catalog, one process at a time could open the catalog: a
notebook or a query had to wait for `dbt run`. Through the server, every client is a
session of the one Spark application that holds it. Each client here is its own
process, as a user's would be: two run the SQL command (Spark Connect) over and over,
a third runs `beeline -e` (Thrift), all while `dbt run` rebuilds the marts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lakehouse import config
from lakehouse.sql_server import pyspark_home, url
from tests.integration.dbt_support import dbt, ensure_quarantine, synthetic_events, write_bronze

pytestmark = pytest.mark.integration

MODELS = ("+fct_funnel_daily", "+fct_sessions")


@dataclass
class Client:
    """A client process run again and again until told to stop; every run's exit code and output."""

    name: str
    command: list[str]
    runs: list[tuple[float, int, str, str]] = field(default_factory=list)  # start, exit code, stdout, stderr

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            done = subprocess.run(self.command, capture_output=True, text=True, cwd=config.REPO_ROOT, env=os.environ.copy(), timeout=300)
            self.runs.append((started, done.returncode, done.stdout, done.stderr))


def _sql_command(query: str) -> list[str]:
    return [sys.executable, "-m", "lakehouse.sql", "--format", "json", query]


def _beeline(cfg: config.Config, query: str) -> list[str]:
    return [str(pyspark_home() / "bin" / "beeline"), "-u", url(cfg), "--silent=true", "--outputformat=csv2", "-e", query]


def _beeline_count(cfg: config.Config, table: str) -> int:
    done = subprocess.run(_beeline(cfg, f"select count(*) as n from {table}"), capture_output=True, text=True, check=True)
    return int([line for line in done.stdout.splitlines() if line.strip().isdigit()][-1])


def test_clients_query_the_marts_while_dbt_runs(on_sql_server: config.Config, tmp_path):
    from lakehouse.spark import get_spark

    cfg = on_sql_server
    spark = get_spark("test-sql-server", catalog=True, cfg=cfg)  # a Spark Connect client of the server
    events = synthetic_events(n_users=80, days=4)
    last_day = events["event_time"].dt.date.max()
    write_bronze(spark, events[events["event_time"].dt.date < last_day], mode="overwrite", cfg=cfg)
    ensure_quarantine(spark, cfg)
    dbt("seed")
    dbt("run", "--select", *MODELS, "--full-refresh")
    write_bronze(spark, events[events["event_time"].dt.date == last_day], cfg=cfg)  # so the run below has work to do

    clients = [
        Client("connect-1", _sql_command("select session_date, sessions from analytics.fct_funnel_daily order by session_date")),
        Client("connect-2", _sql_command("select count(*) as n from analytics.fct_sessions")),
        Client("beeline", _beeline(cfg, "select count(*) as n from analytics.fct_sessions")),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=c.loop, args=(stop,)) for c in clients]
    for t in threads:
        t.start()
    dbt_started = time.monotonic()
    try:
        run = subprocess.run(
            [str(config.REPO_ROOT / ".venv" / "bin" / "dbt"), "run", "--select", *MODELS],
            capture_output=True,
            text=True,
            cwd=config.REPO_ROOT,
            env=os.environ.copy(),
            timeout=1200,
        )
        dbt_ended = time.monotonic()
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert run.returncode == 0, run.stdout[-3000:]
    for client in clients:
        during = [r for r in client.runs if dbt_started <= r[0] < dbt_ended]
        assert during, f"{client.name} ran no query while dbt ran"
        failed = [(out + err)[-1500:] for _, rc, out, err in client.runs if rc != 0]
        assert not failed, f"{client.name} failed: {failed[0]}"
    for _, _, out, _ in clients[0].runs:
        rows = json.loads(out)
        assert rows and all(r["sessions"] > 0 for r in rows)

    # After the run: the new day is in the marts, and both endpoints see the same table.
    days = [r.session_date for r in spark.sql("select session_date from analytics.fct_funnel_daily").collect()]
    assert max(days) == last_day
    assert _beeline_count(cfg, "analytics.fct_sessions") == spark.table("analytics.fct_sessions").count() > 0

    # The rest of dbt's commands over Thrift (their output kept out of the shared target/ folder).
    target = ("--target-path", str(tmp_path / "target"))
    dbt("test", "--select", "fct_funnel_daily", "fct_sessions", "--indirect-selection", "cautious", *target)  # tests of these two only
    shown = dbt("show", "--inline", "select count(*) as n from {{ ref('fct_sessions') }}", *target)
    assert shown.result.results[0].agate_table.rows[0][0] == spark.table("analytics.fct_sessions").count()
    dbt("docs", "generate", *target)
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert "model.clickstream_lakehouse.fct_sessions" in catalog["nodes"]


def test_a_table_made_through_thrift_is_seen_through_connect(on_sql_server: config.Config):
    from lakehouse.spark import get_spark

    subprocess.run(
        _beeline(on_sql_server, "create or replace table default.made_by_beeline using delta as select 1 as id union all select 2"),
        check=True,
        capture_output=True,
    )
    spark = get_spark("test-sql-server", catalog=True, cfg=on_sql_server)
    assert sorted(r.id for r in spark.table("default.made_by_beeline").collect()) == [1, 2]


def test_min_and_max_of_a_date_column_answer_on_both_protocols(on_sql_server: config.Config):
    """What a user asks of a mart first (its first and last day) answers through Thrift and Connect.

    Delta answers min()/max() from file statistics, and that shortcut failed on every
    Thrift statement with a date column (ClassCastException, delta-io/delta#4201).
    """
    create = "create or replace table default.dated using delta as select date_add(date'2019-11-01', cast(id as int)) as d from range(3)"
    subprocess.run(_beeline(on_sql_server, create), check=True, capture_output=True)
    query = "select min(d) as first_day, max(d) as last_day from default.dated"
    thrift = subprocess.run(_beeline(on_sql_server, query), capture_output=True, text=True)
    assert thrift.returncode == 0, thrift.stderr[-2000:]
    assert "2019-11-01,2019-11-03" in thrift.stdout.splitlines()
    connect = subprocess.run(_sql_command(query), capture_output=True, text=True, cwd=config.REPO_ROOT)
    assert connect.returncode == 0, connect.stderr[-2000:]
    assert json.loads(connect.stdout) == [{"first_day": "2019-11-01", "last_day": "2019-11-03"}]


def test_hive_function_registry_loads_on_the_servers_classpath(spark):
    """The Thrift server's session close can be the first to load Hive's function registry.

    The registry names a UDTF built on LLAP's signer, whose jars the pyspark wheel leaves
    out: without them a `dbt test` over Thrift failed now and then on closing a session
    (NoClassDefFoundError LlapSigner$Signable). The server starts with the same
    ``spark.driver.extraClassPath`` as this session (lakehouse.spark.spark_conf).
    """
    registry = spark._jvm.org.apache.hadoop.hive.ql.exec.FunctionRegistry
    names = set(registry.getFunctionNames())
    assert {"get_splits", "upper", "explode"} <= names


def test_the_first_stop_writes_a_class_archive_that_the_next_start_maps(cfg: config.Config, tmp_path):
    """The server's class archive (AppCDS): written by the JVM at its first stop, mapped by the next one, which still answers.

    The archive goes to a deps folder of this test's own (the jars linked in), so the
    test sees both halves whatever other servers of the suite have written.
    """
    from lakehouse.spark import new_connect_session
    from lakehouse.sql_server import SqlServer

    deps = tmp_path / "deps"
    (deps / "jars").mkdir(parents=True)
    (deps / "jars" / "spark").symlink_to(cfg.spark_jars_dir.resolve())
    ports = {key: str(int(cfg[key]) + 37) for key in ("SQL_SERVER_THRIFT_PORT", "SQL_SERVER_CONNECT_PORT", "SQL_SERVER_UI_PORT")}  # type: ignore[arg-type]
    env = {**os.environ, **ports, "LAKEHOUSE_DIR": str(tmp_path / "lake"), "LAKEHOUSE_CATALOG": "server", "LAKEHOUSE_DEPS_DIR": str(deps)}
    server = SqlServer("sql", int(ports["SQL_SERVER_THRIFT_PORT"]), config.load(env))
    try:
        first = server.start()
        assert "-XX:ArchiveClassesAtExit=" in Path(f"/proc/{first}/cmdline").read_text()
        assert not server.class_archive.exists()
        server.stop()
        assert server.class_archive.stat().st_size > 1_000_000
        assert list(server.class_archive.parent.glob("*.tmp")) == []

        second = server.start()
        assert str(server.class_archive) in Path(f"/proc/{second}/maps").read_text()  # mapped, not just named
        session = new_connect_session("test-class-archive", server.cfg)
        try:
            assert session.sql("select 40 + 2 as answer").collect()[0].answer == 42
        finally:
            session.stop()
    finally:
        server.stop()
    # a job's own driver JVM (the ingest's, the scorer's) maps the same archive
    job = subprocess.run([sys.executable, "-c", _DRIVER_MAPS], env=env, cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    *mapped, answer = job.stdout.split()
    assert str(server.class_archive) in mapped and answer == "3", job.stdout[-2000:]


# Starts a driver as a job does and prints the class archives its JVM maps, then a query's answer.
_DRIVER_MAPS = """
from pathlib import Path
from lakehouse.spark import get_spark
spark = get_spark("test-class-archive-job", catalog=False)
pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
maps = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if line.endswith(".jsa")}
print(*sorted(maps), spark.range(3).count())
"""
