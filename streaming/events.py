"""The event contract: REES46 columns, bronze and quarantine layouts, validation rules.

One definition for everyone: the file loader, the generator, the producer's JSON,
the streaming ingest, the batch backfill, the scorer and the dbt sources all use
the names and types declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

# REES46 column order, as in the published CSV files (which may or may not carry a header).
CSV_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "purchase")

# Fields a record must carry (non-null) to enter bronze. `user_session` may be null
# (REES46 November has such rows); dbt sessionizes them by an inactivity timeout.
# `category_code` and `brand` are often empty in the real data.
REQUIRED_FIELDS: tuple[str, ...] = ("event_time", "event_type", "product_id", "category_id", "price", "user_id")

# Text format of `event_time` in REES46 files and in the producer's JSON.
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
SPARK_EVENT_TIME_FORMAT = "yyyy-MM-dd HH:mm:ss 'UTC'"

# Bounds outside which a value is absurd and the record is quarantined. Zero prices
# are real (REES46 has them) and land in bronze; staging flags them as invalid.
MIN_PRICE = 0.0
MAX_PRICE = 1_000_000.0
MIN_EVENT_TIME = "2000-01-01 00:00:00"
MAX_FUTURE_SECONDS = 24 * 3600
MAX_PAYLOAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class Column:
    """A column of a Delta table: name, Spark SQL type and description."""

    name: str
    sql_type: str
    description: str


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_time", "timestamp", "When the event happened (UTC)."),
    Column("event_type", "string", "view, cart, remove_from_cart or purchase."),
    Column("product_id", "bigint", "Product identifier."),
    Column("category_id", "bigint", "Category identifier (19 digits: a long, never a double)."),
    Column("category_code", "string", "Dotted category path, e.g. electronics.smartphone; null when unknown."),
    Column("brand", "string", "Brand in lower case; null when unknown."),
    Column("price", "double", "Price of the product at event time."),
    Column("user_id", "bigint", "User identifier."),
    Column("user_session", "string", "Session identifier (UUID); null on a few real rows."),
)

BRONZE_COLUMNS: tuple[Column, ...] = (
    *EVENT_COLUMNS,
    Column("event_date", "date", "UTC date of event_time; the partition column."),
    Column("source", "string", "kafka for streamed records, file for backfilled ones."),
    Column("kafka_topic", "string", "Kafka topic of the record (null for backfill)."),
    Column("kafka_partition", "int", "Kafka partition of the record (null for backfill)."),
    Column("kafka_offset", "bigint", "Kafka offset of the record (null for backfill)."),
    Column("kafka_timestamp", "timestamp", "Kafka record timestamp: when the producer sent it."),
    Column("source_file", "string", "File a backfilled record came from (null for Kafka)."),
    Column("source_line", "bigint", "1-based line of a backfilled record in its file (null for Kafka)."),
    Column("ingested_at", "timestamp", "When the ingest wrote the row."),
)

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    Column("raw_payload", "string", "The record as received (truncated to MAX_PAYLOAD_BYTES; invalid UTF-8 replaced)."),
    Column("payload_bytes", "int", "Size of the original payload in bytes."),
    Column("reason", "string", "Why the record was rejected (one of REASONS)."),
    Column("reason_detail", "string", "The offending field or value, for a human."),
    Column("source", "string", "kafka or file."),
    Column("kafka_topic", "string", "Kafka topic of the record (null for backfill)."),
    Column("kafka_partition", "int", "Kafka partition of the record (null for backfill)."),
    Column("kafka_offset", "bigint", "Kafka offset of the record (null for backfill)."),
    Column("kafka_timestamp", "timestamp", "Kafka record timestamp."),
    Column("source_file", "string", "File of a backfilled record (null for Kafka)."),
    Column("source_line", "bigint", "1-based line in that file (null for Kafka)."),
    Column("ingested_at", "timestamp", "When the ingest wrote the row."),
    Column("ingested_date", "date", "UTC date of ingested_at; the partition column."),
)

# Quarantine reasons, checked in this order (the first that applies is recorded).
REASONS: tuple[str, ...] = (
    "oversize_payload",
    "invalid_utf8",
    "invalid_json",
    "malformed_csv",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "unparsable_timestamp",
    "timestamp_out_of_range",
    "price_out_of_range",
    "invalid_id",
)


def ddl(columns: tuple[Column, ...]) -> str:
    """`name type, ...` for Spark's `StructType.fromDDL` and CREATE TABLE."""
    return ", ".join(f"{c.name} {c.sql_type}" for c in columns)
