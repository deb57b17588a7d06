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

# --- The input contract: what a record must be to enter bronze -----------------------------
# One definition of the rules for both doors (Kafka JSON and CSV lines), enforced by
# ``streaming.validate`` and documented in the README (``python -m streaming.events --markdown``
# prints the reasons table; tests/unit/test_input_contract.py checks the README against it).

# Longest text accepted per field, in characters. Values become keys elsewhere (a session id is
# the MongoDB ``_id`` and a key of the scorer's state), so an absurd length is refused, not kept.
MAX_FIELD_LENGTH: dict[str, int] = {
    "event_time": 40,
    "event_type": 32,
    "product_id": 24,
    "category_id": 24,
    "category_code": 255,
    "brand": 255,
    "price": 32,
    "user_id": 24,
    "user_session": 64,
}

# Accepted event times (Java regex, matched after trimming spaces): a date AND a time to the second
# (fractions up to microseconds), then either the REES46 suffix ` UTC` or an explicit offset
# (`Z`, `+02:00`, `-0500`). `2019-11-01 00:00:00 UTC` and `2019-11-01T00:00:00+01:00` pass;
# `2019-11-01`, `2019` or `2019-11-01 00:00:00` (no zone) do not: reading them would invent a time or a zone.
EVENT_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?( UTC|Z|[+-][0-9]{2}:?[0-9]{2})$"
# A date, or part of one, without a time: its own reason (the reported case: `2019-11-01`, `2019`).
DATE_ONLY_PATTERN = r"^[0-9]{4}(-[0-9]{1,2}(-[0-9]{1,2})?)?T?$"
# A date and a time without a zone.
NO_ZONE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$"
# Characters no field may hold: C0 controls, DEL, and U+FFFD (the mark of text already broken upstream).
BAD_CHARACTER_CLASS = "[\\x00-\\x1f\\x7f\\ufffd]"


@dataclass(frozen=True)
class Reason:
    """A quarantine reason: its name, which door it applies to, and the rule a record broke."""

    name: str
    door: str  # "JSON" (Kafka messages), "CSV" (file lines) or "both"
    rule: str
    detail: str  # what ``reason_detail`` holds


# Quarantine reasons, checked in this order (the first that applies is recorded).
REASON_RULES: tuple[Reason, ...] = (
    Reason("oversize_payload", "both", f"the message or line is larger than {MAX_PAYLOAD_BYTES // 1024} KiB", "none (see payload_bytes)"),
    Reason("invalid_utf8", "both", "the bytes are not valid UTF-8", "none"),
    Reason(
        "invalid_json",
        "JSON",
        "not one JSON object: unparsable, an array, a string, a number or null, single quotes, NaN/Infinity, "
        "leading zeros, raw control characters in a string. A leading UTF-8 byte order mark is ignored (RFC 8259 §8.1)",
        "none",
    ),
    Reason("trailing_content", "JSON", "anything but whitespace after the object, e.g. a second object", "the text after the object"),
    Reason("duplicate_key", "JSON", "a key given twice (which one would win is a guess)", "the repeated keys"),
    Reason(
        "unknown_field",
        "JSON",
        f"a key that is not one of the {len(CSV_COLUMNS)} event fields (names are case-sensitive)",
        "the unknown keys",
    ),
    Reason("nested_value", "JSON", "a field whose value is an array or an object", "the fields"),
    Reason("malformed_csv", "CSV", f"not {len(CSV_COLUMNS)} fields", "the field count found"),
    Reason("missing_field", "both", "a required field absent, null or blank: " + ", ".join(REQUIRED_FIELDS), "the field"),
    Reason(
        "field_too_long",
        "both",
        "a value longer than its field's limit: " + ", ".join(f"{k} {v}" for k, v in MAX_FIELD_LENGTH.items()),
        "field, length and the value's first 100 characters",
    ),
    Reason(
        "invalid_character",
        "both",
        "a control character (U+0000-U+001F, U+007F) or U+FFFD in a value; in JSON, an escaped UTF-16 surrogate "
        "without its pair (`\\ud800`), which the parser would turn into `?`",
        "field, code point and value; or the surrogate",
    ),
    Reason("wrong_type", "both", "an id that is not an integer of at most 19 digits, a price that is not a number", "field and value"),
    Reason("unknown_event_type", "both", "event_type not one of " + ", ".join(EVENT_TYPES), "the value"),
    Reason("timestamp_without_time", "both", "event_time is a date or part of one (`2019-11-01`, `2019`)", "the value"),
    Reason("timestamp_without_zone", "both", "event_time has a date and a time but no ` UTC` suffix or offset", "the value"),
    Reason(
        "unparsable_timestamp",
        "both",
        "event_time not like `2019-11-01 00:00:00 UTC` or `2019-11-01T00:00:00+01:00` (seconds required), "
        "or not a real date and time (`2019-02-30`, `24:00:00`)",
        "the value",
    ),
    Reason("timestamp_out_of_range", "both", "event_time before 2000 or more than a day in the future", "the value"),
    Reason("price_out_of_range", "both", f"price negative or above {MAX_PRICE:,.0f}", "the value"),
    Reason("invalid_id", "both", "an id that is zero or negative", "the field and value"),
    Reason(
        "erased_user",
        "both",
        "a valid record of a user erased since (`session_admin delete-user`), dated before the erasure: a replay. "
        "Also the tombstone an erasure leaves for each bronze row it deletes. The payload is not kept",
        "none",
    ),
)
REASONS: tuple[str, ...] = tuple(r.name for r in REASON_RULES)


def reasons_markdown() -> str:
    """The README's table of quarantine reasons, generated from ``REASON_RULES``."""
    rows = ["| reason | input | the record breaks this rule | reason_detail holds |", "|---|---|---|---|"]
    rows += [f"| `{r.name}` | {r.door} | {r.rule} | {r.detail} |" for r in REASON_RULES]
    return "\n".join(rows)


def ddl(columns: tuple[Column, ...]) -> str:
    """`name type, ...` for Spark's `StructType.fromDDL` and CREATE TABLE."""
    return ", ".join(f"{c.name} {c.sql_type}" for c in columns)


if __name__ == "__main__":
    import sys

    if "--markdown" not in sys.argv:
        sys.exit("usage: python -m streaming.events --markdown   (prints the README's quarantine reasons table)")
    print(reasons_markdown())
