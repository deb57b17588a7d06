"""Batch backfill: a REES46 file straight into bronze, for history too large to replay.

Reads the file as text lines (plain or gzip, with or without the header line),
numbers them, and sends them through the same validation as the stream
(``streaming.validate``): valid rows to bronze, the rest to quarantine with the
reason and the file and line they came from. Running the same unchanged file
twice is a no-op (a Delta idempotent write keyed by the file and its mtime).

Usage: ``python -m streaming.backfill FILE [FILE ...]``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from lakehouse import config
from lakehouse.spark import get_spark
from streaming.bronze import BronzePaths, ensure_tables, table_version, write_validated
from streaming.erasure import erased_users, skipping_erased
from streaming.validate import validate_csv


def numbered_lines(spark: SparkSession, path: Path) -> DataFrame:
    """(line, source_line) for every data line; a header line is dropped, empty lines too.

    CR LF line ends are Hadoop's line reader's business; a leading byte order mark is removed.

    Numbered in the JVM: a first pass counts the lines of each input split, and each
    line's number is its split's offset plus its index within the split
    (``monotonically_increasing_id`` keeps that index in its low 33 bits). A text read
    of the same file splits it the same way every time, so the numbers are stable:
    ``bronze.write_validated`` reads the lines again for the quarantine. (The RDD
    ``zipWithIndex`` it replaces sent every line through Python workers.)
    """
    text = spark.read.text(str(path)).select(
        F.col("value").alias("line"), F.spark_partition_id().alias("_split"), F.monotonically_increasing_id().alias("_id")
    )
    sizes = dict(text.groupBy("_split").count().collect())
    offsets, total = [], 0
    for split in range(max(sizes, default=-1) + 1):
        offsets.append(total)
        total += sizes.get(split, 0)
    offset = F.element_at(F.array(*[F.lit(o).cast("bigint") for o in offsets] or [F.lit(0).cast("bigint")]), F.col("_split") + 1)
    in_split = F.col("_id").bitwiseAND((1 << 33) - 1)
    lines = text.select("line", (offset + in_split + 1).alias("source_line"))
    # A byte order mark is an encoding detail of the file, not part of its first field.
    first = F.col("source_line") == 1
    lines = lines.withColumn("line", F.when(first, F.regexp_replace("line", "^\ufeff", "")).otherwise(F.col("line")))
    is_header = first & F.col("line").startswith("event_time")
    return lines.filter(~is_header & (F.length(F.trim(F.col("line"))) > 0))


@dataclass(frozen=True)
class BackfillResult:
    bronze: int
    quarantine: int
    committed: bool  # False when this version of the file was already loaded


def backfill_file(spark: SparkSession, cfg: config.Config, path: Path) -> BackfillResult:
    """Load one file (a no-op if this version of it is already loaded)."""
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    paths = BronzePaths.from_config(cfg)
    ensure_tables(spark, paths)
    lines = numbered_lines(spark, path).select(
        "line",
        "source_line",
        F.lit("file").alias("source"),
        F.lit(None).cast("string").alias("kafka_topic"),
        F.lit(None).cast("int").alias("kafka_partition"),
        F.lit(None).cast("bigint").alias("kafka_offset"),
        F.lit(None).cast("timestamp").alias("kafka_timestamp"),
        F.lit(str(path)).alias("source_file"),
    )
    version = path.stat().st_mtime_ns // 1_000_000  # a changed file is a new version, the same one is skipped
    before = table_version(spark, paths.events), table_version(spark, paths.quarantine)
    # an erased user's old events in a file loaded again stay out, as in the stream
    validate = skipping_erased(validate_csv, erased_users(cfg))
    result = write_validated(lines, validate, paths, f"backfill:{path}", version)
    after = table_version(spark, paths.events), table_version(spark, paths.quarantine)
    return BackfillResult(result.bronze, result.quarantine, committed=after != before)


app = typer.Typer(add_completion=False)


@app.command()
def main(
    files: list[Path] = typer.Argument(..., help="REES46 CSV files (plain or .gz, header optional).", exists=True, dir_okay=False),
) -> None:
    """Load REES46 files straight into bronze (same validation and quarantine as the stream)."""
    cfg = config.load()
    spark = get_spark("backfill", catalog=False, cfg=cfg)
    console = Console()
    for path in files:
        with console.status(f"backfilling {path} ..."):
            result = backfill_file(spark, cfg, path)
        if result.committed:
            console.print(f"{path}: [green]{result.bronze:,}[/] rows to bronze, [yellow]{result.quarantine:,}[/] to quarantine")
        else:
            console.print(f"{path}: already loaded (unchanged since), nothing written")


if __name__ == "__main__":
    app()
