"""A Kafka broker restart in the middle of a stream: the ingest rides it out, nothing lost or doubled."""

from __future__ import annotations

import time

import pytest

from lakehouse import services
from streaming import reconcile
from tests.support.kafka_helpers import create_topic, send_raw, synthetic_payloads
from tests.support.processes import start_module, terminate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _lake_total(spark, cfg, topic: str) -> int:
    return sum(r.bronze + r.quarantine for r in reconcile.reconcile(spark, cfg, topic))


def test_ingest_survives_a_broker_restart(spark, cfg, kafka, tmp_topic, tmp_path):
    broker = services.all_services(cfg).get("kafka")
    if broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at an external cluster; this test restarts the embedded broker")
    create_topic(kafka, tmp_topic, partitions=2)
    payloads = list(synthetic_payloads(6_000, seed=11))
    send_raw(kafka, tmp_topic, payloads[:3_000])
    log_file = tmp_path / "ingest.log"
    proc = start_module("streaming.ingest", ["--topic", tmp_topic, "--trigger-seconds", "1"], log_file)
    try:
        deadline = time.monotonic() + 300
        while _lake_total(spark, cfg, tmp_topic) < 3_000 and time.monotonic() < deadline:
            time.sleep(2)
        broker.stop()
        time.sleep(5)  # the broker is away for a while; the ingest must not give up
        broker.start()
        send_raw(kafka, tmp_topic, payloads[3_000:])
        deadline = time.monotonic() + 400
        while _lake_total(spark, cfg, tmp_topic) < len(payloads) and time.monotonic() < deadline:
            assert proc.poll() is None, f"ingest exited:\n{log_file.read_text()[-3000:]}"
            time.sleep(2)
    finally:
        terminate(proc)
    reports = reconcile.reconcile(spark, cfg, tmp_topic)
    assert sum(r.kafka_records for r in reports) == len(payloads)
    assert all(r.ok for r in reports), (reports, log_file.read_text()[-3000:])
