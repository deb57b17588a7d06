"""Parse and validate raw event records in Spark: one rule set for stream and backfill.

Every record gets either typed event columns or a quarantine ``reason`` (the first
rule it breaks, in the order of ``events.REASONS``) with a human-readable detail.
The streaming ingest feeds Kafka values (JSON); the backfill feeds CSV lines. Both
end in :func:`validate_fields`, so a record is judged the same whichever door it
came in by.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from streaming import events

_INT_FIELDS = ("product_id", "category_id", "user_id")
_INT_PATTERN = r"^\s*-?[0-9]{1,19}\s*$"
_NUMBER_PATTERN = r"^\s*-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_CORRUPT = "_corrupt_record"

# Where a raw record came from, unique within a batch: its Kafka partition and offset, or
# its line in a backfilled file. Every raw record frame carries these columns.
RECORD_KEY = ("kafka_partition", "kafka_offset", "source_line")

# A parse-and-validate function for one kind of raw record: (records, reference time) -> validated.
Validator = Callable[[DataFrame, datetime], DataFrame]

# Every field is read as text first, so that a wrong type becomes a reason, not a null.
RAW_SCHEMA = T.StructType([T.StructField(c, T.StringType()) for c in events.CSV_COLUMNS] + [T.StructField(_CORRUPT, T.StringType())])


def _first(*rules: tuple[Column, Column | str]) -> Column:
    """The value of the first rule whose condition holds, else null."""
    expr = None
    for cond, value in rules:
        value_col = F.lit(value) if isinstance(value, str) else value
        expr = F.when(cond, value_col) if expr is None else expr.when(cond, value_col)
    return expr.otherwise(F.lit(None).cast("string"))  # type: ignore[union-attr]


def parse_json_payload(df: DataFrame, value_col: str = "value") -> DataFrame:
    """Add ``payload`` (text), ``payload_bytes``, ``f`` (fields as text) and ``pre_reason``.

    ``pre_reason`` covers what makes a payload unreadable before looking at fields:
    oversize, invalid UTF-8, not a JSON object.
    """
    value = F.col(value_col)
    out = df.select("*", _text(value), _byte_size(value), _from_json(F.col("payload")).alias("f"))
    return out.withColumn("pre_reason", _json_pre_reason())


def parse_csv_line(df: DataFrame, line_col: str = "line") -> DataFrame:
    """The CSV counterpart of :func:`parse_json_payload` for one REES46 line per row."""
    line = F.col(line_col)
    out = df.select("*", line.alias("payload"), F.length(F.encode(line, "UTF-8")).cast("int").alias("payload_bytes"))
    return out.withColumn("f", _from_csv(F.col("payload"))).withColumn("pre_reason", _csv_pre_reason())


def parse_kafka_record(df: DataFrame, value_col: str = "value", csv_flag: str = "is_csv_line") -> DataFrame:
    """:func:`parse_json_payload` for Kafka records, except those flagged as a file line the producer could not read.

    Those travel as the raw line (``streaming.producer.bad_line_record``) and are judged
    by the backfill's CSV rules, so a bad line ends in quarantine with the same reason
    whichever door it came in by.
    """
    value, is_csv = F.col(value_col), F.coalesce(F.col(csv_flag), F.lit(False))
    payload = F.col("payload")
    out = df.select("*", _text(value), _byte_size(value))
    out = out.withColumn("f", F.when(is_csv, _from_csv(payload)).otherwise(_from_json(payload)))
    return out.withColumn("pre_reason", F.when(is_csv, _csv_pre_reason()).otherwise(_json_pre_reason()))


def _text(value: Column) -> Column:
    return value.cast("string").alias("payload")


def _byte_size(value: Column) -> Column:
    return F.coalesce(F.length(value), F.lit(0)).cast("int").alias("payload_bytes")


def _from_json(payload: Column) -> Column:
    return F.from_json(payload, RAW_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})


def _from_csv(payload: Column) -> Column:
    csv_schema = ", ".join(f"{c} string" for c in events.CSV_COLUMNS) + f", {_CORRUPT} string"
    return F.from_csv(payload, csv_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})


def _json_pre_reason() -> Column:
    """Oversize, invalid UTF-8 or not one JSON object: read from ``payload``, ``payload_bytes`` and ``f``."""
    not_object = F.col("f").isNull() | F.col(f"f.{_CORRUPT}").isNotNull() | ~F.ltrim(F.col("payload")).startswith("{")
    return _first(
        (F.col("payload_bytes") > events.MAX_PAYLOAD_BYTES, "oversize_payload"),
        (~F.expr("is_valid_utf8(payload)"), "invalid_utf8"),
        (not_object, "invalid_json"),
    )


def _csv_pre_reason() -> Column:
    """Oversize, invalid UTF-8 or not nine CSV fields (with the count found, when there are no quotes)."""
    payload = F.col("payload")
    fields = F.size(F.split(payload, ",", -1))
    n = len(events.CSV_COLUMNS)
    # A quoted field may hold commas; only count fields when there are no quotes.
    wrong_count = ~payload.contains('"') & (fields != n)
    return _first(
        (F.col("payload_bytes") > events.MAX_PAYLOAD_BYTES, "oversize_payload"),
        (~F.expr("is_valid_utf8(payload)"), "invalid_utf8"),
        (wrong_count, F.concat(F.lit(f"malformed_csv:expected {n} fields, found "), fields.cast("string"))),
        (F.col(f"f.{_CORRUPT}").isNotNull(), f"malformed_csv:not {n} fields (quoted)"),
    )


def _blank_to_null(c: Column) -> Column:
    return F.when(F.trim(c) == "", None).otherwise(c)


def _event_time(text: Column) -> Column:
    """REES46 text (`2019-11-01 00:00:00 UTC`) or ISO-8601; null when neither parses.

    A plain cast: Spark's string-to-timestamp cast reads both forms (the zone after
    the time included) and is several times faster than a pattern-based parse, which
    on 2 cores was the most expensive step of the whole ingest.
    """
    return text.cast("timestamp")


def validate_fields(df: DataFrame, now: datetime | None = None) -> DataFrame:
    """Type the ``f`` fields and decide ``reason`` / ``reason_detail`` for every row.

    Expects the columns made by one of the ``parse_*`` functions. Adds typed event
    columns (``events.EVENT_COLUMNS``) plus ``event_date``. ``now`` bounds future timestamps:
    a fixed time makes evaluating the result twice judge every record the same way
    (``bronze.write_validated`` reads a batch again for its quarantine); without it,
    each query (or streaming micro-batch) uses its own ``current_timestamp()``.

    Built as three projections (fields, typed values, rule) on purpose: each value
    is computed once per row and the rule only reads columns. Written as one
    expression, Spark re-evaluates a shared sub-expression (the timestamp parse, the
    trims) inside every CASE branch that uses it.
    """
    # 1. every field once: blank -> null, trimmed copy for the numeric ones
    fields = {f"_v_{c}": _blank_to_null(F.col(f"f.{c}")) for c in events.CSV_COLUMNS}
    out = df.select("*", *[v.alias(k) for k, v in fields.items()])
    v = {c: F.col(f"_v_{c}") for c in events.CSV_COLUMNS}
    # 2. typed values and type checks, once
    typed = {
        "_ts": _event_time(F.trim(v["event_time"])),
        "_price": F.trim(v["price"]).cast("double"),
        "_price_ok": v["price"].rlike(_NUMBER_PATTERN),
        **{f"_id_{c}": F.trim(v[c]).cast("bigint") for c in _INT_FIELDS},
        **{f"_id_ok_{c}": v[c].rlike(_INT_PATTERN) for c in _INT_FIELDS},
    }
    out = out.select("*", *[e.alias(k) for k, e in typed.items()])
    ts, price = F.col("_ts"), F.col("_price")
    ids = {c: F.col(f"_id_{c}") for c in _INT_FIELDS}
    # 3. the rule: the first one a record breaks, in events.REASONS order
    min_time = F.to_timestamp(F.lit(events.MIN_EVENT_TIME))
    max_time = (F.current_timestamp() if now is None else F.lit(now)) + F.expr(f"INTERVAL {events.MAX_FUTURE_SECONDS} SECONDS")
    rule = _first(
        (F.col("pre_reason").isNotNull(), F.col("pre_reason")),
        *[(v[c].isNull(), f"missing_field:{c}") for c in events.REQUIRED_FIELDS],
        *[(~F.col(f"_id_ok_{c}") | ids[c].isNull(), f"wrong_type:{c}") for c in _INT_FIELDS],
        (~F.col("_price_ok"), "wrong_type:price"),
        (~v["event_type"].isin(*events.EVENT_TYPES), F.concat(F.lit("unknown_event_type:"), F.substring(v["event_type"], 1, 100))),
        (ts.isNull(), F.concat(F.lit("unparsable_timestamp:"), F.substring(v["event_time"], 1, 100))),
        ((ts < min_time) | (ts > max_time), F.concat(F.lit("timestamp_out_of_range:"), F.substring(v["event_time"], 1, 100))),
        (F.isnan(price) | (price < events.MIN_PRICE) | (price > events.MAX_PRICE), F.concat(F.lit("price_out_of_range:"), v["price"])),
        ((ids["product_id"] <= 0) | (ids["user_id"] <= 0) | (ids["category_id"] <= 0), "invalid_id:non-positive id"),
    )
    out = out.withColumn("_rule", rule)
    out = out.withColumn("reason", F.substring_index(F.col("_rule"), ":", 1))
    out = out.withColumn("reason_detail", F.expr("nullif(substring(_rule, length(reason) + 2), '')"))
    result = {
        "event_time": ts,
        "event_type": v["event_type"],
        "product_id": ids["product_id"],
        "category_id": ids["category_id"],
        "category_code": v["category_code"],
        "brand": v["brand"],
        "price": price,
        "user_id": ids["user_id"],
        "user_session": v["user_session"],
        "event_date": F.to_date(ts),
    }
    helpers = [*fields, *typed, "_rule"]
    return out.select(*[c for c in out.columns if c not in helpers and c not in result], *[e.alias(k) for k, e in result.items()])


def validate_json(records: DataFrame, now: datetime | None = None) -> DataFrame:
    """Kafka records (a ``value`` column of JSON) parsed and validated."""
    return validate_fields(parse_json_payload(records), now)


def validate_kafka(records: DataFrame, now: datetime | None = None) -> DataFrame:
    """Kafka records of the ingest (``value`` plus the ``is_csv_line`` flag of the producer's header) parsed and validated."""
    return validate_fields(parse_kafka_record(records), now)


def validate_csv(records: DataFrame, now: datetime | None = None) -> DataFrame:
    """Backfilled file lines (a ``line`` column of REES46 CSV) parsed and validated."""
    return validate_fields(parse_csv_line(records), now)


def bronze_rows(validated: DataFrame) -> DataFrame:
    """Valid rows in bronze column order."""
    return validated.filter(F.col("reason").isNull()).select(*[c.name for c in events.BRONZE_COLUMNS])


def quarantine_rows(validated: DataFrame) -> DataFrame:
    """Rejected rows in quarantine column order (payload truncated to the size limit)."""
    rejected = validated.filter(F.col("reason").isNotNull())
    rejected = rejected.withColumn("raw_payload", F.substring(F.col("payload"), 1, events.MAX_PAYLOAD_BYTES))
    rejected = rejected.withColumn("ingested_date", F.to_date(F.col("ingested_at")))
    return rejected.select(*[c.name for c in events.QUARANTINE_COLUMNS])
