"""Streaming ingest and backfill: every record lands once, in bronze or in quarantine with its reason."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F

from streaming import backfill, bronze, ingest, reconcile
from streaming.bronze import BronzePaths
from tests.support.kafka_helpers import create_topic, sample_payloads, send_raw

pytestmark = pytest.mark.integration

GOOD = {
    "event_time": "2019-11-01 00:00:00 UTC",
    "event_type": "view",
    "product_id": 1,
    "category_id": 2,
    "price": 9.5,
    "user_id": 3,
    "user_session": "s",
}

# One payload of each bad kind, and the reason the quarantine must give it.
BAD_KINDS: list[tuple[bytes, str]] = [
    (b"{not json", "invalid_json"),
    (b"[1, 2, 3]", "invalid_json"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "user_id"}).encode(), "missing_field"),
    (json.dumps({**GOOD, "product_id": "abc"}).encode(), "wrong_type"),
    (json.dumps({**GOOD, "price": "cheap"}).encode(), "wrong_type"),
    (json.dumps({**GOOD, "event_type": "teleport"}).encode(), "unknown_event_type"),
    (json.dumps({**GOOD, "event_time": "yesterday at noon"}).encode(), "unparsable_timestamp"),
    (json.dumps({**GOOD, "event_time": "2999-01-01 00:00:00 UTC"}).encode(), "timestamp_out_of_range"),
    (json.dumps({**GOOD, "price": -12.0}).encode(), "price_out_of_range"),
    (json.dumps({**GOOD, "price": 1e12}).encode(), "price_out_of_range"),
    (json.dumps({**GOOD, "user_id": -4}).encode(), "invalid_id"),
    (b'{"event_type": "view", "brand": "\xff\xfe"}', "invalid_utf8"),
    (b'{"pad": "' + b"x" * 40_000 + b'"}', "oversize_payload"),
]


def _tables(spark, cfg):
    paths = BronzePaths.from_config(cfg)
    return spark.read.format("delta").load(str(paths.events)), spark.read.format("delta").load(str(paths.quarantine))


def test_good_records_reach_bronze_and_each_bad_kind_is_quarantined_with_its_reason(spark, cfg, kafka, tmp_topic, sample_csv):
    good = sample_payloads(sample_csv)
    mixed = list(good)
    for j, (payload, _) in enumerate(BAD_KINDS):  # bad records sit between good ones
        mixed.insert(j * 50, (b"bad", payload))
    create_topic(kafka, tmp_topic)
    sent = send_raw(kafka, tmp_topic, mixed)

    query = ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest")
    query.awaitTermination(600)
    assert query.exception() is None

    bronze, quarantine = _tables(spark, cfg)
    bronze, quarantine = bronze.filter(F.col("kafka_topic") == tmp_topic), quarantine.filter(F.col("kafka_topic") == tmp_topic)
    assert bronze.count() == len(good) == 683
    assert {r.event_type: r["count"] for r in bronze.groupBy("event_type").count().collect()} == {"view": 678, "cart": 3, "purchase": 2}
    assert bronze.filter(F.col("category_code").isNull()).count() == 269
    got = sorted((r.raw_payload.encode("utf-8", "replace")[:60], r.reason) for r in quarantine.collect())
    assert sorted(r for _, r in got) == sorted(reason for _, reason in BAD_KINDS)
    assert quarantine.filter(F.col("kafka_offset").isNull()).count() == 0
    assert bronze.count() + quarantine.count() == sent

    reports = reconcile.reconcile(spark, cfg, tmp_topic)
    assert all(r.ok for r in reports), reports
    assert sum(r.kafka_records for r in reports) == sent


def test_rejects_read_again_by_offset_are_the_rows_the_batch_gives(spark, cfg, kafka, tmp_topic, tmp_path, monkeypatch):
    """The quarantine pass's two ways to find a batch's rejects agree: a consumer seeking each offset, a semi-join on the batch.

    A bad file line carries its file and line in headers: they must come through the
    seek as they come through Spark's reader. A reject Kafka no longer has, or more
    rejects than are worth seeking, make the fetch step aside for the semi-join.
    """
    from streaming.producer import bad_line_record, make_producer
    from streaming.rees46 import BadLine
    from streaming.validate import RECORD_KEY, validate_kafka

    create_topic(kafka, tmp_topic, partitions=2)
    send_raw(
        kafka,
        tmp_topic,
        [(b"k", json.dumps({**GOOD, "product_id": i + 1}).encode()) for i in range(20)] + [(b"bad", p) for p, _ in BAD_KINDS],
    )
    producer = make_producer(kafka)
    value, headers = bad_line_record(tmp_path / "dirty.csv", BadLine(7, b"a,truncated,line", "expected 9 fields, found 3"))
    producer.send(tmp_topic, value=value, headers=headers)
    producer.flush()
    producer.close()

    raw = spark.read.format("kafka").option("kafka.bootstrap.servers", kafka).options(**cfg.spark_kafka_options)
    raw = raw.option("subscribe", tmp_topic).option("includeHeaders", "true").load()
    batch = ingest.with_coordinates(raw)
    keys = validate_kafka(batch, datetime.now(UTC)).filter(F.col("reason").isNotNull()).select(*RECORD_KEY).collect()
    assert len(keys) == len(BAD_KINDS) + 1
    fetch = ingest.kafka_fetch(spark, cfg, tmp_topic, raw.schema)
    fetched, joined = fetch(keys), bronze._only(batch, keys)
    assert fetched is not None and fetched.count() == joined.count() == len(keys)
    assert fetched.exceptAll(joined).count() == 0 and joined.exceptAll(fetched).count() == 0
    assert fetched.filter(F.col("source_line") == 7).filter(F.col("is_csv_line")).count() == 1

    gone = Row(kafka_partition=0, kafka_offset=10**9, source_line=None)
    assert fetch([*keys[:1], gone]) is None
    monkeypatch.setattr(ingest, "FETCH_REJECTS_AT_MOST", 1)
    assert fetch(keys[:2]) is None


def test_category_id_keeps_all_19_digits(spark, cfg, kafka, tmp_topic):
    big = 2053013555631882655
    create_topic(kafka, tmp_topic, partitions=1)
    send_raw(kafka, tmp_topic, [(b"k", json.dumps({**GOOD, "category_id": big}).encode())])
    ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest").awaitTermination(600)
    bronze, _ = _tables(spark, cfg)
    assert bronze.filter(F.col("kafka_topic") == tmp_topic).first().category_id == big


def test_backfill_loads_plain_gzip_and_header_files_alike_and_is_idempotent(spark, cfg, sample_csv, tmp_path):
    lines = sample_csv.read_text().splitlines()
    # A private copy: other tests put rows into bronze whose source_file is the shared sample's path.
    sample_csv = tmp_path / sample_csv.name
    sample_csv.write_text("\n".join(lines) + "\n")
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    gz = tmp_path / "with_header.csv.gz"
    gz.write_bytes(gzip.compress(("\n".join([header, *lines, "2019-11-01 00:00:00 UTC,view,abc,1,,,1,1,s", "a,b"]) + "\n").encode()))

    first = backfill.backfill_file(spark, cfg, sample_csv)
    assert (first.bronze, first.quarantine, first.committed) == (683, 0, True)
    second = backfill.backfill_file(spark, cfg, gz)
    assert (second.bronze, second.quarantine) == (683, 2)
    again = backfill.backfill_file(spark, cfg, sample_csv)
    assert again.committed is False

    bronze, quarantine = _tables(spark, cfg)
    ours = [str(sample_csv.resolve()), str(gz.resolve())]
    per_file = {r.source_file: r["count"] for r in bronze.filter(F.col("source_file").isin(ours)).groupBy("source_file").count().collect()}
    assert per_file == {str(sample_csv.resolve()): 683, str(gz.resolve()): 683}
    bad = {(r.source_line, r.reason) for r in quarantine.filter(F.col("source_file") == str(gz.resolve())).collect()}
    assert bad == {(len(lines) + 2, "wrong_type"), (len(lines) + 3, "malformed_csv")}


def test_a_batch_replayed_after_dying_between_its_two_commits_lands_once(spark, cfg, tmp_path, monkeypatch):
    """Bronze committed, quarantine not (the process died in between): the replay adds the quarantine rows only.

    The replay takes the other branch of ``write_validated``: bronze already holds the
    batch, so its rejected rows are found by a query of their own.
    """
    path = tmp_path / "mixed.csv"
    path.write_text("2019-11-01 00:00:00 UTC,view,1,2,,,9.5,3,s\n2019-11-01 00:00:01 UTC,view,abc,2,,,9.5,3,s\n")
    paths = BronzePaths.from_config(cfg)
    append = bronze._append

    def dies_before_quarantine(df, table, app_id, version):
        if table == paths.quarantine:
            raise RuntimeError("killed between the two commits")
        append(df, table, app_id, version)

    monkeypatch.setattr(bronze, "_append", dies_before_quarantine)
    with pytest.raises(RuntimeError, match="between the two commits"):
        backfill.backfill_file(spark, cfg, path)
    monkeypatch.setattr(bronze, "_append", append)
    replay = backfill.backfill_file(spark, cfg, path)
    assert (replay.bronze, replay.quarantine, replay.committed) == (1, 1, True)

    good, bad = (t.filter(F.col("source_file") == str(path.resolve())) for t in _tables(spark, cfg))
    assert good.count() == 1
    assert [(r.source_line, r.reason) for r in bad.collect()] == [(2, "wrong_type")]


def test_a_flood_of_rejects_is_quarantined_whole(spark, cfg, tmp_path, monkeypatch):
    """Past ``REJECTS_BY_KEY_AT_MOST`` rejects, the quarantine pass re-validates the whole batch instead of joining on keys."""
    monkeypatch.setattr(bronze, "REJECTS_BY_KEY_AT_MOST", 1)
    path = tmp_path / "flood.csv"
    path.write_text("2019-11-01 00:00:00 UTC,view,1,2,,,9.5,3,s\nnot,a,row\n2019-11-01 00:00:01 UTC,teleport,1,2,,,9.5,3,s\n")
    result = backfill.backfill_file(spark, cfg, path)
    assert (result.bronze, result.quarantine) == (1, 2)
    _, quarantine = _tables(spark, cfg)
    got = {(r.source_line, r.reason) for r in quarantine.filter(F.col("source_file") == str(path.resolve())).collect()}
    assert got == {(2, "malformed_csv"), (3, "unknown_event_type")}


def test_backfill_numbers_lines_across_input_splits(spark, cfg, sample_csv, tmp_path):
    """A file read in several splits still gets each line's own number (the quarantine names it)."""
    lines = sample_csv.read_text().splitlines()
    lines.insert(600, "2019-11-01 00:00:00 UTC,teleport,1,2,,,9.5,3,s")  # line 601, in a later split
    path = tmp_path / "split.csv"
    path.write_text("\n".join(lines) + "\n")
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16384")  # the ~110 kB file in several splits
    try:
        assert spark.read.text(str(path)).rdd.getNumPartitions() > 1
        result = backfill.backfill_file(spark, cfg, path)
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    assert (result.bronze, result.quarantine) == (683, 1)
    _, quarantine = _tables(spark, cfg)
    assert [(r.source_line, r.reason) for r in quarantine.filter(F.col("source_file") == str(path.resolve())).collect()] == [
        (601, "unknown_event_type")
    ]


def dirty_copy(sample_csv, path):
    """The sample as a real download may look: BOM, header, CR LF, a bad value, a blank line, a truncated last line.

    Returns the file and {line: reason} of the lines that hold no event.
    """
    lines = sample_csv.read_text(encoding="utf-8").splitlines()
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    bad_value = lines[99].replace(",", ",x", 1).split(",")  # event_type "xview"
    body = [header, *lines[:100], ",".join(bad_value), "", *lines[100:-1], lines[-1].rsplit(",", 1)[0]]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(body).encode("utf-8"))  # no line end after the truncated line
    return path, {102: "unknown_event_type", len(body): "malformed_csv"}


def test_a_dirty_file_lands_the_same_through_kafka_and_through_the_backfill(spark, cfg, kafka, tmp_topic, sample_csv, tmp_path):
    """Nothing lost, nothing invented: every line is an event in bronze or a quarantine row with its file and line."""
    from streaming.producer import produce_file

    path, expected = dirty_copy(sample_csv, tmp_path / "dirty.csv")
    reported = []
    sent = produce_file(path, topic=tmp_topic, bootstrap=kafka, on_bad_line=reported.append)
    assert sent == 682 + 2  # the sample's lines but the truncated last, plus the bad value's and the truncated line
    assert [(b.line, b.problem) for b in reported] == [(len(path.read_bytes().split(b"\r\n")), "expected 9 fields, found 8")]

    query = ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest")
    query.awaitTermination(600)
    assert query.exception() is None
    bronze, quarantine = _tables(spark, cfg)
    via_kafka = bronze.filter(F.col("kafka_topic") == tmp_topic)
    assert via_kafka.count() == 682
    rejects = quarantine.filter(F.col("kafka_topic") == tmp_topic).collect()
    truncated = [r for r in rejects if r.reason == "malformed_csv"]
    assert len(truncated) == 1 and truncated[0].source_file == str(path.resolve())
    assert truncated[0].source_line == max(expected) and truncated[0].reason_detail == "expected 9 fields, found 8"
    assert truncated[0].raw_payload == path.read_bytes().split(b"\r\n")[-1].decode()
    assert sorted(r.reason for r in rejects) == sorted(expected.values())
    assert all(reconcile_report.ok for reconcile_report in reconcile.reconcile(spark, cfg, tmp_topic))

    loaded = backfill.backfill_file(spark, cfg, path)
    assert (loaded.bronze, loaded.quarantine) == (682, 2)
    by_file = quarantine.filter(F.col("source_file") == str(path.resolve())).filter(F.col("source").isin("file"))
    assert {(r.source_line, r.reason) for r in by_file.collect()} == set(expected.items())
    # The same events, whichever door: the BOM, the header and CR LF left no trace in the values.
    columns = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session"]
    from_file = bronze.filter(F.col("source_file") == str(path.resolve())).select(*columns)
    assert via_kafka.select(*columns).exceptAll(from_file).count() == 0
    assert from_file.exceptAll(via_kafka.select(*columns)).count() == 0
    assert from_file.filter(F.col("user_session").endswith("\r")).count() == 0


def test_a_lost_checkpoint_is_refused_instead_of_skipping_every_batch_as_already_written(spark, cfg, kafka, tmp_topic):
    """Batch ids restart at 0 with a new checkpoint; Delta would drop them all as replays of the old ones."""
    import shutil

    create_topic(kafka, tmp_topic, partitions=1)
    send_raw(kafka, tmp_topic, [(b"k", json.dumps({**GOOD, "product_id": i + 1}).encode()) for i in range(5)])
    ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest").awaitTermination(600)
    ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest").awaitTermination(600)  # intact: fine
    shutil.rmtree(ingest.checkpoint_dir(cfg, tmp_topic))
    with pytest.raises(bronze.CheckpointMismatch, match="lost or recreated"):
        ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest")
    events, _ = _tables(spark, cfg)
    assert events.filter(F.col("kafka_topic") == tmp_topic).count() == 5
