"""The one Spark session factory: Delta Lake, jars from disk, paths under the lakehouse.

Two kinds of session exist because Spark's embedded Derby metastore admits one
process at a time:

* ``catalog=True`` (SQL queries, notebooks, figures, ML reading marts): the shared
  catalog. By default (``LAKEHOUSE_CATALOG=server``) a Spark Connect session to the
  lakehouse SQL server (``lakehouse.sql_server``), the one process that holds the
  Hive catalog in ``$LAKEHOUSE_DIR/metastore_db``; so any number of clients can
  query while ``dbt run`` (over Thrift, to the same server) builds the marts. With
  ``LAKEHOUSE_CATALOG=embedded`` the process opens that Derby catalog itself.
* ``catalog=False`` (the long-running ingest and scorer streams): a local session
  with an in-memory catalog, Delta tables addressed by path, so they never hold
  the Derby lock and never depend on the SQL server.

``spark_conf()`` is also what ``profiles.yml`` must agree with; a unit test
checks the two are the same, so dbt and Python see one lakehouse.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from lakehouse import config

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class MissingJarsError(RuntimeError):
    """Setup has not resolved the Delta / Kafka jars yet."""


def spark_jars(cfg: config.Config) -> list[Path]:
    """The Delta and Kafka-connector jars resolved by ``make setup``."""
    jars = sorted(cfg.spark_jars_dir.glob("*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise MissingJarsError(f"Delta Lake jars not found in {cfg.spark_jars_dir}; run `make setup` first.")
    return jars


def spark_conf(cfg: config.Config | None = None, *, catalog: bool = True) -> dict[str, str]:
    """Spark settings for this lakehouse, as plain strings (also used by profiles.yml)."""
    cfg = cfg or config.load()
    conf = {
        "spark.master": str(cfg["SPARK_MASTER"]),
        "spark.driver.memory": str(cfg["SPARK_DRIVER_MEMORY"]),
        # A classpath wildcard (not spark.jars) so that profiles.yml can name the same folder.
        "spark.driver.extraClassPath": f"{cfg.spark_jars_dir}/*",
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.warehouse.dir": str(cfg.warehouse_dir),
        "spark.sql.shuffle.partitions": str(cfg["SPARK_SHUFFLE_PARTITIONS"]),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "false",  # dbt-spark forces this; Python sessions match it
        "spark.sql.adaptive.enabled": "true",
        # Timestamps as Parquet INT64 microseconds, not Spark's default INT96 (a legacy
        # Impala type): every INT96 value read is converted through a byte buffer, one of
        # the largest costs in a CPU profile of an incremental `dbt run`. Files written
        # before keep INT96 and read as before.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # Delta rebuilds table state with 50 tasks by default: on 2 cores that is most of a small batch.
        "spark.databricks.delta.snapshotPartitions": str(cfg["SPARK_SHUFFLE_PARTITIONS"]),
        # File listings (Delta's VACUUM, partition discovery) run as a job of this many tasks, not
        # Spark's default 10,000, which made a VACUUM of a small table mostly task overhead.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(cfg["SPARK_SHUFFLE_PARTITIONS"]),
        # Spark compiles generated Java for each plan and keeps the compiled classes in a cache
        # of 100 by default. One `dbt run` generates several hundred distinct classes, so a
        # long-lived SQL server compiled most of them again on every run, inside each task too
        # (janino was the largest CPU cost in a profile of a next-day run). A cache that holds a
        # whole run's classes makes the next run reuse them.
        "spark.sql.codegen.cache.maxEntries": "2000",
        # Whole-stage code generation is turned off for plans with more than 100 fields (nested
        # ones counted), which includes every read of a Delta log's actions; those ran as one
        # interpreted operator after another. Above 1,000 it still stays off.
        "spark.sql.codegen.maxFields": "1000",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",  # erasure lowers it for its own VACUUM only
        # Local disk only: Hadoop's file:// client keeps a hidden .crc beside every file it
        # writes and refuses to read a file whose .crc disagrees. The predictions table is
        # also written by delta-rs (streaming.predictions), which rewrites _delta_log/
        # _last_checkpoint without that sidecar; a new Spark reader then failed with
        # "ChecksumException". Parquet and Delta keep their own checksums, so read raw.
        "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={cfg.lakehouse_dir}/derby.log -Duser.timezone=UTC",
    }
    if cfg.spark_on_cluster:
        conf.update(cluster_conf(cfg))
    if catalog:
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = f"jdbc:derby:;databaseName={cfg.metastore_dir};create=true"
    else:
        conf["spark.sql.catalogImplementation"] = "in-memory"
    return conf


def cluster_conf(cfg: config.Config) -> dict[str, str]:
    """What a driver whose executors run elsewhere needs: the jars shipped to them, and a size for each.

    ``spark.driver.extraClassPath`` only reaches the driver's JVM; executors on other
    machines (or other processes: a standalone worker here) get the Delta and Kafka
    connector jars through ``spark.jars``, which the driver serves and each executor
    fetches into its work folder. ``spark.cores.max`` keeps one application (a stream,
    the SQL server) from taking every core a standalone master has, so the others start.
    """
    return {
        "spark.jars": ",".join(str(jar) for jar in spark_jars(cfg)),
        "spark.executor.memory": str(cfg["SPARK_EXECUTOR_MEMORY"]),
        "spark.executor.cores": str(cfg["SPARK_EXECUTOR_CORES"]),
        "spark.cores.max": str(cfg["SPARK_CORES_MAX"]),
        # A job's first stage waits (at most 30 s, Spark's default) for every executor asked for,
        # instead of piling its tasks on the first to register.
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        # Executors keep UTC as the driver does (timestamps are parsed and written on them).
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }


# For drivers that run for days (the streaming ingest and scorer). Even with the UI off,
# Spark's status store keeps up to 1,000 jobs, 1,000 stages and 1,000 SQL executions,
# so a stream's heap grows for its first hours before it levels off; a stream needs
# only the recent ones (its progress is in the logs and the checkpoint).
LONG_RUNNING_CONF: dict[str, str] = {
    "spark.ui.retainedJobs": "50",
    "spark.ui.retainedStages": "50",
    "spark.ui.retainedTasks": "5000",
    "spark.sql.ui.retainedExecutions": "20",
    "spark.ui.dagGraph.retainedRootRDDs": "50",
    "spark.sql.streaming.ui.retainedQueries": "10",
    "spark.sql.streaming.ui.retainedProgressUpdates": "50",
    "spark.sql.streaming.numRecentProgressUpdates": "20",
}


def driver_conf(cfg: config.Config, *, catalog: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A job's own Spark driver's settings: the lakehouse's, ``extra``, and the SQL server's class archive mapped if written.

    Every job is a new driver JVM; the archive spares it loading and verifying Spark's
    and Delta's classes again (`lakehouse.sql_server.class_archive`).
    """
    from lakehouse.sql_server import class_archive_option

    settings = {**spark_conf(cfg, catalog=catalog), **(extra or {})}
    java = settings.get("spark.driver.extraJavaOptions", "")
    settings["spark.driver.extraJavaOptions"] = f"{java} {class_archive_option(cfg)}".strip()
    return settings


def get_spark(app_name: str = "lakehouse", *, catalog: bool = True, extra: dict[str, str] | None = None, cfg: config.Config | None = None):
    """Create (or return the running) SparkSession configured for the lakehouse.

    ``extra`` adds or overrides settings for one job (e.g. a streaming query's
    state store). Imported lazily so that pure-Python commands start fast.
    A catalog session on the SQL server is a Spark Connect client: it supports the
    DataFrame and SQL API (``sql``, ``table``, ``read``, ``toPandas``), not ``_jvm``
    or ``sparkContext``; code that needs those runs with ``catalog=False``.
    """
    cfg = cfg or config.load()
    if catalog and cfg.catalog_on_server:
        return connect_session(app_name, cfg, extra)
    from pyspark.sql import SparkSession

    spark_jars(cfg)  # fail early with a clear message, not a ClassNotFoundException
    cfg.lakehouse_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name)
    for key, value in driver_conf(cfg, catalog=catalog, extra=extra).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


_CONNECT_SESSIONS: dict[str, object] = {}


def connect_session(app_name: str, cfg: config.Config, extra: dict[str, str] | None = None):
    """A Spark Connect session on the lakehouse SQL server; a clear error naming the start command when it is down.

    Built with the Connect builder itself, not ``SparkSession.builder.remote()``: that
    one marks the whole Python process as a Connect client (SPARK_CONNECT_MODE_ENABLED),
    which would break a local session the same process runs for a stream (the pipeline has both).
    """
    from lakehouse.sql_server import require_running

    require_running(cfg)
    url = cfg.spark_connect_url
    session = _CONNECT_SESSIONS.get(url)
    if session is None or session.is_stopped:  # type: ignore[attr-defined]
        session = new_connect_session(app_name, cfg)
        _CONNECT_SESSIONS[url] = session
    for key, value in (extra or {}).items():
        session.conf.set(key, value)  # type: ignore[attr-defined]
    return session


def new_connect_session(app_name: str, cfg: config.Config):
    """A Spark Connect session of its own (not this process's shared one); the caller stops it."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    # user_agent names the client in the server's log and UI (ASCII letters, digits, ._-).
    agent = re.sub(r"[^A-Za-z0-9._-]", "_", app_name)
    return ConnectSession.builder.remote(f"{cfg.spark_connect_url}/;user_agent={agent}").create()


def close_connect_sessions() -> None:
    """End this process's Spark Connect sessions; call it before stopping the SQL server they talk to.

    A client left open when its server stops keeps retrying it from a background
    thread, and the Python process then does not exit (a pipeline run hung at its end that way).
    """
    for session in _CONNECT_SESSIONS.values():
        with contextlib.suppress(Exception):  # a server already gone: nothing left to end
            session.stop()  # type: ignore[attr-defined]
    _CONNECT_SESSIONS.clear()


_NOT_A_TABLE = {"PATH_NOT_FOUND", "DELTA_TABLE_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE"}


def read_delta(spark, path: Path | str):
    """The Delta table at ``path`` as a DataFrame, or None while it has no first commit.

    Not ``DeltaTable.isDeltaTable``: that answers from the session's cached snapshot,
    so a path first looked at before another process's first commit stays "not a
    table" for the life of the JVM (a reconcile in the test process once counted 0
    bronze rows that way). A read refreshes the snapshot. Not a check for a
    ``_delta_log`` folder either: Delta creates it before the first commit lands.
    """
    from pyspark.errors import AnalysisException

    try:
        return spark.read.format("delta").load(str(path))
    except AnalysisException as exc:
        if exc.getCondition() in _NOT_A_TABLE:
            return None
        raise


def _python() -> str:
    import sys

    return sys.executable
