"""Ingest throughput against its ceiling: the same Spark Kafka source merely reading and counting.

Puts N generated events into a fresh topic (skipped when the topic already holds
them), then, in one Spark session and on the same topic:

1. ceiling: a batch read of the whole topic with the Kafka source, parsing
   nothing, counting rows;
2. bound: the least any Spark ingest of these records into Parquet does: the same
   read, ``from_json`` of the fields as text and a plain Parquet write (no typing, no
   validation, no Delta). No ingest built on it can beat its ratio to the ceiling;
3. contract: the bound of any ingest held to this project's input contract: the same
   read, every record judged by ``streaming.validate`` exactly as the ingest judges it,
   and the bronze columns plus the reason written as plain Parquet (no Delta, no
   erasure register, no second table). The ingest's distance from it is what Delta
   and the quarantine cost; its distance from the bound is what the contract costs;
4. ingest: the real streaming ingest (``streaming.ingest.start`` with
   ``availableNow``) into a fresh bronze + quarantine, parsing, validating and
   writing Delta.

All are timed in rounds: first in a new JVM, then again in the same JVM (steady state).
Prints the rates, their ratios, where each ingest's time went (set-up and each batch; the
ingest's log gives each batch's bronze and quarantine passes), Spark's own account of the
bound, the contract and the ingest (their tasks' core-seconds, and the time in which a stage
ran: the rest is the driver's planning, Delta's tables and commits; ``bench/spark_stages.py``,
from the session's UI), and the peak RSS of this process tree (driver JVM + Python) and of the Kafka
broker. Usage:
``python -m bench.bench_ingest [--events 1000000] [--partitions 2] [--rounds 3]``
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import psutil
import typer
from pyspark.sql import functions as F
from rich.table import Table

from bench import bench_console
from bench.spark_stages import StageCounter, StageSummary
from lakehouse import config, credentials, services
from lakehouse.spark import LONG_RUNNING_CONF, get_spark
from streaming import events, ingest
from streaming.generate import generate
from streaming.producer import produce_file
from streaming.validate import RAW_SCHEMA, validate_kafka

console = bench_console()


class PeakRss:
    """Samples the RSS of a process tree in a thread; ``peak`` in MiB."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs) / 2**20)
            except psutil.Error:
                pass
            self._stop.wait(0.5)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _topic_size(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **config.load().kafka_client_options)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def _read_topic(spark, cfg: config.Config, topic: str, *, headers: bool = False):
    """The whole topic as a batch read of the same Kafka source the ingest streams from; ``headers`` reads them as the ingest does."""
    reader = spark.read.format("kafka").option("kafka.bootstrap.servers", cfg.kafka_bootstrap).options(**cfg.spark_kafka_options)
    return reader.option("subscribe", topic).option("includeHeaders", str(headers).lower()).load()


@dataclass(frozen=True)
class Round:
    """One ceiling read and one ingest of the whole topic, in the same JVM."""

    counted: int
    ceiling_s: float
    bound_s: float
    contract_s: float
    ingested: int
    ingest_s: float
    setup_s: float  # ``ingest.start`` until the query runs: the topic, the two tables, the checkpoint check
    batches_s: tuple[float, ...]  # each micro-batch's whole trigger (offsets, planning, the foreachBatch, commits)
    stages: dict[str, StageSummary]  # Spark's stages of the bound, the contract and the ingest (`StageCounter`)


def _round(spark, cfg: config.Config, topic: str, lake: Path, max_offsets: int | None) -> Round:
    """Time the read-and-count ceiling, the bound, the contract, then the real streaming ingest into a fresh lakehouse at ``lake``."""
    ui = spark.sparkContext.uiWebUrl
    t0 = time.monotonic()
    counted = _read_topic(spark, cfg, topic).count()
    ceiling_s = time.monotonic() - t0
    with StageCounter(ui) as bound:
        t0 = time.monotonic()
        _parse_and_write(_read_topic(spark, cfg, topic), lake / "bound")
        bound_s = time.monotonic() - t0
    with StageCounter(ui) as contract:
        t0 = time.monotonic()
        _validate_and_write(_read_topic(spark, cfg, topic, headers=True), lake / "contract")
        contract_s = time.monotonic() - t0
    run_cfg = _fresh_lakehouse(lake, cfg)
    with StageCounter(ui) as ingested_stages:
        t0 = time.monotonic()
        query = ingest.start(spark, run_cfg, topic=topic, available_now=True, max_offsets=max_offsets, starting_offsets="earliest")
        setup_s = time.monotonic() - t0
        query.awaitTermination()
        ingest_s = time.monotonic() - t0
    batches_s = tuple(p.durationMs["triggerExecution"] / 1000 for p in query.recentProgress if p.numInputRows)
    ingested = sum(spark.read.format("delta").load(str(run_cfg.table_path("bronze", t))).count() for t in ("events", "quarantine"))
    stages = {"bound": bound.summary, "contract": contract.summary, "ingest": ingested_stages.summary}
    return Round(counted, ceiling_s, bound_s, contract_s, ingested, ingest_s, setup_s, batches_s, stages)


def _fresh_lakehouse(lake: Path, cfg: config.Config) -> config.Config:
    """An empty lakehouse at ``lake`` whose clients log in to the running services.

    Logins live in each lakehouse's credentials file, and a new folder would get new
    random ones that the broker (started for ``cfg``) refuses: the file is copied.
    """
    run_cfg = config.load({**os.environ, "LAKEHOUSE_DIR": str(lake)})
    credentials.owner_only_dir(run_cfg.services_dir)
    credentials.write_private(run_cfg.credentials_file, cfg.credentials_file.read_text())
    return run_cfg


def _parse_and_write(records, path: Path) -> None:
    """Parse every record's fields as text and write them as Parquet: the floor of any real ingest."""
    fields = F.from_json(F.col("value").cast("string"), RAW_SCHEMA).alias("f")
    records.select(fields, "partition", "offset").select("f.*", "partition", "offset").write.parquet(str(path))


def _validate_and_write(records, path: Path) -> None:
    """Judge every record by the input contract, as the ingest does, and write the bronze columns and the reason as Parquet.

    Rejected rows keep their reason but not their payload (the quarantine's extra bytes
    are a Delta write's concern, and rejects are few).
    """
    validated = validate_kafka(ingest.with_coordinates(records), datetime.now(UTC)).withColumn("ingested_at", F.current_timestamp())
    validated.select(*[c.name for c in events.BRONZE_COLUMNS], "reason", "reason_detail").write.parquet(str(path))


def main(
    events: int = typer.Option(1_000_000, help="Events in the topic."),
    partitions: int = typer.Option(2, help="Partitions of the bench topic."),
    max_offsets: int = typer.Option(None, help="maxOffsetsPerTrigger of the ingest (default: INGEST_MAX_OFFSETS_PER_TRIGGER)."),
    rounds: int = typer.Option(3, min=1, help="Rounds in one JVM: the first is a just-started ingest, the last the steady state."),
) -> None:
    """Print bronze rows/s next to the Kafka-source read-and-count ceiling."""
    # The ingest logs each batch's two passes (bronze, quarantine) and their seconds.
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
    logging.getLogger(ingest.log.name).setLevel(logging.INFO)
    cfg = config.load()
    kafka = services.all_services(cfg).get("kafka")
    started_here = kafka is not None and kafka.pid() is None
    if kafka is not None:
        kafka.start()
    try:
        _bench(cfg, kafka, events, partitions, max_offsets, rounds)
    finally:
        if started_here:  # a broker the user had running stays up; the one started for the bench stops
            kafka.stop()


def _bench(cfg: config.Config, kafka: services.Service | None, events: int, partitions: int, max_offsets: int | None, rounds: int) -> None:
    topic = f"bench-ingest-{events}"
    if _topic_size(cfg.kafka_bootstrap, topic) < events:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.csv"
            generate(path, events=events, start=date(2019, 11, 1), days=14, seed=1)
            t0 = time.monotonic()
            sent = produce_file(path, topic=topic, partitions=partitions, progress=True)
            console.print(f"producer: {sent:,} events in {time.monotonic() - t0:.1f}s = {sent / (time.monotonic() - t0):,.0f} ev/s")
    n = _topic_size(cfg.kafka_bootstrap, topic)

    # Round 1 is what a just-started ingest does with its first big batch; later rounds, in the
    # same JVM, each on a fresh lakehouse, approach the steady state of a stream that has been
    # running a while (classes loaded, code JIT-compiled). The ceiling and the ingest are timed
    # in each round.
    with tempfile.TemporaryDirectory() as lake, PeakRss(psutil.Process().pid) as rss:
        # The UI (on a free port) serves the stages that `StageCounter` adds up, and keeps a whole round's.
        ui = {"spark.ui.enabled": "true", "spark.ui.port": "0", "spark.ui.retainedStages": "1000"}
        spark = get_spark(
            "bench-ingest", catalog=False, cfg=config.load({**os.environ, "LAKEHOUSE_DIR": lake}), extra={**LONG_RUNNING_CONF, **ui}
        )
        _read_topic(spark, cfg, topic).limit(10).count()  # connect to the broker once before timing
        results = [_round(spark, cfg, topic, Path(lake) / f"round-{i}", max_offsets) for i in range(1, rounds + 1)]
    broker_rss = psutil.Process(kafka.pid()).memory_info().rss / 2**20 if kafka is not None and kafka.pid() else float("nan")

    table = Table(title=f"ingest of {n:,} Kafka records on {psutil.cpu_count()} cores")
    for col in ("round", "run", "records", "seconds", "records/s", "ceiling/run", "bound/run"):
        table.add_column(col, justify="right")
    for i, r in enumerate(results, start=1):
        table.add_row(
            "1: new JVM" if i == 1 else str(i),
            "ceiling: read + count",
            f"{r.counted:,}",
            f"{r.ceiling_s:.1f}",
            f"{r.counted / r.ceiling_s:,.0f}",
            "",
        )
        table.add_row(
            "",
            "bound: + from_json + Parquet",
            f"{r.counted:,}",
            f"{r.bound_s:.1f}",
            f"{r.counted / r.bound_s:,.0f}",
            f"{r.ceiling_s / r.bound_s:.2f}",
            "1.00",
        )
        table.add_row(
            "",
            "contract: + validation + Parquet",
            f"{r.counted:,}",
            f"{r.contract_s:.1f}",
            f"{r.counted / r.contract_s:,.0f}",
            f"{r.ceiling_s / r.contract_s:.2f}",
            f"{r.bound_s / r.contract_s:.2f}",
        )
        table.add_row(
            "",
            "ingest to bronze + quarantine",
            f"{r.ingested:,}",
            f"{r.ingest_s:.1f}",
            f"{r.ingested / r.ingest_s:,.0f}",
            f"{r.ceiling_s / r.ingest_s:.2f}",
            f"{r.bound_s / r.ingest_s:.2f}",
        )
    console.print(table)
    console.print(
        "ceiling: the Kafka source reading and counting the topic; bound: the same read, parsing the JSON fields as text"
        " and writing plain Parquet (what any Spark ingest must at least do); contract: the same read, judged by the input"
        " contract as the ingest judges it, written as plain Parquet; ingest: parse, validate, write Delta bronze + quarantine"
    )
    for i, r in enumerate(results, start=1):
        batches = ", ".join(f"{b:.1f}" for b in r.batches_s)
        console.print(
            f"round {i} ingest, {r.ingest_s:.1f}s: set-up {r.setup_s:.1f}s (topic, tables, checkpoint check); "
            f"batches {batches}s; the rest {r.ingest_s - r.setup_s - sum(r.batches_s):.1f}s (the query's start and end)"
        )
        for name, wall_s in (("bound", r.bound_s), ("contract", r.contract_s), ("ingest", r.ingest_s)):
            console.print(f"round {i} {name}: {r.stages[name].describe(wall_s)}")
    console.print(f"peak RSS: driver JVM + Python {rss.peak:,.0f} MiB; Kafka broker {broker_rss:,.0f} MiB")


if __name__ == "__main__":
    typer.run(main)
