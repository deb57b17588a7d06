"""The bronze and quarantine Delta tables: creation and idempotent writes.

Both the streaming ingest and the batch backfill write through
:func:`write_validated`, which appends the valid rows to bronze and the rejected
ones to quarantine as Delta *idempotent* writes (``txnAppId``/``txnVersion``): if
a process dies between or after the two commits and the same batch is replayed,
Delta skips the table that already has it. That is what makes ``kill -9`` safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F

from lakehouse import config
from streaming import events
from streaming.validate import RECORD_KEY, Validator, bronze_rows, quarantine_rows


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
    """Rows of one batch offered to bronze and quarantine, and the seconds each write took (logged by the jobs)."""

    bronze: int
    quarantine: int
    bronze_s: float = 0.0
    quarantine_s: float = 0.0


# Above this many rejects in a batch, the quarantine pass filters a full re-validation instead of joining on keys.
REJECTS_BY_KEY_AT_MOST = 100_000


# Reads the raw records with these keys straight from where the batch came from; None when it cannot find them all.
Fetch = Callable[[list[Row]], DataFrame | None]


def write_validated(
    records: DataFrame, validate: Validator, paths: BronzePaths, app_id: str, version: int, *, fetch: Fetch | None = None
) -> BatchResult:
    """Validate one batch of raw records and append it to bronze and quarantine, exactly once per (app_id, version).

    A (app_id, version) pair that a table already holds is skipped by Delta, so a
    replayed batch adds nothing there.

    Bronze is written straight from the validation, in one pass over the batch. An
    ``Observation`` on that write counts the good rows and collects the coordinates of
    the rejected ones; the quarantine pass then parses and writes only those, read by
    ``fetch`` from the batch's source when given (the ingest reads a few rejects from
    Kafka by offset: `streaming.ingest.kafka_fetch`), else by reading the batch again.
    This replaced caching every batch for its two writes, which cost more
    (``bench/bench_ingest.py``) and held the whole batch in memory. Both
    passes judge a record the same way: ``validate`` is given one fixed time, and a
    batch is a fixed range of Kafka offsets or a file's numbered lines.

    A replay whose bronze commit exists is counted by a query of its own: Delta skips
    that write without running a job, so an observation on it would wait forever.
    """
    now = datetime.now(UTC)

    def validated(rows: DataFrame) -> DataFrame:
        return validate(rows, now).withColumn("ingested_at", F.lit(now))

    is_bad = F.col("reason").isNotNull()
    started = time.monotonic()
    if _holds(paths.events, app_id, version):
        every = validated(records)
        counts = every.agg(F.count_if(~is_bad).alias("good"), F.count_if(is_bad).alias("bad")).first()
        good, bad = int(counts["good"]), int(counts["bad"])
        rejected = every.filter(is_bad)
    else:
        observation = Observation()
        observed = validated(records).observe(
            observation,
            F.count_if(~is_bad).alias("good"),
            F.collect_list(F.when(is_bad, F.struct(*RECORD_KEY))).alias("rejected"),
        )
        _append(bronze_rows(observed), paths.events, app_id, version)
        good, keys = int(observation.get["good"]), observation.get["rejected"]
        bad = len(keys)
        # A flood of rejects is re-read whole: a semi-join on that many keys would cost more.
        rejected = validated(_reread(records, keys, fetch)) if bad <= REJECTS_BY_KEY_AT_MOST else validated(records).filter(is_bad)
    bronze_done = time.monotonic()
    if bad:
        _append(quarantine_rows(rejected), paths.quarantine, app_id, version)
    return BatchResult(good, bad, bronze_done - started, time.monotonic() - bronze_done)


def _reread(records: DataFrame, keys: list[Row], fetch: Fetch | None) -> DataFrame:
    """The raw records with these keys: fetched from their source when ``fetch`` finds them all, else from the batch."""
    fetched = fetch(keys) if fetch is not None and keys else None
    return fetched if fetched is not None else _only(records, keys)


def _only(records: DataFrame, keys: list) -> DataFrame:
    """The raw records with these keys: a broadcast semi-join before any parsing."""
    key_df = F.broadcast(records.sparkSession.createDataFrame(keys, records.select(*RECORD_KEY).schema))
    return records.join(key_df, [records[k].eqNullSafe(key_df[k]) for k in RECORD_KEY], "left_semi")


class CheckpointMismatch(RuntimeError):
    """A table holds more batches of a stream than its checkpoint knows: the checkpoint was lost or recreated."""


def require_checkpoint_covers(tables: list[Path], app_id: str, checkpoint: Path) -> None:
    """Refuse to start a stream whose batch ids would be skipped silently by Delta.

    Writes are idempotent by (``app_id``, batch id). A checkpoint that was deleted or
    recreated numbers its batches from 0 again, and every batch up to the table's
    recorded version would be taken for a replay and dropped without a trace. So the
    tables may hold at most the checkpoint's newest planned batch.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from streaming.scorer_state import latest_planned_batch

    known = latest_planned_batch(checkpoint)
    for table in tables:
        try:
            done = DeltaTable(str(table), without_files=True).transaction_version(app_id)
        except TableNotFoundError:
            continue
        if done is not None and (known is None or done > known):
            raise CheckpointMismatch(
                f"{table} already holds batch {done} of {app_id!r}, but the checkpoint {checkpoint} "
                f"{'is empty' if known is None else f'knows batches up to {known} only'}: it was lost or recreated, and its "
                "batches would be skipped as already written. Restore the checkpoint; or, to load the topic again from "
                "scratch, delete this table as well; or read into another table (another LAKEHOUSE_DIR)."
            )


def _holds(path: Path, app_id: str, version: int) -> bool:
    """Whether the Delta table at ``path`` has committed ``version`` (or a later one) of ``app_id``.

    Read with delta-rs from the log alone (no file list), the same test Delta applies
    to an idempotent write.
    """
    from deltalake import DeltaTable

    done = DeltaTable(str(path), without_files=True).transaction_version(app_id)
    return done is not None and done >= version


def table_version(spark: SparkSession, path: Path) -> int:
    """Latest commit version of a Delta table (reads the log only)."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, str(path)).history(1).first()["version"])


def _append(df: DataFrame, path: Path, app_id: str, version: int) -> None:
    # Commits even an empty bronze batch, so the transaction id records that this version is done.
    df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version).save(str(path))
