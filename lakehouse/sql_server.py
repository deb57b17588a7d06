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

import importlib.util
import os
import sys
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
        "spark.port.maxRetries": "0",  # a taken UI port is an error to report, not a silent move to the next one
        "spark.plugins": CONNECT_PLUGIN,
        # Spark Connect listens on every interface unless told otherwise.
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(cfg["SQL_SERVER_CONNECT_PORT"]),
        # Many clients share one application: a `dbt run` must not hold every core while a query waits.
        "spark.scheduler.mode": "FAIR",
    }


def url(cfg: config.Config) -> str:
    """The JDBC URL of the Thrift endpoint (what `beeline -u` and BI tools take)."""
    return f"jdbc:hive2://127.0.0.1:{cfg['SQL_SERVER_THRIFT_PORT']}/default"


@dataclass(frozen=True)
class SqlServer(Service):
    """HiveThriftServer2 with the Spark Connect plugin, in one Spark application."""

    start_timeout: float = 240.0  # a Spark driver, the Derby catalog and two endpoints; slow on a busy machine

    @property
    def connect_port(self) -> int:
        return int(self.cfg["SQL_SERVER_CONNECT_PORT"])  # type: ignore[arg-type]

    @property
    def ui_port(self) -> int:
        return int(self.cfg["SQL_SERVER_UI_PORT"])  # type: ignore[arg-type]

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
        conf = [arg for key, value in server_conf(self.cfg).items() for arg in ("--conf", f"{key}={value}")]
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
        ]

    def environment(self) -> dict[str, str]:
        # SPARK_LOCAL_IP keeps the Spark UI (which binds to it) and the block manager on loopback.
        return {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "SPARK_HOME": str(pyspark_home())}

    def endpoints(self) -> str:
        return f"thrift {url(self.cfg)}, connect {self.cfg.spark_connect_url}, Spark UI http://127.0.0.1:{self.ui_port}"

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
    typer.echo(
        f"thrift (JDBC):  {url(cfg)}\nspark connect:  {cfg.spark_connect_url}\nspark UI:       http://127.0.0.1:{cfg['SQL_SERVER_UI_PORT']}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
