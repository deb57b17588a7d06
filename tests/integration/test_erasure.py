"""Erasure on the real Kafka, Delta, FerretDB: every store searched after ``erase_user`` holds nothing of the user.

A user's events go through Kafka and the ingest into bronze (one bad record into
quarantine); they also sit in predictions, a dbt-style table, MongoDB, output CSVs
and an MLflow artifact. After the erasure each store is searched for the user; the
other users' rows are all still there; reconciliation is still exact (the bronze
rows became payload-free tombstones); a replayed old record of the user is kept out
while a new one is accepted.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from typer.testing import CliRunner

from streaming import erasure, ingest, reconcile, session_admin
from streaming.bronze import BronzePaths
from streaming.predictions import predictions_path
from streaming.producer import ensure_topic
from streaming.session_store import COLLECTION, connect
from tests.support.kafka_helpers import send_raw

pytestmark = pytest.mark.integration

VICTIM, OTHERS = 8_100_001, (8_100_002, 8_100_003)


def _event(user: int, i: int, when: str = "2019-11-01 10:00:00 UTC", **extra) -> bytes:
    rec = {
        "event_time": when,
        "event_type": "view",
        "product_id": 100 + i,
        "category_id": 7,
        "category_code": "electronics.smartphone",
        "brand": "acme",
        "price": 9.5,
        "user_id": user,
        "user_session": f"s-{user}-{i // 3}",
    }
    return json.dumps({**rec, **extra}).encode()


def _ingest(spark, cfg, topic: str) -> None:
    query = ingest.start(spark, cfg, topic=topic, available_now=True, starting_offsets="earliest")
    query.awaitTermination(600)
    assert query.exception() is None


def _write_csv(path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _seed_stores(spark, cfg, mongo, tmp_path) -> tuple:
    """Predictions, a dbt table, MongoDB documents, output and MLflow CSVs holding the victim and others."""
    users = (VICTIM, *OTHERS)
    rows = [(u, f"s-{u}-{i}") for u in users for i in range(2)]
    frame = spark.createDataFrame(rows, "user_id bigint, session_id string")
    mart = cfg.warehouse_dir / "analytics.db" / "erasure_test_sessions"
    frame.write.format("delta").mode("overwrite").save(str(mart))
    # like the ML feature marts: deletion vectors on, and a row replaced by a later write,
    # so that the victim's old version stays in a live file, marked as deleted
    spark.sql(f"ALTER TABLE delta.`{mart}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    DeltaTable.forPath(spark, str(mart)).update(F.col("session_id") == f"s-{VICTIM}-0", {"session_id": F.lit(f"s-{VICTIM}-0b")})
    preds = predictions_path(cfg)
    before_preds = spark.read.format("delta").load(str(preds)).count() if (preds / "_delta_log").is_dir() else 0
    coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]
    coll.insert_many([{"_id": f"erasure-{u}-{i}", "session_id": f"s-{u}-{i}", "user_id": u} for u, i in rows])
    out = tmp_path / "output"
    _write_csv(out / "predictions.csv", [{"session_id": s, "user_id": u, "p": 0.5} for u, s in rows])
    _write_csv(out / "category" / "user_top3.csv", [{"user_id": u, "top1": "electronics"} for u in users])
    _write_csv(out / "runs" / "x" / "test_metrics.csv", [{"scorer": "model", "auc": 0.7}])  # no user column: untouched
    artifact = erasure.mlflow_artifacts(cfg) / "1" / "run" / "artifacts" / "outputs" / "predictions.csv"
    _write_csv(artifact, [{"session_id": s, "user_id": u, "p": 0.5} for u, s in rows])
    return mart, before_preds, coll, out, artifact


def test_erase_user_leaves_nothing_in_any_store_and_keeps_everyone_else(spark, cfg, kafka, mongo, tmp_topic, tmp_path) -> None:
    assert ensure_topic(tmp_topic, bootstrap=kafka)  # the project's topic settings: a finite retention
    payloads = [(b"k", _event(u, i)) for u in (VICTIM, *OTHERS) for i in range(6)]
    payloads += [(b"k", _event(VICTIM, 99, price="free")), (b"k", _event(OTHERS[0], 99, price="free"))]
    sent = send_raw(kafka, tmp_topic, payloads)
    _ingest(spark, cfg, tmp_topic)
    paths = BronzePaths.from_config(cfg)
    mart, _, coll, out, artifact = _seed_stores(spark, cfg, mongo, tmp_path)

    def bronze():
        return spark.read.format("delta").load(str(paths.events)).filter(F.col("kafka_topic") == tmp_topic)

    def quarantine():
        return spark.read.format("delta").load(str(paths.quarantine)).filter(F.col("kafka_topic") == tmp_topic)

    others_before = bronze().filter(F.col("user_id") != VICTIM).count()
    assert bronze().filter(F.col("user_id") == VICTIM).count() == 6 and others_before == 12

    receipts = {r.store: r for r in erasure.erase_user(spark, cfg, VICTIM, retain_hours=0, output_dir=out, topic=tmp_topic)}

    assert receipts["MongoDB sessions"].removed == 2
    assert receipts["bronze events (now quarantine tombstones)"].removed == 6
    assert receipts["quarantine"].removed == 1
    assert receipts["dbt analytics.db/erasure_test_sessions"].removed == 2
    assert receipts["output CSV files"].removed == 3  # two prediction rows, one user row
    assert receipts["MLflow artifacts (CSV)"].removed == 2
    kafka_receipt = receipts[f"Kafka topic {tmp_topic}"]
    assert kafka_receipt.found == 6 and "until about" in kafka_receipt.remains, kafka_receipt
    # every store, searched again: nothing of the victim, everything of the others
    assert bronze().filter(F.col("user_id") == VICTIM).count() == 0
    assert bronze().filter(F.col("user_id") != VICTIM).count() == others_before
    tomb = quarantine().filter(F.col("reason") == erasure.ERASED_REASON)
    assert tomb.count() == 6 and tomb.filter(F.col("raw_payload").isNotNull()).count() == 0
    assert quarantine().filter(F.col("raw_payload").contains(str(VICTIM))).count() == 0
    assert quarantine().filter(F.col("raw_payload").contains(str(OTHERS[0]))).count() == 1  # another user's reject keeps its payload
    for table in (mart, predictions_path(cfg)):
        if (table / "_delta_log").is_dir():
            assert spark.read.format("delta").load(str(table)).filter(F.col("user_id") == VICTIM).count() == 0
    assert spark.read.format("delta").load(str(mart)).count() == 4
    assert coll.count_documents({"user_id": VICTIM}) == 0 and coll.count_documents({"user_id": {"$in": list(OTHERS)}}) == 4
    for f in (*out.rglob("*.csv"), artifact):
        assert str(VICTIM) not in f.read_text(), f
    assert (out / "runs" / "x" / "test_metrics.csv").read_text().startswith("scorer,auc")
    # VACUUM at retention 0 (no stream runs here): no data file of bronze holds the user, old versions included
    files = spark.read.format("parquet").load(str(paths.events) + "/event_date=*/*.parquet")
    assert files.filter(F.col("user_id") == VICTIM).count() == 0
    # nor any data file of the mart with deletion vectors: its marked rows were purged first
    assert spark.read.format("parquet").load(str(mart) + "/*.parquet").filter(F.col("user_id") == VICTIM).count() == 0
    assert erasure.erased_users(cfg)[VICTIM] <= datetime.now(UTC).replace(tzinfo=None)

    # the commands of the README: the register lists the user; vacuum runs
    runner = CliRunner()
    listed = runner.invoke(session_admin.app, ["erasures"])
    assert listed.exit_code == 0 and str(VICTIM) in listed.output, listed.output
    vacuumed = runner.invoke(session_admin.app, ["vacuum", "--retain-hours", "1"])
    assert vacuumed.exit_code == 0 and "vacuumed" in vacuumed.output, vacuumed.output

    # Kafka still holds the victim's records: every one is still accounted for, once
    reports = reconcile.reconcile(spark, cfg, tmp_topic)
    assert all(r.ok for r in reports), reports
    assert sum(r.kafka_records for r in reports) == sent

    # a replayed old record stays out; activity after the erasure is new data and is accepted
    later = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    send_raw(kafka, tmp_topic, [(b"k", _event(VICTIM, 1)), (b"k", _event(VICTIM, 50, when=later))])
    _ingest(spark, cfg, tmp_topic)
    assert bronze().filter(F.col("user_id") == VICTIM).select("product_id").collect() == [(150,)]
    assert quarantine().filter(F.col("reason") == erasure.ERASED_REASON).count() == 7
    assert all(r.ok for r in reconcile.reconcile(spark, cfg, tmp_topic))

    # retention deletes the oldest records from Kafka (as delete_records does): the rows of those
    # records are reported apart, not as a mismatch, and the rest still compares exactly
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    consumer = KafkaConsumer(bootstrap_servers=kafka, **cfg.kafka_client_options)
    ends = consumer.end_offsets([TopicPartition(tmp_topic, p) for p in consumer.partitions_for_topic(tmp_topic)])
    consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka, **cfg.kafka_client_options)
    admin.delete_records({tp: end // 2 for tp, end in ends.items()})
    admin.close()
    reports = reconcile.reconcile(spark, cfg, tmp_topic)
    assert all(r.ok for r in reports), reports
    assert sum(r.before_retention for r in reports) == sum(end // 2 for end in ends.values()) > 0
