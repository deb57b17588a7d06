"""The predictions table is created by Spark, appended to by delta-rs, and read and edited by Spark."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from streaming.predictions import COLUMN_NAMES, PREDICTION_COLUMNS, PredictionsWriter, ensure_predictions_table

pytestmark = pytest.mark.integration


def _rows(batch: int, n: int = 3) -> pd.DataFrame:
    when = datetime(2019, 11, 3, 10, 0, batch)
    return pd.DataFrame(
        [
            {c: None for c in COLUMN_NAMES}
            | {
                "session_id": f"s{batch}-{i}",
                "user_id": i,
                "prediction_point": 1,
                "event_time": when,
                "event_date": when.date(),
                "processing_time": when,
                "purchase_probability": 0.25,
                "category_probabilities": {"electronics": 0.5},
                "source": "stream",
                "batch_id": batch,
                "converted": i == 0,
            }
            for i in range(n)
        ]
    )


def _fresh_count(spark, path) -> int:
    """Row count as a new reader sees it: Spark's cached table state dropped first."""
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    return spark.read.format("delta").load(str(path)).count()


def _read_through_hadoop(spark, path) -> str:
    """A file's text read the way Delta reads its log (Hadoop FileSystem); a stale .crc beside it raises."""
    jvm = spark._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(str(path))
    stream = jpath.getFileSystem(spark._jsc.hadoopConfiguration()).open(jpath)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def test_a_replayed_batch_adds_nothing_and_spark_reads_what_delta_rs_wrote(spark, tmp_path) -> None:
    path = tmp_path / "predictions"
    ensure_predictions_table(spark, path)
    writer = PredictionsWriter(path)
    assert writer.append(_rows(1), "scorer:t", 1) and writer.append(_rows(2), "scorer:t", 2)
    assert writer.append(_rows(2), "scorer:t", 2) is False  # the replay of batch 2
    assert writer.append(_rows(1), "reprocess:x", 0)  # another app id has its own versions
    assert writer.committed_version("scorer:t") == 2
    df = spark.read.format("delta").load(str(path))
    assert df.count() == 9
    row = df.filter("session_id = 's1-0'").first()
    assert row.category_probabilities == {"electronics": 0.5} and row.event_time == datetime(2019, 11, 3, 10, 0, 1)
    assert row.converted is True and df.filter("not converted").count() == 6


def test_a_table_from_before_the_converted_column_gains_it_and_keeps_its_rows(spark, tmp_path) -> None:
    path = tmp_path / "predictions"
    old = [(name, sql_type) for name, sql_type, _ in PREDICTION_COLUMNS if name != "converted"]
    spark.sql(f"create table delta.`{path}` ({', '.join(f'{n} {t}' for n, t in old)}) using delta partitioned by (event_date)")
    spark.sql(f"insert into delta.`{path}` (session_id, user_id, batch_id) values ('before', 1, -1)")
    ensure_predictions_table(spark, path)
    ensure_predictions_table(spark, path)  # a second start finds nothing to add
    df = spark.read.format("delta").load(str(path))
    assert df.columns == COLUMN_NAMES
    assert "bought" in next(f for f in df.schema.fields if f.name == "converted").metadata.get("comment", "")
    assert PredictionsWriter(path).append(_rows(1), "scorer:t", 1)  # delta-rs writes the new column too
    got = {r.session_id: r.converted for r in spark.read.format("delta").load(str(path)).collect()}
    assert got == {"before": None, "s1-0": True, "s1-1": False, "s1-2": False}


def test_spark_reads_the_table_after_delta_rs_rewrote_the_checkpoint_pointer_spark_wrote(spark, tmp_path) -> None:
    # Spark checkpoints at its commit 4 (interval 4) and leaves a Hadoop .crc beside
    # _last_checkpoint; delta-rs checkpoints later and rewrites that file without it.
    path = tmp_path / "predictions"
    ensure_predictions_table(spark, path)
    spark.sql(f"alter table delta.`{path}` set tblproperties ('delta.checkpointInterval' = '4')")
    for i in range(3):
        spark.sql(f"insert into delta.`{path}` (session_id, user_id, batch_id) values ('spark-{i}', {i}, -1)")
    assert (path / "_delta_log" / "_last_checkpoint").exists()
    spark_pointer = (path / "_delta_log" / "_last_checkpoint").read_text()
    writer = PredictionsWriter(path)
    for batch in range(1, 6):
        writer.append(_rows(batch), "scorer:t", batch)
    assert (path / "_delta_log" / "_last_checkpoint").read_text() != spark_pointer  # delta-rs moved it on
    assert _read_through_hadoop(spark, path / "_delta_log" / "_last_checkpoint").startswith('{"version"')
    assert _fresh_count(spark, path) == 3 + 5 * 3
    spark.sql(f"delete from delta.`{path}` where user_id = 0")  # what delete-user does
    assert writer.append(_rows(6), "scorer:t", 6)
    assert _fresh_count(spark, path) == (3 + 6 * 3) - (1 + 5)
