"""Each part of the stack is real: Delta on Spark, Kafka through Spark, MongoDB wire, MLflow, dbt."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lakehouse import config

pytestmark = pytest.mark.integration


# -- Delta Lake ---------------------------------------------------------------------------
def test_delta_write_merge_time_travel_and_schema_enforcement(spark, tmp_path):
    from delta.tables import DeltaTable
    from pyspark.sql.utils import AnalysisException

    path = str(tmp_path / "delta_t")
    spark.createDataFrame([(1, "a"), (2, "b")], "id bigint, v string").write.format("delta").save(path)
    updates = spark.createDataFrame([(2, "B"), (3, "c")], "id bigint, v string")
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("u"), "t.id = u.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    now = {r.id: r.v for r in spark.read.format("delta").load(path).collect()}
    assert now == {1: "a", 2: "B", 3: "c"}
    before = {r.id: r.v for r in spark.sql(f"select * from delta.`{path}` version as of 0").collect()}
    assert before == {1: "a", 2: "b"}
    wrong = spark.createDataFrame([("x", 1.5)], "id string, other double")
    with pytest.raises(AnalysisException):
        wrong.write.format("delta").mode("append").save(path)


def test_a_table_seen_before_its_first_commit_is_read_once_another_process_commits(spark, tmp_path):
    """A reconcile that looked too early once counted 0 bronze rows for the rest of the run.

    Delta creates ``_delta_log`` before the first commit lands, and
    ``DeltaTable.isDeltaTable`` answers from the session's cached snapshot, so the
    check must be a read, which refreshes it.
    """
    import shutil

    from lakehouse.spark import read_delta

    written, seen = tmp_path / "written", tmp_path / "seen"
    (seen / "_delta_log").mkdir(parents=True)
    assert read_delta(spark, seen) is None
    assert read_delta(spark, tmp_path / "missing") is None
    spark.range(5).write.format("delta").save(str(written))
    shutil.copytree(written, seen, dirs_exist_ok=True)  # the commit of another process lands on disk
    assert read_delta(spark, seen).count() == 5


# -- Kafka through Spark ------------------------------------------------------------------
def _produce(bootstrap: str, topic: str, payloads: list[bytes], partitions: int = 2) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **config.load().kafka_client_options)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config.load().kafka_client_options)
    for i, p in enumerate(payloads):
        producer.send(topic, key=str(i).encode(), value=p)
    producer.flush()
    producer.close()


def test_kafka_to_delta_stream_is_exactly_once_across_restarts(spark, kafka, tmp_topic, tmp_path):
    n = 500
    _produce(kafka, tmp_topic, [json.dumps({"i": i}).encode() for i in range(n)])
    target, checkpoint = str(tmp_path / "sink"), str(tmp_path / "ckpt")

    def run_once() -> None:
        stream = spark.readStream.format("kafka").option("kafka.bootstrap.servers", kafka).options(**config.load().spark_kafka_options)
        stream = stream.option("subscribe", tmp_topic)
        df = stream.option("startingOffsets", "earliest").load().selectExpr("cast(value as string) as v", "partition", "offset")
        query = df.writeStream.format("delta").option("checkpointLocation", checkpoint).trigger(availableNow=True).start(target)
        query.awaitTermination(300)

    run_once()
    rows = spark.read.format("delta").load(target)
    assert rows.count() == n
    assert rows.select("partition", "offset").distinct().count() == n
    run_once()  # a restart from the checkpoint finds nothing new
    assert spark.read.format("delta").load(target).count() == n


# -- MongoDB wire protocol (FerretDB) -----------------------------------------------------
def test_mongo_insert_unique_index_upsert_find_aggregate_delete(mongo):
    import pymongo
    from pymongo.errors import DuplicateKeyError

    client = pymongo.MongoClient(mongo, serverSelectionTimeoutMS=5000)
    coll = client["stack_test"]["sessions"]
    coll.drop()
    coll.create_index("session_id", unique=True)
    coll.insert_one({"session_id": "s1", "user_id": 1, "events": 2})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"session_id": "s1", "user_id": 1, "events": 9})
    coll.update_one({"session_id": "s2"}, {"$set": {"user_id": 1, "events": 3}}, upsert=True)
    coll.update_one({"session_id": "s2"}, {"$inc": {"events": 1}}, upsert=True)
    assert coll.find_one({"session_id": "s2"}, {"_id": 0}) == {"session_id": "s2", "user_id": 1, "events": 4}
    total = list(coll.aggregate([{"$group": {"_id": "$user_id", "n": {"$sum": "$events"}}}]))
    assert total == [{"_id": 1, "n": 6}]
    assert coll.delete_many({"user_id": 1}).deleted_count == 2
    assert coll.count_documents({}) == 0
    client.close()


# -- MLflow -------------------------------------------------------------------------------
def test_mlflow_log_register_alias_and_load_by_alias(mlflow_uri):
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(mlflow_uri)
    mlflow.set_experiment("stack_test")
    X = pd.DataFrame({"a": np.arange(20, dtype=float), "b": np.arange(20, dtype=float) % 3})
    y = (X["a"] > 9).astype(int)
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run():
        mlflow.log_metric("acc", float(model.score(X, y)))
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(X, model.predict(X)), registered_model_name="stack_test_model"
        )
    client = MlflowClient(mlflow_uri)
    client.set_registered_model_alias("stack_test_model", "champion", info.registered_model_version)
    loaded = mlflow.pyfunc.load_model("models:/stack_test_model@champion")
    assert list(loaded.predict(X)) == list(model.predict(X))


# -- dbt ----------------------------------------------------------------------------------
def test_dbt_debug_passes_from_the_repository_root():
    dbt = config.REPO_ROOT / ".venv" / "bin" / "dbt"
    exe = [str(dbt)] if dbt.exists() else [sys.executable, "-m", "dbt.cli.main"]
    result = subprocess.run([*exe, "debug"], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "All checks passed" in result.stdout
