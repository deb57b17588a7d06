"""The Delta ``predictions`` table: its columns, its creation, and the scorer's idempotent append.

Spark creates the table (column comments, partitioning by ``event_date``) and every
reader uses Spark; appends go through delta-rs (the ``deltalake`` package) instead.
A micro-batch's few thousand rows are a ~50 ms Arrow write there, where a Spark write
costs 1-3 s of jobs (and 5+ s while the JVM warms up): at 2,000 events/s that write
was most of the scorer's end-to-end latency. Both write the same Delta log, so Spark's
``DELETE``/``VACUUM`` (``session_admin delete-user``) and delta-rs appends interleave
under Delta's optimistic concurrency.

A session gets a probability only at the feature marts' prediction points (before its
first purchase, at most K events); a session that has bought gets one row with
``converted`` true and no probability (see ``streaming.scorer.score_sessions``).
Columns added since a table was created (``converted``) are added to it on start
(:func:`ensure_predictions_table`), so an existing table keeps working.

Idempotence is Delta's own application-transaction (``txn``) action, the one Spark's
``txnAppId``/``txnVersion`` options write: each append commits ``(app_id, version)``
with its rows, and an append whose version is not above the recorded one is skipped,
so a micro-batch replayed after ``kill -9`` adds nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession

from lakehouse import config

PREDICTION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("session_id", "string", "Session scored (dbt session id)."),
    ("user_id", "bigint", "User of the session."),
    ("prediction_point", "int", "Events seen when scoring (the mart's prediction_point); converted row: the first purchase's position."),
    ("event_time", "timestamp", "Event time of the session's last event at scoring (of its first purchase on a converted row)."),
    ("event_date", "date", "UTC date of event_time."),
    ("processing_time", "timestamp", "When the scorer produced the prediction."),
    ("kafka_timestamp", "timestamp", "Kafka timestamp (produce time) of the newest event of the session in the batch."),
    ("latency_ms", "double", "processing_time - kafka_timestamp: end-to-end latency from produce to prediction."),
    ("purchase_probability", "double", "P(the session buys after this point); null on a converted row or without a purchase champion."),
    ("purchase_label", "int", "purchase_probability >= the model's threshold."),
    ("top_1", "string", "Most likely next top-level category."),
    ("top_2", "string", "Second most likely category."),
    ("top_3", "string", "Third most likely category."),
    ("category_probabilities", "map<string,double>", "P(category) for every top-level category."),
    ("purchase_model_version", "string", "Registry version of the purchase-intent model used."),
    ("category_model_version", "string", "Registry version of the category model used."),
    ("source", "string", "stream, or reprocess for rows written by the reprocess command."),
    ("batch_id", "bigint", "Micro-batch (or reprocess run) that wrote the row."),
    # added after the others: ensure_predictions_table appends it to older tables, and new ones get the same order
    ("converted", "boolean", "True: the session bought and is no longer scored (one row, no probability); null in older rows."),
)
COLUMN_NAMES: list[str] = [name for name, _, _ in PREDICTION_COLUMNS]


def predictions_path(cfg: config.Config) -> Path:
    return cfg.table_path("gold", "predictions")


def ensure_predictions_table(spark: SparkSession, path: Path) -> None:
    """Create the table (with its column comments) unless it exists; add the columns an older table lacks."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(str(path)).comment("Live purchase-intent and category predictions.")
    for name, sql_type, comment in PREDICTION_COLUMNS:
        builder = builder.addColumn(name, sql_type, comment=comment)
    builder.partitionedBy("event_date").execute()
    add_missing_columns(spark, path)


def add_missing_columns(spark: SparkSession, path: Path) -> list[str]:
    """Add to an existing table the columns of :data:`PREDICTION_COLUMNS` it lacks (null in its old rows); returns their names.

    A table created by an earlier version of the scorer would otherwise refuse the
    appends of this one (delta-rs writes with the table's schema).
    """
    from delta.tables import DeltaTable

    have = set(DeltaTable.forPath(spark, str(path)).toDF().columns)
    missing = [(name, sql_type, comment) for name, sql_type, comment in PREDICTION_COLUMNS if name not in have]
    if missing:
        columns = ", ".join(f"{name} {sql_type} comment '{_sql_string(comment)}'" for name, sql_type, comment in missing)
        spark.sql(f"alter table delta.`{path}` add columns ({columns})")
    return [name for name, _, _ in missing]


def _sql_string(text: str) -> str:
    """``text`` for a single-quoted Spark SQL literal."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


class PredictionsWriter:
    """Idempotent appends to an existing predictions table, keeping its Delta log loaded between batches."""

    def __init__(self, path: Path) -> None:
        from deltalake import DeltaTable

        self.path = path
        self._table = DeltaTable(str(path))
        self._schema = pa.schema(self._table.schema().to_arrow())  # the table's, so a drifted frame fails here

    def committed_version(self, app_id: str) -> int | None:
        """The last version ``app_id`` committed, as Delta's log records it (None if it never wrote)."""
        self._table.update_incremental()  # other writers (Spark DELETE, VACUUM) move the log on
        return self._table.transaction_version(app_id)

    def append(self, rows: pd.DataFrame, app_id: str, version: int) -> bool:
        """Append ``rows`` as ``(app_id, version)``; False (nothing written) when that version is already in the log.

        The check and the commit are not one atomic step, which is sound for what uses
        it: one scorer per checkpoint writes its app id (Spark refuses a second query on
        the same checkpoint), and a reprocess run uses an app id of its own.
        """
        from deltalake import CommitProperties, Transaction, write_deltalake

        done = self.committed_version(app_id)
        if done is not None and done >= version:
            return False
        table = pa.Table.from_pandas(rows[COLUMN_NAMES], schema=self._schema, preserve_index=False)
        write_deltalake(
            self._table,
            table,
            mode="append",
            commit_properties=CommitProperties(app_transactions=[Transaction(app_id, version)]),
        )
        return True


def latency_windows(rows: pd.DataFrame, since: pd.Timestamp, first_seconds: float) -> dict[str, dict[str, float | int | None]]:
    """Latency (seconds, from ``latency_ms``) of prediction rows, apart for the warm-up and the steady state.

    A row falls in a window by its ``kafka_timestamp`` (when its newest event was
    produced): ``warm_up`` holds the rows of events produced in the first
    ``first_seconds`` after ``since`` (the scorer's start, or the first event sent),
    ``steady`` those after, ``all`` both. Rows of events produced before ``since`` are
    in none. Each window: ``rows``, ``p50``, ``p95``, ``p99`` (None when it is empty).
    """
    rows = rows.dropna(subset=["latency_ms", "kafka_timestamp"])
    produced = pd.to_datetime(rows["kafka_timestamp"])
    cut = since + pd.Timedelta(seconds=first_seconds)
    seconds = rows["latency_ms"] / 1000.0
    out: dict[str, dict[str, float | int | None]] = {}
    for name, mask in (("all", produced >= since), ("warm_up", (produced >= since) & (produced < cut)), ("steady", produced >= cut)):
        window = seconds[mask]
        out[name] = {"rows": len(window)} | {
            f"p{q}": round(float(window.quantile(q / 100)), 3) if len(window) else None for q in (50, 95, 99)
        }
    return out
