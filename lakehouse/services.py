"""Start, stop and check the embedded services: Kafka (KRaft), FerretDB, MLflow, the SQL server and Superset.

Each service runs as a detached child process whose PID is kept in
``$LAKEHOUSE_DIR/_services/<name>/pid``; ``start`` is idempotent (a live service
is left alone), waits until the port answers, and fails with a clear message
when the port is taken by something else or a binary is missing, instead of
hanging. Services that the configuration points at an external deployment are
never started. Usage: ``python -m lakehouse.services start|stop|status [NAME...]``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import typer

from lakehouse import config, credentials


class ServiceError(RuntimeError):
    """A service could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Service:
    """How to run one embedded service."""

    name: str
    port: int
    cfg: config.Config
    start_timeout: float = 90.0
    # Services this one talks to while it starts: `start_all` launches it once they answer.
    needs: ClassVar[tuple[str, ...]] = ()

    @property
    def home(self) -> Path:
        return self.cfg.services_dir / self.name

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def workdir(self) -> Path:
        """The folder the service process runs in."""
        return self.home

    def command(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time initialisation before the first start (e.g. format storage)."""

    def environment(self) -> dict[str, str]:
        """Extra environment variables for the service process."""
        return {}

    def check_installed(self) -> None:
        """Raise ServiceError when the program this service needs is missing."""

    # -- state -------------------------------------------------------------
    def pid(self) -> int | None:
        """PID of our running process, or None (stale PID files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def answering(self) -> bool:
        return port_open(self.port)

    def endpoints(self) -> str:
        """Where clients reach it, for `start` and `status` to print."""
        return f"port {self.port}"

    # -- control -----------------------------------------------------------
    def start(self) -> int:
        """Start the service if it is not running; return its PID."""
        pid = self.pid()
        if pid is not None:
            self._wait_ready(pid)
            return pid
        if self.answering():
            raise ServiceError(
                f"{self.name}: port {self.port} on 127.0.0.1 is already in use by another process. "
                f"Stop that process, or choose another port (see `python -m lakehouse.config`)."
            )
        self.check_installed()
        # 0700: the services' data files (SQLite stores, Kafka logs) and the credentials file
        # live here, and a data file readable by others would bypass the services' logins.
        credentials.owner_only_dir(self.cfg.services_dir)
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **self.environment()},
                start_new_session=True,  # survives the caller; stopped by PID
            )
        self.pid_file.write_text(str(proc.pid))
        self._wait_ready(proc.pid)
        return proc.pid

    def _wait_ready(self, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise ServiceError(f"{self.name} exited during start-up; last lines of {self.log_file}:\n{_tail(self.log_file)}")
            if self.answering() and self.ready():
                return
            time.sleep(0.3)
        raise ServiceError(
            f"{self.name} did not answer on port {self.port} within {self.start_timeout:.0f}s; see {self.log_file}:\n{_tail(self.log_file)}"
        )

    def ready(self) -> bool:
        """Service-specific readiness beyond an open port."""
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the service by PID (TERM, then KILL after ``timeout``, default ``stop_timeout()``); return whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + (self.stop_timeout() if timeout is None else timeout)
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        killed = _alive(pid)
        if killed:
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        self.stopped(cleanly=not killed)
        return True

    def stop_timeout(self) -> float:
        """Seconds a stop waits between TERM and KILL."""
        return 30.0

    def stopped(self, cleanly: bool) -> None:
        """After the process is gone: ``cleanly`` if it exited on TERM, not KILL (nothing to do by default)."""


class Kafka(Service):
    """A single-node KRaft broker from the Apache Kafka jars resolved by Maven."""

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def _classpath(self) -> str:
        return str(self.cfg.kafka_jars_dir / "*")

    def check_installed(self) -> None:
        if not list(self.cfg.kafka_jars_dir.glob("kafka_2.13-*.jar")):
            raise ServiceError(f"Kafka jars not found in {self.cfg.kafka_jars_dir}; run `make setup`.")
        require_java()

    def _sasl_lines(self) -> list[str]:
        """SASL/PLAIN on both listeners, with the one generated login as the only user.

        The controller listener too: since KIP-919 an admin client can send config changes
        (a topic's retention, say) straight to a KRaft controller. PLAIN, not SCRAM, because
        its users live in this file, rewritten at every start, so a changed password needs no
        re-format of the storage and a data folder from before logins were added just works.
        """
        login = self.cfg.embedded_login("kafka")
        user, password = config.jaas_quoted(login.username), config.jaas_quoted(login.password)
        jaas = (
            f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{user}" password="{password}" '
            f'user_{user}="{password}";'
        )
        return [
            "sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.client.plain.sasl.jaas.config={jaas}",
            f"listener.name.controller.plain.sasl.jaas.config={jaas}",
        ]

    # -- what a node of a multi-broker cluster (lakehouse.cluster.KafkaNode) sets otherwise --
    node_id = 1

    @property
    def controller_port(self) -> int:
        return int(self.cfg["KAFKA_CONTROLLER_PORT"])  # type: ignore[arg-type]

    def quorum_voters(self) -> str:
        """`controller.quorum.voters`: this node alone."""
        return f"{self.node_id}@127.0.0.1:{self.controller_port}"

    def replication_lines(self) -> list[str]:
        """One broker: the internal topics have one replica (topics inherit Kafka's defaults, 1 and 1)."""
        return [
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
        ]

    def cluster_id(self) -> str:
        """The KRaft cluster id the storage is formatted with: a new one (a cluster of one)."""
        return _kafka_cluster_id()

    def _write_properties(self) -> None:
        controller = self.controller_port
        # Owner-only before the password goes in.
        self.properties_file.touch(mode=0o600)
        self.properties_file.chmod(0o600)
        self.properties_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    f"controller.quorum.voters={self.quorum_voters()}",
                    f"listeners=CLIENT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=CLIENT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=CLIENT",
                    "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
                    *self._sasl_lines(),
                    f"log.dirs={self.data_dir}",
                    f"num.partitions={self.cfg['KAFKA_PARTITIONS']}",
                    *self.replication_lines(),
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "message.max.bytes=2097152",
                    "log.retention.hours=-1",
                    "",
                ]
            )
        )

    def prepare(self) -> None:
        """Write the config and format KRaft storage on the first start only."""
        self._write_properties()
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.cluster_id()
        subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties_file)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _java(self) -> list[str]:
        return [
            "java",
            f"-Xmx{self.cfg['KAFKA_HEAP']}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={_LOG4J2}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp",
            self._classpath(),
        ]

    def command(self) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.properties_file)]

    def client_options(self) -> dict[str, str]:
        """How a client logs in to this broker: the generated login (the configuration's, as the broker is embedded)."""
        return self.cfg.kafka_client_options

    def ready(self) -> bool:
        """The port opens before the broker has a leader; ask for metadata."""
        try:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.port}", request_timeout_ms=3000, **self.client_options())
            try:
                admin.list_topics()
            finally:
                admin.close()
            return True
        except Exception:  # any failure means "not yet"
            return False


class FerretDB(Service):
    """FerretDB 1.x (MongoDB wire protocol) on its SQLite backend."""

    def check_installed(self) -> None:
        if not self.cfg.ferretdb_binary.exists():
            raise ServiceError(f"FerretDB binary not found at {self.cfg.ferretdb_binary}; run `make setup`.")
        # A binary built before logins were added would refuse the flag at start; say so first.
        if b"auth-username" not in self.cfg.ferretdb_binary.read_bytes():
            raise ServiceError(f"{self.cfg.ferretdb_binary} predates authentication; run `make setup` to rebuild it.")

    def command(self) -> list[str]:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(self.cfg.ferretdb_binary),
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--sqlite-url=file:{data}/",
            "--log-level=warn",
            f"--auth-username={self.cfg.embedded_login('mongo').username}",
        ]

    def environment(self) -> dict[str, str]:
        # In the environment, not on the command line, which every local user can read.
        return {"FERRETDB_AUTH_PASSWORD": self.cfg.embedded_login("mongo").password}


class MLflowServer(Service):
    """MLflow tracking server with a SQLite store and local artifacts."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.home / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.home / "artifacts"),
            "--workers",
            "1",
            "--app-name",
            "basic-auth",
        ]

    @property
    def auth_config_file(self) -> Path:
        return self.home / "basic_auth.ini"

    @property
    def auth_db(self) -> Path:
        return self.home / "basic_auth.db"

    def prepare(self) -> None:
        """Write the basic-auth app's config, and give an existing admin the current password.

        MLflow creates its admin user from the config only when its user store is empty, and
        ignores the password after that; a regenerated credentials file would lock us out.
        """
        login = self.cfg.embedded_login("mlflow")
        self.auth_config_file.touch(mode=0o600)
        self.auth_config_file.chmod(0o600)
        self.auth_config_file.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{self.auth_db}\n"
            f"admin_username = {login.username}\n"
            f"admin_password = {login.password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Checking a password is a deliberately slow hash (PBKDF2); without the cache every
            # request of a grid search pays it. One worker, and the password changes only here
            # at start, so the cache cannot serve a stale login.
            "auth_cache_ttl_seconds = 600\n"
        )
        if self.auth_db.exists():
            from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

            store = SqlAlchemyStore()
            store.init_db(f"sqlite:///{self.auth_db}")
            if store.has_user(login.username) and not store.authenticate_user(login.username, login.password):
                store.update_user(login.username, password=login.password)
            store.engine.dispose()

    def environment(self) -> dict[str, str]:
        return {
            # The job runner (15 background workers) serves GenAI evaluation jobs we do not use;
            # on 2 cores it only takes CPU from Spark.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config_file),
            # The basic-auth app signs its CSRF tokens with it; it must not change between workers.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials.mlflow_secret_key(self.cfg.credentials_file),
        }

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False


_LOG4J2 = Path(__file__).with_name("kafka-log4j2.properties")


def all_services(cfg: config.Config | None = None) -> dict[str, Service]:
    """The embedded services this configuration asks for (external ones are left out)."""
    cfg = cfg or config.load()
    services: dict[str, Service] = {}
    if cfg.kafka_embedded:
        services["kafka"] = Kafka("kafka", int(cfg["KAFKA_PORT"]), cfg)  # type: ignore[arg-type]
    if cfg.mongo_embedded:
        services["mongo"] = FerretDB("mongo", int(cfg["MONGO_PORT"]), cfg)  # type: ignore[arg-type]
    if cfg.mlflow_embedded:
        services["mlflow"] = MLflowServer("mlflow", int(cfg["MLFLOW_PORT"]), cfg)  # type: ignore[arg-type]
    if cfg.catalog_on_server:
        from lakehouse.sql_server import SqlServer  # its module imports this one

        services["sql"] = SqlServer("sql", int(cfg["SQL_SERVER_THRIFT_PORT"]), cfg)  # type: ignore[arg-type]
        from lakehouse.dashboards import superset_service  # after `sql`: its dashboards query the SQL server

        services["superset"] = superset_service(cfg)
    return services


def start_all(svcs: Sequence[Service]) -> dict[str, int]:
    """Start these services side by side and wait until each answers; their PIDs by name.

    A start is mostly waiting for a process to come up (a JVM, a web server), so one after
    another the waits added up. A service is launched once those it ``needs`` that come
    before it in ``svcs`` answer. Every start runs to its end; then the first failure is
    raised, so a newcomer sees the service that failed, not one stopped half-way.
    """
    if svcs:
        credentials.read(svcs[0].cfg.credentials_file)  # created once here, not by several starts at once
    futures: dict[str, Future[int]] = {}
    with ThreadPoolExecutor(max_workers=max(len(svcs), 1), thread_name_prefix="start") as pool:
        for svc in svcs:
            before = [futures[name] for name in svc.needs if name in futures]
            futures[svc.name] = pool.submit(_start_after, svc, before)
    pids, errors = {}, []
    for name, future in futures.items():
        try:
            pids[name] = future.result()
        except ServiceError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return pids


def _start_after(svc: Service, before: list[Future[int]]) -> int:
    for future in before:
        if future.exception() is not None:
            raise ServiceError(f"{svc.name}: not started, because a service it needs did not start ({future.exception()})")
    return svc.start()


def _kafka_cluster_id() -> str:
    """A random KRaft cluster id: base64url of a UUID, never starting with '-'.

    Kafka's own generator avoids a leading dash too: the storage tool would read
    such an id as an option and refuse to format.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def require_java() -> None:
    try:
        subprocess.run(["java", "-version"], check=True, capture_output=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise ServiceError("Java 17+ is needed for Kafka and Spark; none found on PATH.") from exc


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


app = typer.Typer(
    help="Start, stop and inspect the embedded Kafka, FerretDB, MLflow, lakehouse SQL server and Superset.", no_args_is_help=True
)
NamesArg = typer.Argument(None, help="Services to act on: kafka, mongo, mlflow, sql, superset (default: all embedded ones).")


def print_states(svcs: list[Service]) -> bool:
    """Print each service's state (pid, endpoints, log, or stopped); whether any is down."""
    down = False
    for svc in svcs:
        pid = svc.pid()
        state = f"running (pid {pid}, {svc.endpoints()}, log {svc.log_file})" if pid else "stopped"
        down |= pid is None
        typer.echo(f"{svc.name}: {state}")
    return down


def _select(names: list[str] | None) -> list[Service]:
    services = all_services()
    unknown = set(names or []) - set(services)
    if unknown:
        raise typer.BadParameter(f"unknown or external service(s): {', '.join(sorted(unknown))}; embedded: {', '.join(services)}")
    return [services[n] for n in (names or services)]


@app.command()
def start(names: list[str] | None = NamesArg) -> None:
    """Start services (idempotent), side by side, and wait until they answer."""
    svcs = _select(names)
    try:
        pids = start_all(svcs)
    except ServiceError as exc:
        print_states(svcs)
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    for svc in svcs:
        typer.echo(f"{svc.name}: running (pid {pids[svc.name]}, {svc.endpoints()})")


@app.command()
def stop(names: list[str] | None = NamesArg) -> None:
    """Stop services started by `start` (by PID)."""
    for svc in _select(names):
        typer.echo(f"{svc.name}: {'stopped' if svc.stop() else 'was not running'}")


@app.command()
def status(names: list[str] | None = NamesArg) -> None:
    """Show which services run; exit 1 if any is down."""
    raise typer.Exit(1 if print_states(_select(names)) else 0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
