"""Every configuration value of the project, read from environment variables.

This is the only module that reads the environment. Each setting has a documented
default that makes the embedded one-machine stack work with no variables set; a
setting pointing at an external deployment (``KAFKA_BOOTSTRAP_SERVERS``,
``MONGO_URI``, ``MLFLOW_TRACKING_URI``, ``SPARK_MASTER``) switches the project
from the embedded service to that deployment. ``python -m lakehouse.config``
prints the table that the README carries, so docs and code cannot drift apart.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lakehouse import credentials

REPO_ROOT = Path(__file__).resolve().parent.parent
# The local Kafka cluster of `lakehouse.cluster`: three brokers, so that a topic with three
# replicas and `min.insync.replicas=2` keeps taking writes with one broker down.
KAFKA_CLUSTER_BROKERS = 3


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text) and meaning."""

    name: str
    default: str
    help: str
    parse: Callable[[str], object] = str
    secret: bool = False  # printed as *** by `python -m lakehouse.config`


def _path(value: str) -> Path:
    """Resolve relative paths against the repository root, not the caller's cwd."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def _optional_int(value: str) -> int | None:
    """An integer, or None for an empty value (the setting then defers to the server's own default)."""
    return int(value) if value.strip() else None


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
    Setting("SPARK_EXECUTOR_MEMORY", "1g", "Heap of each executor on a cluster (`spark://`, `yarn`, `k8s://`); unused in `local` mode."),
    Setting("SPARK_EXECUTOR_CORES", "1", "Cores of each executor on a cluster; unused in `local` mode.", int),
    Setting(
        "SPARK_CORES_MAX",
        "2",
        "Cores one application takes on a standalone cluster at most, so the streams, the SQL server and training share it.",
        int,
    ),
    Setting("SPARK_CLUSTER_MASTER_PORT", "7077", "Port of the standalone Spark master `python -m lakehouse.cluster start` runs.", int),
    Setting("SPARK_CLUSTER_UI_PORT", "8080", "Web UI (and `/json` status) port of that standalone master.", int),
    Setting("SPARK_CLUSTER_WORKERS", "2", "Workers `python -m lakehouse.cluster start` runs.", int),
    Setting(
        "SPARK_CLUSTER_WORKER_UI_PORT",
        "8081",
        "Web UI port of the first standalone worker; the next ones take the ports after it.",
        int,
    ),
    Setting("SPARK_CLUSTER_WORKER_CORES", "3", "Cores each standalone worker offers (slots; may exceed the machine's).", int),
    Setting("SPARK_CLUSTER_WORKER_MEMORY", "3g", "Memory each standalone worker offers its executors."),
    Setting(
        "KAFKA_BOOTSTRAP_SERVERS",
        "",
        "An existing Kafka cluster; empty means the embedded broker on 127.0.0.1:`KAFKA_PORT`. The three brokers of "
        "`python -m lakehouse.cluster start` (what it prints) log clients in with the generated login, like the embedded one.",
    ),
    Setting("KAFKA_PORT", "19092", "Client port of the embedded Kafka broker.", int),
    Setting("KAFKA_CONTROLLER_PORT", "19093", "KRaft controller port of the embedded Kafka broker.", int),
    Setting(
        "KAFKA_CLUSTER_PORT",
        "19192",
        "Client port of the first of the three Kafka brokers `python -m lakehouse.cluster start` runs; the others take the next two.",
        int,
    ),
    Setting(
        "KAFKA_CLUSTER_CONTROLLER_PORT",
        "19292",
        "KRaft controller port of the first of those three brokers; the others take the next two.",
        int,
    ),
    Setting("KAFKA_TOPIC", "events", "Topic the producer writes and the ingest and scorer read."),
    Setting("KAFKA_PARTITIONS", "2", "Partitions of the events topic when the producer creates it.", int),
    Setting(
        "KAFKA_REPLICATION_FACTOR",
        "",
        "Replication factor of the events topic when the producer creates it; empty means the brokers' "
        "`default.replication.factor` (1 on the embedded broker, 3 on the three-broker cluster).",
        _optional_int,
    ),
    Setting(
        "KAFKA_MIN_INSYNC_REPLICAS",
        "",
        "`min.insync.replicas` of the events topic when the producer creates it (with `acks=all`, a write needs this many "
        "replicas); empty means the brokers' (1 on the embedded broker, 2 on the three-broker cluster).",
        _optional_int,
    ),
    Setting("KAFKA_HEAP", "512m", "Heap of the embedded Kafka broker JVM."),
    Setting(
        "KAFKA_RETENTION_HOURS",
        "168",
        "Retention of the events topic when the producer creates it; an erased user's records leave Kafka after it. -1 keeps them forever.",
        float,
    ),
    Setting(
        "KAFKA_SECURITY_PROTOCOL",
        "",
        "Security protocol of an external Kafka (`SASL_SSL`, `SASL_PLAINTEXT`, `SSL`, `PLAINTEXT`); empty means `SASL_PLAINTEXT` "
        "when `KAFKA_USERNAME` is set, else `PLAINTEXT`. The embedded broker always takes SASL/PLAIN with its generated login.",
    ),
    Setting(
        "KAFKA_SASL_MECHANISM",
        "PLAIN",
        "SASL mechanism of an external Kafka with `KAFKA_USERNAME`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.",
    ),
    Setting("KAFKA_USERNAME", "", "Login to an external Kafka; the embedded broker's login is generated (see Threat model)."),
    Setting("KAFKA_PASSWORD", "", "Password of `KAFKA_USERNAME` (printed masked).", secret=True),
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
    Setting(
        "SQL_SERVER_UI_RETAINED_STAGES",
        "50",
        "Ended stages the SQL server's UI keeps (a bound, so that a long-running server's memory stays flat); "
        "`bench.bench_dbt` raises it to add up every stage of a dbt run.",
        int,
    ),
    Setting(
        "DBT_THREADS",
        "8",
        "Models and tests dbt runs at once on the SQL server (profiles.yml's `server` target); most of a small query is "
        "fixed cost, so several at once keep both cores busy. More than this project's models that can run at once, so "
        "that none waits in dbt's queue behind models that nothing waits for: the server shares its cores between them.",
        int,
    ),
    Setting("SUPERSET_PORT", "8088", "Port of the embedded Apache Superset serving the dashboards (`make dashboards`).", int),
    Setting("INGEST_TRIGGER_SECONDS", "5", "Micro-batch trigger interval of the streaming ingest.", int),
    Setting(
        "INGEST_MAX_OFFSETS_PER_TRIGGER",
        "1000000",
        "Upper bound of Kafka records read per micro-batch (bigger batches amortise the two Delta commits each batch costs).",
        int,
    ),
    Setting("INGEST_STARTING_OFFSETS", "earliest", "Where a new ingest query starts: `earliest` or `latest`."),
    Setting(
        "SCORER_TRIGGER_SECONDS",
        "0.5",
        "Micro-batch trigger interval of the streaming scorer (seconds, may be fractional); half a second keeps p95 latency under 1 s at 2,000 events/s (README, Benchmarks).",
        float,
    ),
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

    @property
    def credentials_file(self) -> Path:
        """Generated logins of the embedded services (owner-only; see ``lakehouse.credentials``)."""
        return self.services_dir / "credentials.json"

    def embedded_login(self, service: str) -> credentials.Login:
        """The generated login of an embedded service (``kafka``, ``mongo``, ``mlflow``), created on first use."""
        return credentials.login(self.credentials_file, service)

    def _kafka_security(self) -> tuple[str, str, str, str]:
        """Protocol, SASL mechanism, user and password every Kafka client of this configuration uses."""
        if self.kafka_embedded or self.kafka_local_cluster:
            # kafka-python warns at every connection that PLAIN without TLS sends the password in
            # the clear: on loopback that is the documented choice (README, threat model), and the
            # warning would land on the terminal of every command that talks to Kafka.
            logging.getLogger("kafka.net.sasl.plain").setLevel(logging.ERROR)
            login = self.embedded_login("kafka")
            return "SASL_PLAINTEXT", "PLAIN", login.username, login.password
        user = str(self.values["KAFKA_USERNAME"])
        protocol = str(self.values["KAFKA_SECURITY_PROTOCOL"]) or ("SASL_PLAINTEXT" if user else "PLAINTEXT")
        return protocol, str(self.values["KAFKA_SASL_MECHANISM"]), user, str(self.values["KAFKA_PASSWORD"])

    @cached_property
    def kafka_client_options(self) -> dict[str, str]:
        """Keyword arguments that log kafka-python clients (producer, admin, consumers) in; pass them to each."""
        protocol, mechanism, user, password = self._kafka_security()
        if protocol == "PLAINTEXT":
            return {}
        options = {"security_protocol": protocol}
        if protocol.startswith("SASL"):
            options |= {"sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password}
        return options

    @cached_property
    def spark_kafka_options(self) -> dict[str, str]:
        """The same login as options of Spark's Kafka source (``kafka.``-prefixed Kafka client properties)."""
        protocol, mechanism, user, password = self._kafka_security()
        if protocol == "PLAINTEXT":
            return {}
        options = {"kafka.security.protocol": protocol}
        if protocol.startswith("SASL"):
            module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
            jaas = f'org.apache.kafka.common.security.{module} required username="{jaas_quoted(user)}" password="{jaas_quoted(password)}";'
            options |= {"kafka.sasl.mechanism": mechanism, "kafka.sasl.jaas.config": jaas}
        return options

    @cached_property
    def kafka_bootstrap(self) -> str:
        return str(self.values["KAFKA_BOOTSTRAP_SERVERS"]) or f"127.0.0.1:{self.values['KAFKA_PORT']}"

    @property
    def kafka_embedded(self) -> bool:
        return not self.values["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def kafka_cluster_bootstrap(self) -> str:
        """Bootstrap servers of the three brokers `lakehouse.cluster` runs on this machine."""
        first = int(self.values["KAFKA_CLUSTER_PORT"])  # type: ignore[call-overload]
        return ",".join(f"127.0.0.1:{first + i}" for i in range(KAFKA_CLUSTER_BROKERS))

    @property
    def kafka_local_cluster(self) -> bool:
        """Whether clients go to those three brokers (in any order) with no login of their own: then the generated one is theirs."""
        named = {a.strip() for a in str(self.values["KAFKA_BOOTSTRAP_SERVERS"]).split(",") if a.strip()}
        return bool(named) and named <= set(self.kafka_cluster_bootstrap.split(",")) and not self.values["KAFKA_USERNAME"]

    @cached_property
    def mongo_uri(self) -> str:
        """``MONGO_URI``, or the embedded FerretDB's with its generated login (print it through ``masked``)."""
        if not self.mongo_embedded:
            return str(self.values["MONGO_URI"])
        login = self.embedded_login("mongo")
        return f"mongodb://{login.username}:{login.password}@127.0.0.1:{self.values['MONGO_PORT']}/?authSource=admin"

    @property
    def mongo_embedded(self) -> bool:
        return not self.values["MONGO_URI"]

    @cached_property
    def mlflow_uri(self) -> str:
        """``MLFLOW_TRACKING_URI``, or the embedded server's, whose login this hands to MLflow's client.

        MLflow's client library reads a server's login from variables of its own
        (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``) at each request. Setting them where every
        client gets the URI means no client can forget them, subprocesses inherit them, and the
        password stays out of the URI (which MLflow prints in its "View run at" lines).
        An external server's login is MLflow's business: set those two variables yourself.
        """
        if not self.mlflow_embedded:
            return str(self.values["MLFLOW_TRACKING_URI"])
        login = self.embedded_login("mlflow")
        os.environ["MLFLOW_TRACKING_USERNAME"] = login.username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = login.password
        return self._embedded_mlflow_uri

    @property
    def _embedded_mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.values['MLFLOW_PORT']}"

    @property
    def mlflow_embedded(self) -> bool:
        """No ``MLFLOW_TRACKING_URI``, or the embedded server's own.

        MLflow's ``set_tracking_uri`` exports the URI it is given as ``MLFLOW_TRACKING_URI``,
        so a process that has talked to the embedded server finds its URI there; that is
        still the embedded server (its login, its artifact folder), not an external one.
        """
        uri = str(self.values["MLFLOW_TRACKING_URI"]).rstrip("/")
        return not uri or uri == self._embedded_mlflow_uri

    @property
    def catalog_on_server(self) -> bool:
        """Whether catalog clients go to the lakehouse SQL server (the default) or open Derby themselves."""
        return self.values["LAKEHOUSE_CATALOG"] == "server"

    @property
    def spark_on_cluster(self) -> bool:
        """Whether Spark runs executors apart from the driver (anything but `local`), which then need the jars shipped."""
        return not str(self.values["SPARK_MASTER"]).startswith("local")

    @property
    def cluster_master_url(self) -> str:
        """The master URL of the standalone cluster `lakehouse.cluster` runs on this machine."""
        return f"spark://127.0.0.1:{self.values['SPARK_CLUSTER_MASTER_PORT']}"

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
        value = cfg[s.name]
        print(f"{s.name}={'***' if s.secret and value else masked(value)}")
    print(f"# logins of the embedded services: {cfg.credentials_file} (owner-only; never printed)")


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.IGNORECASE)


def jaas_quoted(value: str) -> str:
    """A value quoted inside a JAAS configuration line, where `"` and `\\` are special."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def masked(value: object) -> str:
    """The value as text with any password in a URL (``mongodb://user:secret@host``) replaced by ``***``.

    Settings are printed for people and pasted into issues; a password must not travel with them.
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(value))


if __name__ == "__main__":
    main()
