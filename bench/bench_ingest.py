"""Ingest throughput against its ceiling: the same Spark Kafka source merely reading and counting.

Puts N generated events into a fresh topic (skipped when the topic already holds
them), then, in one Spark session and on the same topic:

1. ceiling: a batch read of the whole topic with the Kafka source, parsing
   nothing, counting rows;
2. ingest: the real streaming ingest (``streaming.ingest.start`` with
   ``availableNow``) into a fresh bronze + quarantine, parsing, validating and
   writing Delta.

Prints both rates, their ratio, and the peak RSS of this process tree (driver
JVM + Python) and of the Kafka broker. Usage:
``python -m bench.bench_ingest [--events 1000000] [--partitions 2]``
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import typer
from rich.console import Console
from rich.table import Table

from lakehouse import config, services
from lakehouse.spark import get_spark
from streaming import ingest
from streaming.generate import generate
from streaming.producer import produce_file

console = Console()


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

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def _warm_up_ingest(spark, cfg: config.Config, topic: str, lake: Path) -> None:
    """Run the ingest's parse, validation and Delta writes once on 100 k records into a throw-away lakehouse.

    Both runs are then timed in a warm JVM (the ceiling's read path is warmed the same
    way), so the ratio compares steady-state throughput, not just-in-time compilation.
    """
    from streaming.bronze import BronzePaths, ensure_tables, write_validated
    from streaming.validate import parse_json_payload, validate_fields

    warm_cfg = config.load({**os.environ, "LAKEHOUSE_DIR": str(lake)})
    paths = BronzePaths.from_config(warm_cfg)
    ensure_tables(spark, paths)
    raw = spark.read.format("kafka").option("kafka.bootstrap.servers", cfg.kafka_bootstrap).option("subscribe", topic).load().limit(100_000)
    batch = ingest.with_coordinates(raw)
    write_validated(validate_fields(parse_json_payload(batch)), paths, "warm-up", 0)


def main(
    events: int = typer.Option(1_000_000, help="Events in the topic."),
    partitions: int = typer.Option(2, help="Partitions of the bench topic."),
    max_offsets: int = typer.Option(None, help="maxOffsetsPerTrigger of the ingest (default: INGEST_MAX_OFFSETS_PER_TRIGGER)."),
) -> None:
    """Print bronze rows/s next to the Kafka-source read-and-count ceiling."""
    cfg = config.load()
    kafka = services.all_services(cfg).get("kafka")
    if kafka is not None:
        kafka.start()
    topic = f"bench-ingest-{events}"
    if _topic_size(cfg.kafka_bootstrap, topic) < events:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.csv"
            generate(path, events=events, start=date(2019, 11, 1), days=14, seed=1)
            t0 = time.monotonic()
            sent = produce_file(path, topic=topic, partitions=partitions, progress=True)
            console.print(f"producer: {sent:,} events in {time.monotonic() - t0:.1f}s = {sent / (time.monotonic() - t0):,.0f} ev/s")
    n = _topic_size(cfg.kafka_bootstrap, topic)

    with tempfile.TemporaryDirectory() as lake, PeakRss(psutil.Process().pid) as rss:
        run_cfg = config.load({**os.environ, "LAKEHOUSE_DIR": lake})
        spark = get_spark("bench-ingest", catalog=False, cfg=run_cfg)
        spark.read.format("kafka").option("kafka.bootstrap.servers", cfg.kafka_bootstrap).option("subscribe", topic).load().limit(
            10
        ).count()  # warm-up

        _warm_up_ingest(spark, cfg, topic, Path(lake) / "warm-up")

        t0 = time.monotonic()
        counted = (
            spark.read.format("kafka").option("kafka.bootstrap.servers", cfg.kafka_bootstrap).option("subscribe", topic).load().count()
        )
        ceiling_s = time.monotonic() - t0

        t0 = time.monotonic()
        query = ingest.start(spark, run_cfg, topic=topic, available_now=True, max_offsets=max_offsets, starting_offsets="earliest")
        query.awaitTermination()
        ingest_s = time.monotonic() - t0
        bronze = spark.read.format("delta").load(str(run_cfg.table_path("bronze", "events"))).count()
        quarantine = spark.read.format("delta").load(str(run_cfg.table_path("bronze", "quarantine"))).count()
    broker_rss = psutil.Process(kafka.pid()).memory_info().rss / 2**20 if kafka is not None and kafka.pid() else float("nan")

    table = Table(title=f"ingest of {n:,} Kafka records on {psutil.cpu_count()} cores")
    for col in ("run", "records", "seconds", "records/s"):
        table.add_column(col, justify="right")
    table.add_row("ceiling: Kafka source read + count", f"{counted:,}", f"{ceiling_s:.1f}", f"{counted / ceiling_s:,.0f}")
    table.add_row(
        "ingest: parse + validate + Delta bronze/quarantine",
        f"{bronze + quarantine:,}",
        f"{ingest_s:.1f}",
        f"{(bronze + quarantine) / ingest_s:,.0f}",
    )
    console.print(table)
    console.print(f"ingest / ceiling = {ceiling_s / ingest_s:.2f}   (bronze {bronze:,}, quarantine {quarantine:,})")
    console.print(f"peak RSS: driver JVM + Python {rss.peak:,.0f} MiB; Kafka broker {broker_rss:,.0f} MiB")


if __name__ == "__main__":
    typer.run(main)
