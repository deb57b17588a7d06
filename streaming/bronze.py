"""The bronze and quarantine Delta tables: creation and idempotent writes.

Both the streaming ingest and the batch backfill write through
:func:`write_validated`, which appends the valid rows to bronze and the rejected
ones to quarantine as Delta *idempotent* writes (``txnAppId``/``txnVersion``): if
a process dies between or after the two commits and the same batch is replayed,
Delta skips the table that already has it. That is what makes ``kill -9`` safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import config
from streaming import events
from streaming.validate import bronze_rows, quarantine_rows


@dataclass(frozen=True)
class BronzePaths:
    events: Path
    quarantine: Path

    @classmethod
    def from_config(cls, cfg: config.Config) -> BronzePaths:
        return cls(cfg.table_path("bronze", "events"), cfg.table_path("bronze", "quarantine"))


def _create(spark: SparkSession, path: Path, columns: tuple[events.Column, ...], partition: str) -> None:
    """Create the table at ``path`` unless it exists.

    No column comments or table properties: dbt's on-run-start registers the same
    path with a plain DDL (``dbt_project/macros/bronze_tables.sql``), and Delta refuses
    a CREATE whose metadata differs from the table's. Descriptions live in
    ``streaming/events.py`` and the dbt source YAML.
    """
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(str(path))
    for col in columns:
        builder = builder.addColumn(col.name, col.sql_type)
    builder.partitionedBy(partition).execute()


def ensure_tables(spark: SparkSession, paths: BronzePaths) -> None:
    """Create bronze and quarantine with their declared schema if they do not exist."""
    _create(spark, paths.events, events.BRONZE_COLUMNS, "event_date")
    _create(spark, paths.quarantine, events.QUARANTINE_COLUMNS, "ingested_date")


@dataclass(frozen=True)
class BatchResult:
    """Rows of one batch offered to bronze and quarantine."""

    bronze: int
    quarantine: int


def write_validated(validated: DataFrame, paths: BronzePaths, app_id: str, version: int) -> BatchResult:
    """Append one validated batch to bronze and quarantine, exactly once per (app_id, version).

    A (app_id, version) pair that a table already holds is skipped by Delta, so a
    replayed batch adds nothing there. The batch is parsed once and cached: counting
    good and bad rows fills the cache, and both writes read it. The quarantine write
    is skipped when there is nothing to quarantine (its replay would add nothing either).
    (Not an ``Observation`` on the bronze write instead of the count: Delta skips a
    replayed write without running a job, and the observation would wait forever.)
    """
    keep = {c.name for c in events.BRONZE_COLUMNS} | {c.name for c in events.QUARANTINE_COLUMNS} | {"payload", "reason"}
    validated = (
        validated.withColumn("ingested_at", F.current_timestamp())
        # Only rejected rows need their raw text: caching it for every good row doubles the cache.
        .withColumn("payload", F.when(F.col("reason").isNotNull(), F.col("payload")))
        .select(*[c for c in [*validated.columns, "ingested_at"] if c in keep])
        .persist()
    )
    try:
        counts = validated.agg(
            F.count_if(F.col("reason").isNull()).alias("good"),
            F.count_if(F.col("reason").isNotNull()).alias("bad"),
        ).first()
        good, bad = int(counts["good"]), int(counts["bad"])
        _append(bronze_rows(validated), paths.events, app_id, version)
        if bad:
            _append(quarantine_rows(validated), paths.quarantine, app_id, version)
    finally:
        validated.unpersist()
    return BatchResult(good, bad)


def table_version(spark: SparkSession, path: Path) -> int:
    """Latest commit version of a Delta table (reads the log only)."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, str(path)).history(1).first()["version"])


def _append(df: DataFrame, path: Path, app_id: str, version: int) -> None:
    # Commits even an empty bronze batch, so the transaction id records that this version is done.
    df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version).save(str(path))
