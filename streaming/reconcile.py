"""Reconciliation: every Kafka record is in bronze or quarantine exactly once.

Per topic partition, compares the records Kafka holds (end offset minus log start
offset) with the rows in bronze + quarantine carrying that partition's
coordinates, and counts duplicated offsets. Exits non-zero on any difference, so
it can gate a pipeline or a CI run.

Usage: ``python -m streaming.reconcile [--topic events]``
"""

from __future__ import annotations

from dataclasses import dataclass

import typer
from kafka import KafkaConsumer, TopicPartition
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from rich.console import Console
from rich.table import Table

from lakehouse import config
from lakehouse.spark import get_spark, read_delta
from streaming.bronze import BronzePaths


@dataclass(frozen=True)
class PartitionReport:
    partition: int
    kafka_records: int
    bronze: int
    quarantine: int
    duplicates: int

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.bronze + self.quarantine == self.kafka_records


def kafka_counts(bootstrap: str, topic: str) -> dict[int, int]:
    """Records currently held per partition (end offset minus beginning offset)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise typer.BadParameter(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        return {tp.partition: end[tp] - begin[tp] for tp in tps}
    finally:
        consumer.close()


def lake_counts(spark: SparkSession, paths: BronzePaths, topic: str) -> dict[int, tuple[int, int, int]]:
    """Per partition: bronze rows, quarantine rows, and offsets present more than once."""
    cols = ["kafka_partition", "kafka_offset"]
    tables = ((read_delta(spark, path), is_bronze) for path, is_bronze in ((paths.events, 1), (paths.quarantine, 0)))
    frames = [
        df.filter(F.col("kafka_topic") == topic).select(*cols).withColumn("bronze", F.lit(is_bronze))
        for df, is_bronze in tables
        if df is not None  # before the first ingest there is nothing to count
    ]
    if not frames:
        return {}
    both = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    per_offset = both.groupBy(*cols).agg(F.count("*").alias("n"), F.sum("bronze").alias("b"))
    rows = per_offset.groupBy("kafka_partition").agg(
        F.sum("b").alias("bronze"),
        F.sum(F.col("n") - F.col("b")).alias("quarantine"),
        F.sum(F.col("n") - 1).alias("duplicates"),
    )
    return {r["kafka_partition"]: (int(r["bronze"]), int(r["quarantine"]), int(r["duplicates"])) for r in rows.collect()}


def reconcile(spark: SparkSession, cfg: config.Config, topic: str) -> list[PartitionReport]:
    kafka = kafka_counts(cfg.kafka_bootstrap, topic)
    lake = lake_counts(spark, BronzePaths.from_config(cfg), topic)
    return [PartitionReport(p, kafka.get(p, 0), *lake.get(p, (0, 0, 0))) for p in sorted(set(kafka) | set(lake))]


def render(reports: list[PartitionReport], topic: str) -> Table:
    table = Table(title=f"Kafka topic {topic!r} vs bronze + quarantine")
    for name in ("partition", "kafka records", "bronze", "quarantine", "duplicates", "status"):
        table.add_column(name, justify="right")
    for r in reports:
        status = "[green]ok[/]" if r.ok else "[red]MISMATCH[/]"
        table.add_row(str(r.partition), f"{r.kafka_records:,}", f"{r.bronze:,}", f"{r.quarantine:,}", str(r.duplicates), status)
    return table


app = typer.Typer(add_completion=False)


@app.command()
def main(topic: str = typer.Option(None, help="Kafka topic (default: KAFKA_TOPIC).")) -> None:
    """Compare Kafka record counts with bronze + quarantine per partition; exit 1 on any difference."""
    cfg = config.load()
    topic = topic or str(cfg["KAFKA_TOPIC"])
    spark = get_spark("reconcile", catalog=False, cfg=cfg)
    reports = reconcile(spark, cfg, topic)
    Console().print(render(reports, topic))
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
