"""The same jobs on a standalone Spark cluster: one master and two workers on 127.0.0.1, started by ``lakehouse.cluster``.

With ``SPARK_MASTER=spark://...`` the streaming ingest (Kafka -> Delta) runs as a cluster
application, and the lakehouse SQL server runs as another, serving ``dbt build`` over
Thrift. Checked: both applications executed tasks on executors of both workers (the
ingest's event log, the SQL server's REST API), the executors got the Delta and Kafka
jars through ``spark.jars`` (fetched into their work folders, not on their command
line), reconciliation is exact, and the marts built on the cluster hold every event.
Then the streaming scorer, a third application, reads the same topic on the cluster's
executors and writes predictions. (Training's Spark work is queries of the SQL server,
which runs on the cluster here.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import config, services
from lakehouse.cluster import SparkWorker, cluster_services, start_cluster, stop_cluster
from streaming import reconcile
from streaming.bronze import BronzePaths
from streaming.events import CSV_COLUMNS
from streaming.predictions import predictions_path
from streaming.scorer import status_path
from tests.integration.dbt_support import synthetic_events
from tests.integration.test_scorer_helpers import register_models, wait_for
from tests.support.kafka_helpers import create_topic, sample_payloads, send_raw
from tests.support.processes import start_module, terminate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BAD = [(b"bad", b"{not json"), (b"bad", b'{"event_type": "teleport"}')]
MODELS = "+fct_sessions"  # staging, sessionization and the sessions mart: three models and their tests


@pytest.fixture(scope="module")
def cluster(cfg: config.Config, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[config.Config, dict[str, str]]]:
    """A running cluster and the environment of a lakehouse whose Spark jobs run on it.

    The lakehouse is a folder of its own: its SQL server opens its Derby catalog, which the
    suite's in-process session holds for the main one. It shares the suite's embedded
    services (their folder), so its jobs reach the suite's Kafka as the suite does. The SQL
    server takes the ports after the configured ones: the suite's `sql_server` may hold those.
    """
    lake = tmp_path_factory.mktemp("cluster") / "lakehouse"
    lake.mkdir()
    cfg.services_dir.mkdir(parents=True, exist_ok=True)
    (lake / "_services").symlink_to(cfg.services_dir)
    env = {**os.environ, "LAKEHOUSE_DIR": str(lake), "LAKEHOUSE_CATALOG": "server", "SPARK_DRIVER_MEMORY": "1g"}
    for name in ("SQL_SERVER_THRIFT_PORT", "SQL_SERVER_CONNECT_PORT", "SQL_SERVER_UI_PORT"):
        env[name] = str(int(cfg[name]) + 1)  # type: ignore[arg-type]
    env["SPARK_MASTER"] = config.load(env).cluster_master_url
    cluster_cfg = config.load(env)
    start_cluster(cluster_cfg)
    try:
        yield cluster_cfg, env
    finally:
        stop_cluster(cluster_cfg)


def test_ingest_dbt_and_scorer_run_on_two_workers_with_exact_reconciliation(
    spark, cluster, kafka, mlflow_uri, tmp_topic, sample_csv, tmp_path
):
    cluster_cfg, env = cluster
    workers = [svc for svc in cluster_services(cluster_cfg) if isinstance(svc, SparkWorker)]
    assert len(workers) == 2
    payloads = sample_payloads(sample_csv) + BAD
    create_topic(kafka, tmp_topic, partitions=2)
    send_raw(kafka, tmp_topic, payloads)

    # The SQL server starts (a second application on the cluster) while the ingest runs.
    sql = services.all_services(cluster_cfg)["sql"]
    server_start = threading.Thread(target=sql.start)
    server_start.start()
    try:
        events_dir = tmp_path / "eventlog"
        events_dir.mkdir()
        ingest = subprocess.run(
            [sys.executable, "-m", "streaming.ingest", "--topic", tmp_topic, "--available-now"],
            cwd=config.REPO_ROOT,
            env={**env, "PYSPARK_SUBMIT_ARGS": _event_log_args(events_dir)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]
        server_start.join()
        assert sql.pid() is not None, f"the SQL server did not start on the cluster; see {sql.log_file}"

        # 1. The ingest ran tasks on both workers' executors, which had fetched the jars shipped by spark.jars.
        (log,) = [p for p in events_dir.iterdir() if p.name.startswith("app-")]
        ingest_app = log.name.removesuffix(".inprogress")
        assert set(_tasks_by_worker(log)) == {w.ui_url for w in workers}, _tasks_by_worker(log)
        for worker in workers:
            _assert_jars_fetched(worker, ingest_app, cluster_cfg)

        # 2. Every Kafka record is in bronze or quarantine once.
        reports = reconcile.reconcile(spark, cluster_cfg, tmp_topic)
        assert all(r.ok for r in reports), reports
        assert (sum(r.bronze for r in reports), sum(r.quarantine for r in reports)) == (len(payloads) - len(BAD), len(BAD))

        # 3. dbt builds the models and runs their tests through the SQL server, whose executors are on both workers.
        build = ["build", "--select", MODELS, "--indirect-selection", "cautious"]
        dbt = subprocess.run(
            [
                str(config.REPO_ROOT / ".venv" / "bin" / "dbt"),
                *build,
                "--target-path",
                str(tmp_path / "target"),
                "--log-path",
                str(tmp_path / "logs"),
            ],
            cwd=config.REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert dbt.returncode == 0, dbt.stdout[-4000:]
        assert re.search(r"PASS=(\d+)", dbt.stdout) and "ERROR=0" in dbt.stdout, dbt.stdout[-2000:]
        tasks = _server_tasks_by_worker(cluster_cfg)
        assert set(tasks) == {w.ui_url for w in workers}, tasks

        # 4. The staging model on the cluster holds each distinct event of bronze once (exact duplicates are one event).
        from lakehouse.spark import connect_session

        staged = connect_session("test-cluster", cluster_cfg).table("analytics.stg_bronze__events").count()
        bronze = spark.read.format("delta").load(str(BronzePaths.from_config(cluster_cfg).events))
        assert staged == bronze.filter(F.col("kafka_topic") == tmp_topic).select(*CSV_COLUMNS).distinct().count() > 600

        # 5. The scorer runs on the cluster too: its Kafka reads are executor tasks, and its predictions land.
        _scores_on_the_cluster(spark, cluster_cfg, env, mlflow_uri, tmp_topic, tmp_path, {w.ui_url for w in workers})
    finally:
        from lakehouse.spark import close_connect_sessions

        server_start.join()
        close_connect_sessions()
        sql.stop()


def _scores_on_the_cluster(
    spark, cluster_cfg: config.Config, env: dict[str, str], mlflow_uri: str, topic: str, tmp_path: Path, workers: set[str]
) -> None:
    register_models(mlflow_uri, synthetic_events(n_users=30, days=1, seed=1), seed=0)
    events_dir = tmp_path / "scorer-eventlog"
    events_dir.mkdir()
    scorer_env = {
        **env,
        "PYSPARK_SUBMIT_ARGS": _event_log_args(events_dir),
        "SCORER_STARTING_OFFSETS": "earliest",
        "SCORER_TRIGGER_SECONDS": "1",
    }
    scorer = start_module("streaming.scorer", ["--topic", topic], tmp_path / "scorer.log", env=scorer_env)
    try:
        wait_for(
            lambda: status_path(cluster_cfg, topic).exists(), timeout=300, what=f"the scorer's first batch (see {tmp_path / 'scorer.log'})"
        )
        table = str(predictions_path(cluster_cfg))
        wait_for(lambda: spark.read.format("delta").load(table).count() > 0, timeout=120, what="predictions from the cluster")
    finally:
        terminate(scorer)
    (log,) = [p for p in events_dir.iterdir() if p.name.startswith("app-")]
    assert set(_tasks_by_worker(log)) <= workers and _tasks_by_worker(log), _tasks_by_worker(log)


def _event_log_args(folder: Path) -> str:
    """spark-submit arguments of a driver that keeps its event log (what Spark's history server serves) in ``folder``."""
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": folder.as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",  # one file, named after the application
    }
    return " ".join(f"--conf {key}={value}" for key, value in conf.items()) + " pyspark-shell"


def _tasks_by_worker(event_log: Path) -> Counter[str]:
    """Successful tasks per worker (by its web UI address, which each executor's log links name)."""
    worker_of: dict[str, str] = {}
    done: Counter[str] = Counter()
    for line in event_log.read_text().splitlines():
        event = json.loads(line)
        if event["Event"] == "SparkListenerExecutorAdded":
            worker_of[event["Executor ID"]] = _worker_ui(event["Executor Info"]["Log Urls"]["stdout"])
        elif event["Event"] == "SparkListenerTaskEnd" and event["Task End Reason"]["Reason"] == "Success":
            done[worker_of[event["Task Info"]["Executor ID"]]] += 1
    return done


def _server_tasks_by_worker(cfg: config.Config) -> Counter[str]:
    """Completed tasks per worker of the SQL server's executors, from its Spark UI's REST API."""
    base = f"http://127.0.0.1:{cfg['SQL_SERVER_UI_PORT']}/api/v1/applications"
    (app,) = _get(base)
    done: Counter[str] = Counter()
    for executor in _get(f"{base}/{app['id']}/executors"):
        if executor["id"] != "driver" and executor["completedTasks"] > 0:
            done[_worker_ui(executor["executorLogs"]["stdout"])] += executor["completedTasks"]
    return done


def _worker_ui(log_url: str) -> str:
    """`http://127.0.0.1:8081/logPage/?appId=...` -> `http://127.0.0.1:8081`."""
    match = re.match(r"(https?://[^/]+)/", log_url)
    assert match, log_url
    return match.group(1)


def _get(url: str) -> list[dict]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def _assert_jars_fetched(worker: SparkWorker, app_id: str, cfg: config.Config) -> None:
    """The executor's work folder holds the Delta and Kafka-connector jars, and its command line does not name them.

    Standalone executors start with Spark's own jars only; the driver serves ``spark.jars``
    and each executor fetches them into its folder, as on a cluster of machines.
    """
    executor_dirs = [p for p in (worker.work_dir / app_id).iterdir() if p.is_dir()]
    assert executor_dirs, f"no executor of {app_id} on {worker.name}"
    for executor_dir in executor_dirs:
        fetched = {p.name for p in executor_dir.glob("*.jar")}
        assert any(n.startswith("delta-spark") for n in fetched) and any(n.startswith("spark-sql-kafka") for n in fetched), fetched
        command = (executor_dir / "stderr").read_text().split("\n", 1)[0]
        assert command.startswith("Spark Executor Command:") and str(cfg.spark_jars_dir) not in command, command
