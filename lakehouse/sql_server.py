"""The lakehouse SQL server: one long-running Spark application that owns the catalog.

Spark's embedded Derby metastore admits one process at a time, so instead of every
client opening it, one Spark application opens it and serves it two ways:

* the Spark Thrift Server (HiveServer2 protocol: dbt's ``thrift`` method, ``beeline``,
  JDBC/ODBC BI tools) on ``SQL_SERVER_THRIFT_PORT``;
* Spark Connect, as a plugin of the same application, for Python clients (the SQL
  command, figures, notebooks, training) on ``SQL_SERVER_CONNECT_PORT``.

Both, the jar of each and ``beeline`` ship in the pinned ``pyspark`` package, so it
starts from that package's ``bin/spark-submit`` with the lakehouse's one Spark
configuration (``lakehouse.spark.spark_conf``). Everything binds to 127.0.0.1.
Started, checked and stopped by ``python -m lakehouse.services ... sql``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import typer

from lakehouse import config
from lakehouse.services import Service, ServiceError, port_open, require_java

_LOG4J2 = Path(__file__).with_name("sql-server-log4j2.properties")
THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"


class SqlServerDown(ServiceError):
    """A catalog client found no SQL server to talk to."""


def pyspark_home() -> Path:
    """The installed ``pyspark`` package: its ``bin/`` and ``jars/`` are a Spark distribution."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ServiceError("pyspark is not installed; run `make setup`.")
    return Path(spec.origin).parent


def server_conf(cfg: config.Config) -> dict[str, str]:
    """The lakehouse's Spark settings plus what a server needs: its UI, Connect, fair sharing, bounded history."""
    from lakehouse.spark import LONG_RUNNING_CONF, spark_conf

    conf = spark_conf(cfg, catalog=True)
    return {
        **conf,
        **LONG_RUNNING_CONF,
        "spark.driver.extraJavaOptions": f"{conf['spark.driver.extraJavaOptions']} -Dlog4j2.configurationFile={_LOG4J2}",
        "spark.app.name": "lakehouse-sql-server",
        "spark.ui.enabled": "true",
        "spark.ui.port": str(cfg["SQL_SERVER_UI_PORT"]),
        "spark.ui.retainedStages": str(cfg["SQL_SERVER_UI_RETAINED_STAGES"]),
        "spark.port.maxRetries": "0",  # a taken UI port is an error to report, not a silent move to the next one
        "spark.plugins": CONNECT_PLUGIN,
        # Spark Connect listens on every interface unless told otherwise.
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(cfg["SQL_SERVER_CONNECT_PORT"]),
        # Many clients share one application: a `dbt run` must not hold every core while a query waits.
        "spark.scheduler.mode": "FAIR",
        # Thrift runs every statement with java.time dates (spark.sql.datetime.java8API.enabled),
        # and Delta's answer from file statistics to min()/max() of a date column casts them to
        # java.sql.Date: `select max(session_date) from ...` failed with a ClassCastException
        # (delta-io/delta#4201). Off, such a query scans the column instead.
        "spark.databricks.delta.optimizeMetadataQuery.enabled": "false",
    }


def classpath_key(cfg: config.Config) -> str:
    """A short digest of the Java and the jars a server JVM runs: a class archive is valid for these only.

    The jars by path, not only by name: the JVM records the class path an archive was
    written with and refuses the archive once an entry is missing, so a checkout that was
    moved, or a second one sharing this `.deps` folder, must write an archive of its own.
    """
    java = shutil.which("java") or "java"
    jars = [*sorted(cfg.spark_jars_dir.glob("*.jar")), *sorted((pyspark_home() / "jars").glob("*.jar"))]
    digest = hashlib.sha256(os.path.realpath(java).encode())
    for jar in jars:
        stat = jar.stat()
        digest.update(f"{jar.absolute()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# Class archives kept in `.deps/class-archives` (each some 250 MB): this checkout's and one other's.
KEPT_CLASS_ARCHIVES = 2
# Statements that run at once on the Thrift endpoint (Hive's default is 100); more wait in
# its queue. Four times dbt's default threads (8) leaves room for queries while `dbt run` works, and
# two cores are busy long before 32 Spark jobs run side by side.
STATEMENT_THREADS = 32


def class_archive(cfg: config.Config) -> Path:
    """The Spark driver JVMs' class-data archive (AppCDS) for this Java and these jars, shared by every lakehouse of the checkout.

    Why: a just-started Spark driver spends seconds loading and verifying the classes of
    Spark, Hive, Delta and Derby. Java 17 can write the classes a run loaded into an
    archive when the JVM exits (``-XX:ArchiveClassesAtExit``) and map them at the next
    start (``-XX:SharedArchiveFile``). The SQL server writes it at its first clean stop
    (`SqlServer`); every later server and every driver a job starts (`lakehouse.spark.get_spark`:
    the ingest, the scorer, the backfill, reconciliation) maps it, since pyspark's
    spark-submit starts them all with this class path. It is only valid for the Java and
    the jars that wrote it, hence a name keyed on both; with ``-Xshare:auto`` a JVM that
    finds it unusable starts without it. The README's Benchmarks table has the figures
    (``bench/bench_sql_start.py``).
    """
    return cfg.deps_dir / "class-archives" / f"sql-server-{classpath_key(cfg)}.jsa"


def class_archive_option(cfg: config.Config) -> str:
    """The JVM options that map the class archive, once the server has written one (see `class_archive`)."""
    archive = class_archive(cfg)  # a digest of every jar's metadata: computed once here
    return f"-XX:SharedArchiveFile={archive} -Xshare:auto" if archive.exists() else ""


def url(cfg: config.Config) -> str:
    """The JDBC URL of the Thrift endpoint (what `beeline -u` and BI tools take)."""
    return f"jdbc:hive2://127.0.0.1:{cfg['SQL_SERVER_THRIFT_PORT']}/default"


@contextlib.contextmanager
def thrift_cursor(cfg: config.Config):
    """A DB-API cursor on the server's Thrift endpoint (PyHive), closed with its connection on exit."""
    from pyhive import hive

    with hive.connect("127.0.0.1", port=int(cfg["SQL_SERVER_THRIFT_PORT"])) as conn:  # type: ignore[arg-type]
        yield conn.cursor()


def ui_url(cfg: config.Config) -> str:
    """The server's Spark UI (and its REST API under `/api/v1`)."""
    return f"http://127.0.0.1:{cfg['SQL_SERVER_UI_PORT']}"


@dataclass(frozen=True)
class SqlServer(Service):
    """HiveThriftServer2 with the Spark Connect plugin, in one Spark application."""

    start_timeout: float = 240.0  # a Spark driver, the Derby catalog and two endpoints; slow on a busy machine
    archive_timeout: float = 180.0  # a stop that writes the class archive: the JVM writes it on its way out

    @property
    def class_archive(self) -> Path:
        """The class archive this server maps, or writes at its first clean stop (see the module's `class_archive`)."""
        return class_archive(self.cfg)

    @property
    def _archive_pending(self) -> Path:
        """Names the file this run's JVM writes its archive to at exit, while the shared one does not exist yet."""
        return self.home / "class-archive-pending"

    def prepare(self) -> None:
        if self._archive_pending.exists():  # a server that ended without `stop`: what it was writing is partial, or never came
            Path(self._archive_pending.read_text()).unlink(missing_ok=True)
            self._archive_pending.unlink()
        archive = self.class_archive
        if not archive.exists():
            # A name of its own (the archive's, then a random part): two servers of two lakehouses
            # may be writing one at the same time; `stopped` renames it to the archive's name.
            archive.parent.mkdir(parents=True, exist_ok=True)
            self._archive_pending.write_text(str(archive.with_name(f"{archive.name}.{uuid.uuid4().hex}.tmp")))

    def class_archive_options(self) -> str:
        """The JVM options that write the class archive at exit, or map it (see `class_archive`)."""
        if self._archive_pending.exists():
            return f"-XX:ArchiveClassesAtExit={self._archive_pending.read_text()}"
        return class_archive_option(self.cfg)

    def stop_timeout(self) -> float:
        return self.archive_timeout if self._archive_pending.exists() else super().stop_timeout()

    def stopped(self, cleanly: bool) -> None:
        """Put the archive the JVM wrote at exit in place, in one rename; a killed JVM's partial file is deleted."""
        if not self._archive_pending.exists():
            return
        written = Path(self._archive_pending.read_text())
        if cleanly and written.exists() and written.stat().st_size > 0:
            # the name `prepare` keyed on the jars this JVM started with, the random part and ".tmp" dropped
            os.replace(written, written.with_name(written.name.rsplit(".", 2)[0]))
            # Archives of other jars, Java or paths: the newest other one stays (a second checkout
            # sharing this `.deps`, such as the newcomer test's clone, keeps its own), older ones go.
            by_age = sorted(written.parent.glob("sql-server-*.jsa"), key=lambda a: a.stat().st_mtime_ns, reverse=True)
            for older in by_age[KEPT_CLASS_ARCHIVES:]:
                older.unlink(missing_ok=True)
        else:
            written.unlink(missing_ok=True)
        self._archive_pending.unlink(missing_ok=True)

    @property
    def connect_port(self) -> int:
        return int(self.cfg["SQL_SERVER_CONNECT_PORT"])  # type: ignore[arg-type]

    @property
    def workdir(self) -> Path:
        # The driver's working folder is the project root, as for dbt's `session` target: the bronze
        # registration resolves a relative LAKEHOUSE_DIR against it (dbt_project/macros/bronze_tables.sql).
        return config.REPO_ROOT

    def check_installed(self) -> None:
        from lakehouse.spark import spark_jars

        require_java()
        spark_jars(self.cfg)
        if not (pyspark_home() / "bin" / "spark-submit").exists():
            raise ServiceError(f"spark-submit not found in {pyspark_home()}/bin; reinstall pyspark with `make setup`.")

    def command(self) -> list[str]:
        settings = server_conf(self.cfg)
        settings["spark.driver.extraJavaOptions"] = f"{settings['spark.driver.extraJavaOptions']} {self.class_archive_options()}".rstrip()
        conf = [arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")]
        return [
            str(pyspark_home() / "bin" / "spark-submit"),
            "--class",
            THRIFT_SERVER_CLASS,
            *conf,
            "spark-internal",
            "--hiveconf",
            "hive.server2.thrift.bind.host=127.0.0.1",
            "--hiveconf",
            f"hive.server2.thrift.port={self.port}",
            "--hiveconf",  # per-query logs of Thrift sessions: with the server's, not in the system temp folder
            f"hive.server2.logging.operation.log.location={self.home / 'operation_logs'}",
            # Statements run on a pool whose idle threads end after 10 s by default, and each new
            # thread opens its own metastore connection (a fresh HiveConf, parsed from XML). A
            # `dbt run` waits on dbt between statements, so nearly every statement paid for a new
            # thread. A pool whose threads stay keeps those connections.
            "--hiveconf",
            f"hive.server2.async.exec.threads={STATEMENT_THREADS}",
            "--hiveconf",
            "hive.server2.async.exec.keepalive.time=86400",
        ]

    def environment(self) -> dict[str, str]:
        # SPARK_LOCAL_IP keeps the Spark UI (which binds to it) and the block manager on loopback.
        return {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "SPARK_HOME": str(pyspark_home())}

    def endpoints(self) -> str:
        return f"thrift {url(self.cfg)}, connect {self.cfg.spark_connect_url}, Spark UI {ui_url(self.cfg)}"

    def answering(self) -> bool:
        """Anything on either port means the server (or a stranger) is there."""
        return port_open(self.port) or port_open(self.connect_port)

    def ready(self) -> bool:
        """Both endpoints open: the Thrift port opens last, after the catalog and Connect are up."""
        return port_open(self.port) and port_open(self.connect_port)


def require_running(cfg: config.Config) -> None:
    """Fail with how to start it when no SQL server answers (instead of a gRPC retry loop)."""
    if not port_open(int(cfg["SQL_SERVER_CONNECT_PORT"])):  # type: ignore[arg-type]
        raise SqlServerDown(
            f"The lakehouse SQL server is not running (nothing answers on 127.0.0.1:{cfg['SQL_SERVER_CONNECT_PORT']}). "
            "Start it with `python -m lakehouse.services start sql` (or set LAKEHOUSE_CATALOG=embedded to open the catalog in this process, "
            "one process at a time)."
        )


app = typer.Typer(help="The lakehouse SQL server's clients: beeline on its Thrift endpoint.", no_args_is_help=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def beeline(ctx: typer.Context) -> None:
    """Run the `beeline` shipped in the pyspark package against the server, e.g. `beeline -e "show tables in analytics"`."""
    cfg = config.load()
    try:
        require_running(cfg)
    except SqlServerDown as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    program = pyspark_home() / "bin" / "beeline"
    os.execv(program, [str(program), "-u", url(cfg), *ctx.args])


@app.command()
def endpoints() -> None:
    """Print the JDBC URL, the Spark Connect URL and the Spark UI of the server."""
    cfg = config.load()
    typer.echo(f"thrift (JDBC):  {url(cfg)}\nspark connect:  {cfg.spark_connect_url}\nspark UI:       {ui_url(cfg)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
