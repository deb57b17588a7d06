"""Streaming ingest: Kafka topic -> Delta bronze (+ quarantine), exactly once.

Spark Structured Streaming reads the topic; every micro-batch is parsed and
validated (``streaming.validate``) and written with Delta idempotent writes keyed
by the batch id (``streaming.bronze``). The checkpoint remembers offsets; the
Delta transaction ids make the replay of a half-written batch after ``kill -9``
a no-op for the table that already has it. Bad records never stop the stream:
they become quarantine rows with a reason.

Usage: ``python -m streaming.ingest [--available-now] [--trigger-seconds 5] ...``
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse import config
from lakehouse.spark import LONG_RUNNING_CONF, get_spark
from streaming import supervisor
from streaming.bronze import BronzePaths, Fetch, ensure_tables, require_checkpoint_covers, write_validated
from streaming.erasure import ErasureWatch, skipping_erased
from streaming.producer import CSV_LINE_FORMAT, FORMAT_HEADER, SOURCE_FILE_HEADER, SOURCE_LINE_HEADER, ensure_topic
from streaming.validate import validate_kafka

log = logging.getLogger("streaming.ingest")


def checkpoint_dir(cfg: config.Config, topic: str) -> Path:
    return cfg.checkpoints_dir / f"ingest-{topic}"


def kafka_stream(spark: SparkSession, cfg: config.Config, topic: str, *, starting_offsets: str, max_offsets: int) -> DataFrame:
    """The raw Kafka stream, headers included (`with_coordinates` gives the columns every output row keeps)."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
        .options(**cfg.spark_kafka_options)
        .option("subscribe", topic)
        .option("includeHeaders", "true")
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", max_offsets)
        # Records deleted by retention before we read them cannot be recovered; report, don't crash.
        .option("failOnDataLoss", "false")
        .load()
    )


def with_coordinates(raw: DataFrame) -> DataFrame:
    """Kafka records (stream or batch) as the value plus the coordinates every output row keeps.

    A file line the producer could not read carries its file and line in headers
    (``streaming.producer.bad_line_record``); they become the row's ``source_file`` and
    ``source_line``. A source read without ``includeHeaders`` has no such records.
    """

    def header(name: str) -> Column:
        if "headers" not in raw.columns:
            return F.lit(None).cast("string")
        return F.try_element_at(F.filter("headers", lambda h: h["key"] == name), F.lit(1))["value"].cast("string")

    return raw.select(
        "value",
        (header(FORMAT_HEADER) == CSV_LINE_FORMAT.decode()).alias("is_csv_line"),
        F.lit("kafka").alias("source"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        header(SOURCE_FILE_HEADER).alias("source_file"),
        header(SOURCE_LINE_HEADER).cast("bigint").alias("source_line"),
    )


# Rejects of a batch that the quarantine pass reads from Kafka by offset, one seek each; for more, it reads the
# batch again in Spark, which costs about as much as a few hundred seeks (`bench/bench_ingest.py` logs both passes).
FETCH_REJECTS_AT_MOST = 200


def kafka_fetch(spark: SparkSession, cfg: config.Config, topic: str, schema: T.StructType) -> Fetch:
    """A `streaming.bronze.Fetch` for the quarantine pass: the rejected records read again from Kafka by offset.

    Why: a batch holds a million records and a few dozen rejects; reading the whole
    batch again in Spark to find them costs seconds per batch. A plain consumer seeks to
    each one instead. The records become rows of the stream's own ``schema`` and go
    through `with_coordinates`, so the quarantine gets what the batch would have given.
    Returns None (the caller reads the batch again) when there are too many or one is
    gone, e.g. removed by retention since the batch read it.
    """

    def fetch(keys: list[Row]) -> DataFrame | None:
        if len(keys) > FETCH_REJECTS_AT_MOST:
            return None
        found = records_at(cfg, topic, [(k["kafka_partition"], k["kafka_offset"]) for k in keys])
        if len(found) < len(keys):
            log.warning(
                "%d of %d rejected records not found in Kafka by offset: reading the batch again", len(keys) - len(found), len(keys)
            )
            return None
        return with_coordinates(spark.createDataFrame([_spark_row(r) for r in found], schema))

    return fetch


def records_at(cfg: config.Config, topic: str, coordinates: list[tuple[int, int]], *, timeout_s: float = 10.0) -> list:
    """The topic's records at these (partition, offset)s, read by a kafka-python consumer; those not found are left out."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    consumer = KafkaConsumer(
        bootstrap_servers=cfg.kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="none", **cfg.kafka_client_options
    )
    found = []
    try:
        for partition, offset in sorted(coordinates):
            tp = TopicPartition(topic, partition)
            if consumer.assignment() != {tp}:
                consumer.assign([tp])
            consumer.seek(tp, offset)
            deadline = time.monotonic() + timeout_s
            try:
                while not (polled := consumer.poll(timeout_ms=500, max_records=1).get(tp)) and time.monotonic() < deadline:
                    pass
            except KafkaError:  # e.g. the offset is out of range: removed by retention
                continue
            if polled and polled[0].offset == offset:
                found.append(polled[0])
    finally:
        consumer.close()
    return found


def _spark_row(record) -> tuple:
    """A kafka-python record as a row of Spark's Kafka source (headers included; none is a null array, as Spark gives)."""
    timestamp = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=record.timestamp)
    headers = [(key, value) for key, value in record.headers] or None
    return (record.key, record.value, record.topic, record.partition, record.offset, timestamp, record.timestamp_type, headers)


def batch_writer(paths: BronzePaths, app_id: str, cfg: config.Config, fetch: Fetch | None = None):
    """The foreachBatch function: validate, then write bronze and quarantine idempotently.

    The erasure register is checked at every batch: a user erased while the stream
    runs must not come back with the next replayed record. ``fetch`` reads a batch's
    rejects again for the quarantine (`kafka_fetch`).
    """

    erasures = ErasureWatch(cfg)

    def write(batch: DataFrame, batch_id: int) -> None:
        validate = skipping_erased(validate_kafka, erasures.get())
        result = write_validated(batch, validate, paths, app_id, batch_id, fetch=fetch)
        log.info(
            "batch %d: %d to bronze in %.1fs, %d to quarantine in %.1fs",
            batch_id,
            result.bronze,
            result.bronze_s,
            result.quarantine,
            result.quarantine_s,
        )

    return write


def start(
    spark: SparkSession,
    cfg: config.Config,
    *,
    topic: str | None = None,
    trigger_seconds: int | None = None,
    max_offsets: int | None = None,
    starting_offsets: str | None = None,
    available_now: bool = False,
):
    """Start the ingest query and return it (the caller awaits or stops it)."""
    topic = topic or str(cfg["KAFKA_TOPIC"])
    ensure_topic(topic, bootstrap=cfg.kafka_bootstrap)  # the stream may start before the first producer
    paths = BronzePaths.from_config(cfg)
    ensure_tables(spark, paths)
    raw = kafka_stream(
        spark,
        cfg,
        topic,
        starting_offsets=starting_offsets or str(cfg["INGEST_STARTING_OFFSETS"]),
        max_offsets=int(max_offsets or cfg["INGEST_MAX_OFFSETS_PER_TRIGGER"]),
    )
    # A stable id (not the query's run id) so a restart from the checkpoint replays into the same transactions.
    app_id = f"ingest:{topic}"
    require_checkpoint_covers([paths.events, paths.quarantine], app_id, checkpoint_dir(cfg, topic))
    write = batch_writer(paths, app_id, cfg, kafka_fetch(spark, cfg, topic, raw.schema))
    writer = with_coordinates(raw).writeStream.foreachBatch(write).option("checkpointLocation", str(checkpoint_dir(cfg, topic)))
    if available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{int(trigger_seconds or cfg['INGEST_TRIGGER_SECONDS'])} seconds")
    return writer.queryName(f"ingest-{topic}").start()


app = typer.Typer(add_completion=False)


def supervise(start_query, *, max_restarts: int, backoff_seconds: float = 2.0, max_backoff: float = 60.0) -> int:
    """Run the query; restart it from its checkpoint when it fails, until stopped (``streaming.supervisor``).

    Failures here are infrastructure ones (broker down, disk full): bad *data* never
    fails the query, it goes to quarantine. Restarting from the checkpoint is safe
    because writes are idempotent per batch.
    """
    return supervisor.supervise(
        start_query, name="ingest", max_restarts=max_restarts, backoff_seconds=backoff_seconds, max_backoff=max_backoff
    )


@app.command()
def main(
    topic: str = typer.Option(None, help="Kafka topic to read (default: KAFKA_TOPIC)."),
    trigger_seconds: int = typer.Option(None, help="Micro-batch interval (default: INGEST_TRIGGER_SECONDS)."),
    max_offsets: int = typer.Option(None, help="Max records per micro-batch (default: INGEST_MAX_OFFSETS_PER_TRIGGER)."),
    starting_offsets: str = typer.Option(None, help="earliest or latest, for a new checkpoint (default: INGEST_STARTING_OFFSETS)."),
    available_now: bool = typer.Option(False, "--available-now", help="Ingest everything in the topic now, then stop."),
    max_restarts: int = typer.Option(100, help="Restarts from the checkpoint after an infrastructure failure before giving up."),
) -> None:
    """Ingest click events from Kafka into the Delta bronze and quarantine tables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config.load()
    spark = get_spark("ingest", catalog=False, cfg=cfg, extra=LONG_RUNNING_CONF)
    log.info("ingest: topic %s -> %s", topic or cfg["KAFKA_TOPIC"], BronzePaths.from_config(cfg).events)
    try:
        supervise(
            lambda: start(
                spark,
                cfg,
                topic=topic,
                trigger_seconds=trigger_seconds,
                max_offsets=max_offsets,
                starting_offsets=starting_offsets,
                available_now=available_now,
            ),
            max_restarts=max_restarts,
        )
    except RuntimeError as exc:
        typer.secho(str(exc), fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    app()
