"""Three Kafka brokers, one killed with ``kill -9`` in the middle of a stream and restarted: nothing lost or doubled.

The cluster is ``lakehouse.cluster``'s (three KRaft nodes on 127.0.0.1). The producer and
the ingest are the project's commands, run as processes with only
``KAFKA_BOOTSTRAP_SERVERS`` set, as the README's recipe says: the producer creates the
events topic, which takes the brokers' three replicas and ``min.insync.replicas=2``, and
sends with ``acks=all`` and idempotence while the ingest writes bronze. The leader of a
partition is killed once a part of the file is in Kafka, and restarted a few seconds later.
Checked: the producer had every record acknowledged, Kafka holds each record once (no
retry wrote one twice), bronze and quarantine hold each Kafka record exactly once, every
event of the file is in bronze once, and the restarted broker is back in every ISR.
"""

from __future__ import annotations

import csv
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import config
from lakehouse.cluster import KafkaNode, kafka_cluster_services, start_kafka_cluster, stop_kafka_cluster
from lakehouse.spark import read_delta
from streaming import reconcile
from streaming.bronze import BronzePaths
from tests.support.processes import start_module, terminate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

N_EVENTS = 6_000
FIRST = 2_000  # sent before the ingest is live; the rest is the stream the broker dies in
RATE = 250  # events/s of that stream: it lasts seconds, long enough to kill a broker inside it and restart it


@pytest.fixture(scope="module")
def kafka_cluster(cfg: config.Config) -> Iterator[tuple[config.Config, dict[str, str]]]:
    """The three brokers, running, and the environment of commands pointed at them (and nothing else changed)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_cluster_bootstrap}
    cluster_cfg = config.load(env)
    start_kafka_cluster(cluster_cfg)
    try:
        yield cluster_cfg, env
    finally:
        stop_kafka_cluster(cluster_cfg)


def _write_events(path: Path, numbers: range) -> None:
    """REES46 rows numbered ``numbers``, each its own product id: an event's identity, to count it in bronze."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        for i in numbers:
            time_of_day = f"{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
            writer.writerow(
                [
                    f"2019-11-01 {time_of_day} UTC",
                    "view",
                    1_000_000 + i,
                    2053013555631882655,
                    "electronics.smartphone",
                    "samsung",
                    100.5,
                    500_000 + i % 300,
                    f"s-{i // 4}",
                ]
            )


def _admin(cluster_cfg: config.Config):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=cluster_cfg.kafka_bootstrap, request_timeout_ms=10_000, **cluster_cfg.kafka_client_options)


def _partitions(cluster_cfg: config.Config, topic: str) -> list[dict]:
    """The topic's partitions as the cluster describes them (leader, replicas, ISR); empty before it exists."""
    admin = _admin(cluster_cfg)
    try:
        topics = admin.describe_topics([topic])
    except Exception:  # not created yet, or a leader election under way
        return []
    finally:
        admin.close()
    return [p for t in topics if t["error_code"] == 0 for p in t["partitions"]]


def _min_insync(cluster_cfg: config.Config, topic: str) -> int:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = _admin(cluster_cfg)
    try:
        # "all": the value the topic inherits from the brokers shows only with this filter
        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    finally:
        admin.close()
    return int(next(iter(result.values()))[topic]["min.insync.replicas"]["value"])


def _kafka_records(cluster_cfg: config.Config, topic: str) -> int:
    try:
        return sum(end - begin for begin, end in reconcile.kafka_offsets(cluster_cfg.kafka_bootstrap, topic).values())
    except Exception:  # the topic is not there yet
        return 0


def _wait(condition, timeout: float, what: str, proc=None, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None:
            assert proc.poll() is None, f"{what}: the process exited:\n{log_file.read_text()[-3000:] if log_file else ''}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _commits(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def _lake_rows(spark, cluster_cfg: config.Config, topic: str) -> int:
    return sum(r.bronze + r.quarantine for r in reconcile.reconcile(spark, cluster_cfg, topic))


def test_kill9_of_a_partition_leader_mid_stream_loses_and_doubles_nothing(spark, kafka_cluster, tmp_path):
    cluster_cfg, env = kafka_cluster
    topic = f"t-kafka-cluster-{uuid.uuid4().hex[:6]}"  # not the suite's tmp_topic: that one starts the embedded broker
    nodes: dict[int, KafkaNode] = {node.node_id: node for node in kafka_cluster_services(cluster_cfg)}
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    _write_events(first, range(FIRST))
    _write_events(second, range(FIRST, N_EVENTS))
    ingest_log = tmp_path / "ingest.log"
    bronze_table = BronzePaths.from_config(cluster_cfg).events
    commits_before = _commits(bronze_table)
    producer_args = ["--topic", topic, "-q"]
    procs = []
    try:
        # The first part as fast as it goes, with the ingest starting: once bronze has rows, the ingest is live.
        procs.append(start_module("streaming.producer", [str(first), *producer_args], tmp_path / "producer-1.log", env=env))
        procs.append(ingest := start_module("streaming.ingest", ["--topic", topic, "--trigger-seconds", "1"], ingest_log, env=env))
        assert procs[0].wait(timeout=120) == 0, (tmp_path / "producer-1.log").read_text()[-3000:]
        partitions = _partitions(cluster_cfg, topic)
        assert len(partitions) == int(cluster_cfg["KAFKA_PARTITIONS"])  # type: ignore[call-overload]
        assert all(len(p["replica_nodes"]) == 3 for p in partitions), partitions
        assert _min_insync(cluster_cfg, topic) == 2
        # The cheap sign of a first batch (a new bronze commit): a Spark query in this process each poll would slow the ingest's start.
        _wait(lambda: _commits(bronze_table) > commits_before, 240, "the ingest's first batch", ingest, ingest_log)

        # The second part at a steady rate; the leader of partition 0 dies inside it.
        producer_log = tmp_path / "producer-2.log"
        procs.append(
            producer := start_module("streaming.producer", [str(second), *producer_args, "--rate", str(RATE)], producer_log, env=env)
        )
        _wait(
            lambda: _kafka_records(cluster_cfg, topic) >= FIRST + (N_EVENTS - FIRST) // 4,
            60,
            "the stream under way",
            producer,
            producer_log,
        )
        victim = nodes[partitions[0]["leader_id"]]
        pid = victim.pid()
        assert pid is not None
        in_kafka_before_kill = _kafka_records(cluster_cfg, topic)
        os.kill(pid, signal.SIGKILL)
        assert producer.poll() is None and in_kafka_before_kill < N_EVENTS, "the stream ended before the kill: raise N_EVENTS or lower RATE"
        time.sleep(3)  # the cluster elects new leaders and carries on with two brokers
        victim.start()  # the same code `make cluster-start` runs; the broker recovers its log and catches up

        assert producer.wait(timeout=120) == 0, producer_log.read_text()[-3000:]
        _wait(lambda: _lake_rows(spark, cluster_cfg, topic) >= N_EVENTS, 240, "bronze to catch up", ingest, ingest_log)
    finally:
        for proc in procs:
            if proc.poll() is None:
                terminate(proc)

    reports = reconcile.reconcile(spark, cluster_cfg, topic)
    assert sum(r.kafka_records for r in reports) == N_EVENTS  # every record acknowledged, none written twice by a retry
    assert all(r.ok for r in reports), reports  # each Kafka record in bronze or quarantine exactly once
    bronze = read_delta(spark, bronze_table).filter(F.col("kafka_topic") == topic)
    counts = bronze.agg(F.count("*").alias("rows"), F.countDistinct("product_id").alias("events")).first()
    assert (counts["rows"], counts["events"]) == (N_EVENTS, N_EVENTS)  # every event of the files, once
    _wait(lambda: all(len(p["isr_nodes"]) == 3 for p in _partitions(cluster_cfg, topic)), 60, "the restarted broker back in every ISR")
