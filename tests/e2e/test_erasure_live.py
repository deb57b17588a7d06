"""Erasure while the ingest and the scorer run: nothing of the user comes back, nobody else loses a row, no table breaks.

The ingest runs as a streaming query in this process and the scorer as a process of
its own, both reading a topic the test keeps feeding. Half-way, a user is erased with
the production VACUUM retention (so no file a stream has written but not committed can
go). The user's later records are replays (dated before the erasure). At the end every
record is in bronze or quarantine exactly once, the other users' rows are all in
bronze, the user is in no store, and every Delta table reads whole.
"""

from __future__ import annotations

import threading
import time

import pytest
from pyspark.sql import functions as F

from streaming import erasure, ingest, reconcile
from streaming.bronze import BronzePaths
from streaming.predictions import predictions_path
from streaming.scorer import status_path
from streaming.session_store import COLLECTION, connect
from tests.integration.dbt_support import synthetic_events
from tests.integration.test_scorer_helpers import payloads, register_models, wait_for
from tests.support.kafka_helpers import create_topic, send_raw
from tests.support.processes import start_module, terminate

pytestmark = pytest.mark.e2e


def test_erasure_during_ingest_and_scoring(spark, cfg, kafka, mongo, mlflow_uri, tmp_path, monkeypatch) -> None:
    topic = f"erasure-live-{int(time.time())}"
    create_topic(kafka, topic, partitions=2)
    register_models(mlflow_uri, synthetic_events(n_users=30, days=1, seed=1), seed=0)
    events = synthetic_events(n_users=30, days=1, seed=33, start="2019-11-14")
    events["user_id"] = events["user_id"] + 9_300_000  # users no other test writes
    victim = int(events["user_id"].value_counts().index[0])  # the busiest user: events on both sides of the erasure
    messages = payloads(events)
    half = len(messages) // 2

    for key, value in {"SCORER_TRIGGER_SECONDS": "1", "SCORER_STARTING_OFFSETS": "earliest"}.items():
        monkeypatch.setenv(key, value)
    scorer = start_module("streaming.scorer", ["--topic", topic], tmp_path / "scorer.log")
    query = ingest.start(spark, cfg, topic=topic, trigger_seconds=1, starting_offsets="earliest")
    paths = BronzePaths.from_config(cfg)

    def landed() -> int:
        tables = [spark.read.format("delta").load(str(p)).filter(F.col("kafka_topic") == topic) for p in (paths.events, paths.quarantine)]
        return sum(t.count() for t in tables)

    def feed(batch: list) -> None:  # a steady trickle, so both streams are busy while erasure runs
        for start in range(0, len(batch), 50):
            send_raw(kafka, topic, batch[start : start + 50])
            time.sleep(0.2)

    try:
        feed(messages[:half])
        wait_for(lambda: landed() == half, timeout=300, what="first half ingested")
        wait_for(lambda: status_path(cfg, topic).exists(), timeout=300, what="scorer's first batch")
        sender = threading.Thread(target=feed, args=(messages[half:],))
        sender.start()
        receipts = erasure.erase_user(
            spark,
            cfg,
            victim,
            retain_hours=float(cfg["ERASURE_VACUUM_RETAIN_HOURS"]),
            output_dir=tmp_path / "out",
            topic=topic,
            settle_seconds=10,
        )
        sender.join()
        wait_for(lambda: landed() == len(messages), timeout=300, what="second half ingested")
        time.sleep(8)  # the scorer's last batches and its outbox flush
    finally:
        terminate(scorer)
        query.stop()

    by_store = {r.store: r for r in receipts}
    assert by_store["bronze events (now quarantine tombstones)"].removed >= 1
    bronze = spark.read.format("delta").load(str(paths.events)).filter(F.col("kafka_topic") == topic)
    quarantine = spark.read.format("delta").load(str(paths.quarantine)).filter(F.col("kafka_topic") == topic)
    others = events[events.user_id != victim]
    assert bronze.filter(F.col("user_id") == victim).count() == 0
    assert bronze.count() == len(others)  # every other user's event is there: nothing of anyone else lost
    assert quarantine.filter(F.col("reason") != erasure.ERASED_REASON).count() == 0
    assert quarantine.filter(F.col("raw_payload").isNotNull()).count() == 0
    assert all(r.ok for r in reconcile.reconcile(spark, cfg, topic))
    preds = spark.read.format("delta").load(str(predictions_path(cfg)))
    assert preds.filter(F.col("user_id") == victim).count() == 0
    assert preds.filter(F.col("user_id").isin([int(u) for u in others.user_id.unique()])).count() > 0
    coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]
    assert coll.count_documents({"user_id": victim}) == 0
    # no table was corrupted: each reads whole, every file its log names is there
    for table in (paths.events, paths.quarantine, predictions_path(cfg)):
        spark.read.format("delta").load(str(table)).agg(F.count("*")).collect()
