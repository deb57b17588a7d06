"""Reconciliation: every Kafka record is in bronze or quarantine exactly once.

Per topic partition, compares the records Kafka holds (end offset minus log start
offset) with the rows in bronze + quarantine carrying that partition's
coordinates from the log start on, and counts duplicated offsets. Rows of records
that retention has since deleted from Kafka are reported apart (``before
retention``): Kafka can no longer vouch for them, and they are not a mismatch. An
erased user's records stay counted: erasure turns their bronze rows into quarantine
tombstones. Exits non-zero on any difference, so it can gate a pipeline or a CI run.

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
    before_retention: int = 0  # lake rows of offsets Kafka has deleted (not compared)

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.bronze + self.quarantine == self.kafka_records


def kafka_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition: (log start offset, end offset); records before the start were deleted by retention."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config.load().kafka_client_options)
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise typer.BadParameter(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        return {tp.partition: (begin[tp], end[tp]) for tp in tps}
    finally:
        consumer.close()


def lake_counts(spark: SparkSession, paths: BronzePaths, topic: str, starts: dict[int, int]) -> dict[int, tuple[int, int, int, int]]:
    """Per partition: bronze rows, quarantine rows and offsets present more than once, from ``starts`` on; rows before."""
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
    start = F.lit(0)
    for partition, offset in starts.items():
        start = F.when(F.col("kafka_partition") == partition, F.lit(offset)).otherwise(start)
    both = both.withColumn("kept", F.col("kafka_offset") >= start)
    per_offset = both.groupBy(*cols, "kept").agg(F.count("*").alias("n"), F.sum("bronze").alias("b"))
    kept = F.col("kept")
    rows = per_offset.groupBy("kafka_partition").agg(
        F.sum(F.when(kept, F.col("b")).otherwise(0)).alias("bronze"),
        F.sum(F.when(kept, F.col("n") - F.col("b")).otherwise(0)).alias("quarantine"),
        F.sum(F.col("n") - 1).alias("duplicates"),
        F.sum(F.when(~kept, F.col("n")).otherwise(0)).alias("before_retention"),
    )
    names = ("bronze", "quarantine", "duplicates", "before_retention")
    return {r["kafka_partition"]: tuple(int(r[n]) for n in names) for r in rows.collect()}  # type: ignore[misc]


def reconcile(spark: SparkSession, cfg: config.Config, topic: str) -> list[PartitionReport]:
    offsets = kafka_offsets(cfg.kafka_bootstrap, topic)
    lake = lake_counts(spark, BronzePaths.from_config(cfg), topic, {p: begin for p, (begin, _) in offsets.items()})
    held = {p: end - begin for p, (begin, end) in offsets.items()}
    return [PartitionReport(p, held.get(p, 0), *lake.get(p, (0, 0, 0, 0))) for p in sorted(set(held) | set(lake))]


def render(reports: list[PartitionReport], topic: str) -> Table:
    table = Table(title=f"Kafka topic {topic!r} vs bronze + quarantine")
    for name in ("partition", "kafka records", "bronze", "quarantine", "duplicates", "before retention", "status"):
        table.add_column(name, justify="right")
    for r in reports:
        status = "[green]ok[/]" if r.ok else "[red]MISMATCH[/]"
        row = (r.partition, r.kafka_records, r.bronze, r.quarantine, r.duplicates, r.before_retention)
        table.add_row(*[f"{v:,}" for v in row], status)
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
