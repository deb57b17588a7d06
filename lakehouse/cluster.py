"""A standalone Spark cluster and a three-broker Kafka cluster on this machine, on 127.0.0.1.

The same jobs that run in ``local`` mode run on a cluster when ``SPARK_MASTER`` names
one; this module runs a small real one to prove it (and to try scale-out settings)
without a second machine. Master and workers are Spark's own daemons, started from the
pinned ``pyspark`` package's ``bin/spark-class`` (the package is a Spark distribution),
each worker with its own cores, memory and work folder. They are services like the
others (``lakehouse.services.Service``: PID file, log, readiness, stop by PID) but are
not started by ``python -m lakehouse.services start``: a cluster is a choice.

The Kafka cluster is three KRaft nodes (each broker and controller, the three controllers
one quorum), each with its own ports and data folder, formatted with one cluster id. Topics
get three replicas and ``min.insync.replicas=2`` by default: with the producer's
``acks=all``, a write is acknowledged once two brokers hold it, so one broker can die
without losing an acknowledged record or stopping the stream. The brokers take the
embedded broker's generated login; clients pointed at them by ``KAFKA_BOOTSTRAP_SERVERS``
use it too (``lakehouse.config``).

Usage: ``python -m lakehouse.cluster start|stop|status [spark] [kafka]`` (both when none is
named); then the exports ``start`` prints (``SPARK_MASTER``, ``KAFKA_BOOTSTRAP_SERVERS``)
before the usual commands.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import typer

from lakehouse import config
from lakehouse.services import Kafka, Service, ServiceError, _kafka_cluster_id, print_states, require_java, start_all
from lakehouse.sql_server import pyspark_home

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
MASTER_NAME = "spark-master"


def _daemon_environment() -> dict[str, str]:
    """Loopback only, Spark's home the package, and the Python executors start for Python code: this one."""
    return {
        "SPARK_HOME": str(pyspark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The daemons' own heap (the executors get SPARK_EXECUTOR_MEMORY from each application).
        "SPARK_DAEMON_MEMORY": "256m",
        "PYSPARK_PYTHON": sys.executable,
    }


def master_status(cfg: config.Config, timeout: float = 2.0) -> dict:
    """The master's `/json` status: its workers (state, cores, memory) and applications."""
    url = f"http://127.0.0.1:{cfg['SPARK_CLUSTER_UI_PORT']}/json"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


@dataclass(frozen=True)
class SparkMaster(Service):
    """The standalone master: schedules applications' executors on the workers."""

    @property
    def ui_port(self) -> int:
        return int(self.cfg["SPARK_CLUSTER_UI_PORT"])  # type: ignore[arg-type]

    def check_installed(self) -> None:
        require_java()
        if not (pyspark_home() / "bin" / "spark-class").exists():
            raise ServiceError(f"spark-class not found in {pyspark_home()}/bin; reinstall pyspark with `make setup`.")

    def command(self) -> list[str]:
        spark_class = str(pyspark_home() / "bin" / "spark-class")
        return [spark_class, MASTER_CLASS, "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port)]

    def environment(self) -> dict[str, str]:
        return _daemon_environment()

    def endpoints(self) -> str:
        return f"{self.cfg.cluster_master_url}, UI http://127.0.0.1:{self.ui_port}"

    def ready(self) -> bool:
        """The RPC port opens before the UI; the UI's status page answers once the master is ALIVE."""
        try:
            return master_status(self.cfg)["status"] == "ALIVE"
        except (OSError, ValueError, KeyError):
            return False


@dataclass(frozen=True)
class SparkWorker(Service):
    """One standalone worker: offers its cores and memory to the master, runs executors in its work folder.

    ``port`` is the worker's web UI port (its RPC port is whatever is free); the UI's
    address also names the worker in the master's status and in executors' log links.
    """

    needs: ClassVar[tuple[str, ...]] = (MASTER_NAME,)  # it registers with the master at its start

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    def check_installed(self) -> None:
        SparkMaster.check_installed(self)  # type: ignore[arg-type]

    def command(self) -> list[str]:
        spark_class = str(pyspark_home() / "bin" / "spark-class")
        return [
            spark_class,
            WORKER_CLASS,
            self.cfg.cluster_master_url,
            "--host",
            "127.0.0.1",
            "--cores",
            str(self.cfg["SPARK_CLUSTER_WORKER_CORES"]),
            "--memory",
            str(self.cfg["SPARK_CLUSTER_WORKER_MEMORY"]),
            "--webui-port",
            str(self.port),
            "--work-dir",
            str(self.work_dir),
        ]

    def environment(self) -> dict[str, str]:
        return _daemon_environment()

    def endpoints(self) -> str:
        return f"UI http://127.0.0.1:{self.port}, work folder {self.work_dir}"

    def ready(self) -> bool:
        """Registered with the master: it is among the master's ALIVE workers."""
        return self.ui_url in alive_workers(self.cfg)

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def alive_workers(cfg: config.Config) -> dict[str, dict]:
    """The master's ALIVE workers, by the address of their web UI."""
    try:
        workers = master_status(cfg)["workers"]
    except (OSError, ValueError, KeyError):
        return {}
    return {w["webuiaddress"]: w for w in workers if w["state"] == "ALIVE"}


def cluster_services(cfg: config.Config | None = None) -> list[Service]:
    """The master, then its workers, in start order."""
    cfg = cfg or config.load()
    master = SparkMaster(MASTER_NAME, int(cfg["SPARK_CLUSTER_MASTER_PORT"]), cfg)  # type: ignore[arg-type]
    first_ui = int(cfg["SPARK_CLUSTER_WORKER_UI_PORT"])  # type: ignore[arg-type]
    workers = [SparkWorker(f"spark-worker-{i + 1}", first_ui + i, cfg) for i in range(int(cfg["SPARK_CLUSTER_WORKERS"]))]  # type: ignore[arg-type]
    return [master, *workers]


def start_cluster(cfg: config.Config) -> list[tuple[Service, int]]:
    """Start the master, then, once it answers, every worker at once (each waits for its own registration); (service, PID) in order.

    Idempotent like every service: running daemons are left alone.
    """
    svcs = cluster_services(cfg)
    pids = start_all(svcs)
    return [(svc, pids[svc.name]) for svc in svcs]


def stop_cluster(cfg: config.Config, timeout: float = 30.0) -> list[tuple[Service, bool]]:
    """Stop the workers, then the master; (service, whether it was running).

    Returns once their ports are closed: a JVM that is reported gone may still hold its
    listening socket for a moment, and a cluster started again at once found its port taken.
    """
    stopped = [(svc, svc.stop()) for svc in reversed(cluster_services(cfg))]
    deadline = time.monotonic() + timeout
    while any(svc.answering() for svc, _ in stopped) and time.monotonic() < deadline:
        time.sleep(0.2)
    return stopped


@dataclass(frozen=True)
class KafkaNode(Kafka):
    """One of the three KRaft nodes of the local Kafka cluster: a broker and a voter of the controller quorum.

    ``port`` is its client port; its controller port, node id and data folder are its own,
    its cluster id the cluster's.
    """

    node_id: int = 1

    @property
    def controller_port(self) -> int:
        return int(self.cfg["KAFKA_CLUSTER_CONTROLLER_PORT"]) + self.node_id - 1  # type: ignore[call-overload]

    def quorum_voters(self) -> str:
        """Every node's controller: a quorum of three, which one node's death leaves with a majority."""
        first = int(self.cfg["KAFKA_CLUSTER_CONTROLLER_PORT"])  # type: ignore[call-overload]
        return ",".join(f"{n}@127.0.0.1:{first + n - 1}" for n in range(1, config.KAFKA_CLUSTER_BROKERS + 1))

    def replication_lines(self) -> list[str]:
        """Three replicas and two in sync for every topic, the internal ones too, unless a topic says otherwise."""
        replicas, in_sync = config.KAFKA_CLUSTER_BROKERS, config.KAFKA_CLUSTER_BROKERS - 1
        return [
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={in_sync}",
            # A replica that was out of the ISR never becomes leader: that would lose acknowledged writes.
            "unclean.leader.election.enable=false",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={in_sync}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={in_sync}",
        ]

    def cluster_id(self) -> str:
        """The id every node formats its storage with (nodes of different ids refuse each other)."""
        return kafka_cluster_id(self.cfg)

    def client_options(self) -> dict[str, str]:
        """The generated login, whatever cluster ``KAFKA_BOOTSTRAP_SERVERS`` names."""
        return _local_cluster_cfg(self.cfg).kafka_client_options

    def endpoints(self) -> str:
        return f"node {self.node_id}, 127.0.0.1:{self.port}, controller 127.0.0.1:{self.controller_port}"


def _local_cluster_cfg(cfg: config.Config) -> config.Config:
    """``cfg`` with clients pointed at the local Kafka cluster (and so logged in with the generated login)."""
    return replace(cfg, values={**cfg.values, "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_cluster_bootstrap, "KAFKA_USERNAME": ""})


def kafka_cluster_id(cfg: config.Config) -> str:
    """The local Kafka cluster's id, made once and kept in the services folder (nodes start in parallel: first writer wins)."""
    path = cfg.services_dir / "kafka-cluster-id"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        cluster_id = _kafka_cluster_id()
        fh.write(cluster_id)
    return cluster_id


def kafka_cluster_services(cfg: config.Config | None = None) -> list[KafkaNode]:
    """The three Kafka nodes, by node id."""
    cfg = cfg or config.load()
    first = int(cfg["KAFKA_CLUSTER_PORT"])  # type: ignore[arg-type]
    return [KafkaNode(f"kafka-{n}", first + n - 1, cfg, node_id=n) for n in range(1, config.KAFKA_CLUSTER_BROKERS + 1)]


def start_kafka_cluster(cfg: config.Config) -> list[tuple[Service, int]]:
    """Start the three nodes at once (each waits for its own readiness, which needs a quorum); (node, PID) in order."""
    nodes = kafka_cluster_services(cfg)
    kafka_cluster_id(cfg)  # before the threads, so that none reads a file another is still writing
    pids = start_all(nodes)
    return [(node, pids[node.name]) for node in nodes]


def stop_kafka_cluster(cfg: config.Config, timeout: float = 30.0) -> list[tuple[Service, bool]]:
    """Stop the three nodes (each by PID); (node, whether it was running), once their ports are closed."""
    nodes = kafka_cluster_services(cfg)
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        was_running = list(pool.map(lambda node: node.stop(), nodes))
    deadline = time.monotonic() + timeout
    while any(node.answering() for node in nodes) and time.monotonic() < deadline:
        time.sleep(0.2)
    return list(zip(nodes, was_running, strict=True))


PARTS = ("spark", "kafka")
PartsArg = typer.Argument(None, help="`spark`, `kafka` or both (the default).", show_default=False)

app = typer.Typer(
    help="Clusters on 127.0.0.1: standalone Spark (one master, SPARK_CLUSTER_WORKERS workers) and Kafka (three KRaft brokers).",
    no_args_is_help=True,
)


def _parts(parts: list[str] | None) -> list[str]:
    unknown = sorted(set(parts or []) - set(PARTS))
    if unknown:
        raise typer.BadParameter(f"unknown cluster {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if not parts or p in parts]


@app.command()
def start(parts: list[str] | None = PartsArg) -> None:
    """Start the Spark master and workers and the three Kafka brokers (idempotent), wait until each is ready."""
    cfg = config.load()
    chosen = _parts(parts)
    try:
        started = (start_cluster(cfg) if "spark" in chosen else []) + (start_kafka_cluster(cfg) if "kafka" in chosen else [])
    except ServiceError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    for svc, pid in started:
        typer.echo(f"{svc.name}: running (pid {pid}, {svc.endpoints()})")
    if "spark" in chosen:
        typer.echo(
            f"\nRun the usual commands on the Spark cluster with:\n  export SPARK_MASTER={cfg.cluster_master_url}\n"
            "A SQL server started before the export runs in local mode: restart it after the export, "
            "`python -m lakehouse.services stop sql` then `python -m lakehouse.services start sql`."
        )
    if "kafka" in chosen:
        typer.echo(
            f"\nProduce to and read from the Kafka cluster with:\n  export KAFKA_BOOTSTRAP_SERVERS={cfg.kafka_cluster_bootstrap}\n"
            "Clients log in with the generated login (no KAFKA_USERNAME needed); a new events topic gets three replicas, "
            "min.insync.replicas=2. The embedded broker is not used then: `python -m lakehouse.services stop kafka` frees its memory."
        )


@app.command()
def stop(parts: list[str] | None = PartsArg) -> None:
    """Stop the workers, then the master, and the Kafka brokers (by PID)."""
    cfg = config.load()
    chosen = _parts(parts)
    stopped = (stop_cluster(cfg) if "spark" in chosen else []) + (stop_kafka_cluster(cfg) if "kafka" in chosen else [])
    for svc, was_running in stopped:
        typer.echo(f"{svc.name}: {'stopped' if was_running else 'was not running'}")


@app.command()
def status(parts: list[str] | None = PartsArg) -> None:
    """Show the master, workers and applications, and the Kafka brokers; exit 1 if any is down."""
    cfg = config.load()
    chosen = _parts(parts)
    down = print_states(kafka_cluster_services(cfg)) if "kafka" in chosen else False
    if down:
        typer.echo("a Kafka broker is down; start the brokers with `make cluster-start` (a running one is left alone)")
    if "spark" not in chosen:
        raise typer.Exit(1 if down else 0)
    down |= print_states(cluster_services(cfg))
    try:
        state = master_status(cfg)
    except OSError:
        typer.echo(
            f"the master's status page does not answer on http://127.0.0.1:{cfg['SPARK_CLUSTER_UI_PORT']}/json; start it with `make cluster-start`"
        )
        raise typer.Exit(1) from None
    if state:
        alive = [w for w in state["workers"] if w["state"] == "ALIVE"]
        typer.echo(f"workers alive: {len(alive)}, cores {state['coresused']}/{state['cores']} used")
        for application in state.get("activeapps", []):
            typer.echo(f"application {application['id']} {application['name']!r}: {application['cores']} cores")
    raise typer.Exit(1 if down else 0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
