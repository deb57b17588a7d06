"""Every configuration value of the project, read from environment variables.

This is the only module that reads the environment. Each setting has a documented
default that makes the embedded one-machine stack work with no variables set; a
setting pointing at an external deployment (``KAFKA_BOOTSTRAP_SERVERS``,
``MONGO_URI``, ``MLFLOW_TRACKING_URI``, ``SPARK_MASTER``) switches the project
from the embedded service to that deployment. ``python -m lakehouse.config``
prints the table that the README carries, so docs and code cannot drift apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text) and meaning."""

    name: str
    default: str
    help: str
    parse: Callable[[str], object] = str


def _path(value: str) -> Path:
    """Resolve relative paths against the repository root, not the caller's cwd."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def _catalog(value: str) -> str:
    if value not in ("server", "embedded"):
        raise ValueError("expected `server` or `embedded`")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("LAKEHOUSE_DIR", "lakehouse-data", "Root folder of Delta tables, checkpoints, the metastore and embedded service data.", _path),
    Setting("LAKEHOUSE_DEPS_DIR", ".deps", "Where setup puts the Maven jars (Spark, Kafka) and the FerretDB binary.", _path),
    Setting("SPARK_MASTER", "local[2]", "Spark master URL; `spark://host:7077`, `yarn` or `k8s://...` for a cluster."),
    Setting("SPARK_DRIVER_MEMORY", "4g", "Driver heap for local Spark (the only JVM in `local` mode)."),
    Setting("SPARK_SHUFFLE_PARTITIONS", "4", "`spark.sql.shuffle.partitions`; small on 2 cores, raise on a cluster.", int),
    Setting("KAFKA_BOOTSTRAP_SERVERS", "", "An existing Kafka cluster; empty means the embedded broker on 127.0.0.1:`KAFKA_PORT`."),
    Setting("KAFKA_PORT", "19092", "Client port of the embedded Kafka broker.", int),
    Setting("KAFKA_CONTROLLER_PORT", "19093", "KRaft controller port of the embedded Kafka broker.", int),
    Setting("KAFKA_TOPIC", "events", "Topic the producer writes and the ingest and scorer read."),
    Setting("KAFKA_PARTITIONS", "2", "Partitions of the events topic when the producer creates it.", int),
    Setting("KAFKA_HEAP", "512m", "Heap of the embedded Kafka broker JVM."),
    Setting(
        "KAFKA_RETENTION_HOURS",
        "168",
        "Retention of the events topic when the producer creates it; an erased user's records leave Kafka after it. -1 keeps them forever.",
        float,
    ),
    Setting(
        "MONGO_URI", "", "An existing MongoDB 6+ (or wire-compatible) server; empty means embedded FerretDB on 127.0.0.1:`MONGO_PORT`."
    ),
    Setting("MONGO_PORT", "27018", "Port of the embedded FerretDB.", int),
    Setting("MONGO_DB", "clickstream", "Database holding the session mirror."),
    Setting("MLFLOW_TRACKING_URI", "", "An existing MLflow tracking server; empty means the embedded server on 127.0.0.1:`MLFLOW_PORT`."),
    Setting("MLFLOW_PORT", "15000", "Port of the embedded MLflow tracking server.", int),
    Setting(
        "LAKEHOUSE_CATALOG",
        "server",
        "Who opens the catalog: `server` (dbt over Thrift and Python clients over Spark Connect, to the lakehouse SQL server) "
        "or `embedded` (each process opens the Derby catalog itself, one process at a time; dbt's `session` target).",
        _catalog,
    ),
    Setting(
        "SQL_SERVER_THRIFT_PORT", "10000", "Thrift (HiveServer2/JDBC) port of the lakehouse SQL server: dbt, `beeline`, BI tools.", int
    ),
    Setting(
        "SQL_SERVER_CONNECT_PORT",
        "15002",
        "Spark Connect port of the lakehouse SQL server: the SQL command, figures, notebooks, training.",
        int,
    ),
    Setting("SQL_SERVER_UI_PORT", "4040", "Spark UI port of the lakehouse SQL server.", int),
    Setting("INGEST_TRIGGER_SECONDS", "5", "Micro-batch trigger interval of the streaming ingest.", int),
    Setting(
        "INGEST_MAX_OFFSETS_PER_TRIGGER",
        "1000000",
        "Upper bound of Kafka records read per micro-batch (bigger batches amortise the two Delta commits each batch costs).",
        int,
    ),
    Setting("INGEST_STARTING_OFFSETS", "earliest", "Where a new ingest query starts: `earliest` or `latest`."),
    Setting("SCORER_TRIGGER_SECONDS", "1", "Micro-batch trigger interval of the streaming scorer (seconds, may be fractional).", float),
    Setting("SCORER_MAX_OFFSETS_PER_TRIGGER", "50000", "Upper bound of Kafka records the scorer reads per micro-batch.", int),
    Setting("SCORER_STARTING_OFFSETS", "latest", "Where a new scorer query starts: `earliest` or `latest`."),
    Setting("SCORER_MODEL_REFRESH_SECONDS", "30", "How often the scorer checks the registry for a new `champion`.", int),
    Setting("SCORER_HISTORY_REFRESH_SECONDS", "600", "How often the scorer reloads user/product/category history from bronze.", int),
    Setting(
        "SCORER_STATE_TIMEOUT_MINUTES",
        "30",
        "A session idle this long (processing time) leaves the scorer's state; a restart reads this much Kafka back to rebuild it.",
        int,
    ),
    Setting("PREDICTION_HISTORY_CAP", "20", "Predictions kept in each MongoDB session document's history.", int),
    Setting(
        "ERASURE_VACUUM_RETAIN_HOURS",
        "1",
        "VACUUM retention of erasure: longer than any commit of a running stream takes; the erased rows' old files go at the first VACUUM after it.",
        float,
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Parsed settings plus the paths and URLs derived from them."""

    values: Mapping[str, object] = field(repr=False)

    def __getitem__(self, name: str) -> object:
        return self.values[name]

    @property
    def lakehouse_dir(self) -> Path:
        return self.values["LAKEHOUSE_DIR"]  # type: ignore[return-value]

    @property
    def deps_dir(self) -> Path:
        return self.values["LAKEHOUSE_DEPS_DIR"]  # type: ignore[return-value]

    @property
    def spark_jars_dir(self) -> Path:
        return self.deps_dir / "jars" / "spark"

    @property
    def kafka_jars_dir(self) -> Path:
        return self.deps_dir / "jars" / "kafka"

    @property
    def ferretdb_binary(self) -> Path:
        return self.deps_dir / "bin" / "ferretdb"

    @property
    def services_dir(self) -> Path:
        """Data, logs and PID files of the embedded services."""
        return self.lakehouse_dir / "_services"

    @property
    def warehouse_dir(self) -> Path:
        return self.lakehouse_dir / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.lakehouse_dir / "metastore_db"

    @property
    def checkpoints_dir(self) -> Path:
        return self.lakehouse_dir / "_checkpoints"

    def table_path(self, layer: str, name: str) -> Path:
        """Location of a path-addressed Delta table (bronze, quarantine, predictions)."""
        return self.lakehouse_dir / layer / name

    @cached_property
    def kafka_bootstrap(self) -> str:
        return str(self.values["KAFKA_BOOTSTRAP_SERVERS"]) or f"127.0.0.1:{self.values['KAFKA_PORT']}"

    @property
    def kafka_embedded(self) -> bool:
        return not self.values["KAFKA_BOOTSTRAP_SERVERS"]

    @cached_property
    def mongo_uri(self) -> str:
        return str(self.values["MONGO_URI"]) or f"mongodb://127.0.0.1:{self.values['MONGO_PORT']}/"

    @property
    def mongo_embedded(self) -> bool:
        return not self.values["MONGO_URI"]

    @cached_property
    def mlflow_uri(self) -> str:
        return str(self.values["MLFLOW_TRACKING_URI"]) or f"http://127.0.0.1:{self.values['MLFLOW_PORT']}"

    @property
    def mlflow_embedded(self) -> bool:
        return not self.values["MLFLOW_TRACKING_URI"]

    @property
    def catalog_on_server(self) -> bool:
        """Whether catalog clients go to the lakehouse SQL server (the default) or open Derby themselves."""
        return self.values["LAKEHOUSE_CATALOG"] == "server"

    @property
    def spark_connect_url(self) -> str:
        return f"sc://127.0.0.1:{self.values['SQL_SERVER_CONNECT_PORT']}"


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Read every setting from ``environ`` (default: the process environment).

    Raises ``ValueError`` naming the variable when a value cannot be parsed, so a
    typo in a port number fails at start-up rather than deep inside a service.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for s in SETTINGS:
        raw = env.get(s.name, s.default)
        try:
            values[s.name] = s.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{s.name}={raw!r} is not valid: {exc}") from exc
    return Config(values)


def get(name: str) -> object:
    """One setting by name, read now (for callers that need a single value)."""
    return load()[_BY_NAME[name].name]


def markdown_table() -> str:
    """The configuration table of the README, generated from ``SETTINGS``."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | `{s.default}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


def main() -> None:
    """Print the configuration table (``--markdown``) or the values in force."""
    import sys

    if "--markdown" in sys.argv:
        print(markdown_table())
        return
    cfg = load()
    for s in SETTINGS:
        print(f"{s.name}={masked(cfg[s.name])}")


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.IGNORECASE)


def masked(value: object) -> str:
    """The value as text with any password in a URL (``mongodb://user:secret@host``) replaced by ``***``.

    Settings are printed for people and pasted into issues; a password must not travel with them.
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(value))


if __name__ == "__main__":
    main()
