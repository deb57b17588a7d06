"""Parse and validate raw event records in Spark: one rule set for stream and backfill.

Every record gets either typed event columns or a quarantine ``reason`` (the first
rule it breaks, in the order of ``events.REASONS``) with a human-readable detail.
The streaming ingest feeds Kafka values (JSON); the backfill feeds CSV lines. Both
end in :func:`validate_fields`, so a record is judged the same whichever door it
came in by.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from streaming import events

_INT_FIELDS = ("product_id", "category_id", "user_id")
_INT_PATTERN = r"^\s*-?[0-9]{1,19}\s*$"
_NUMBER_PATTERN = r"^\s*-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_CORRUPT = "_corrupt_record"

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
    text = F.col(value_col).cast("string")
    size = F.coalesce(F.length(F.col(value_col)), F.lit(0))
    parsed = F.from_json(text, RAW_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})
    out = df.withColumn("payload", text).withColumn("payload_bytes", size.cast("int")).withColumn("f", parsed)
    not_object = F.col("f").isNull() | F.col(f"f.{_CORRUPT}").isNotNull() | ~F.ltrim(F.col("payload")).startswith("{")
    return out.withColumn(
        "pre_reason",
        _first(
            (F.col("payload_bytes") > events.MAX_PAYLOAD_BYTES, "oversize_payload"),
            (~F.expr("is_valid_utf8(payload)"), "invalid_utf8"),
            (not_object, "invalid_json"),
        ),
    )


def parse_csv_line(df: DataFrame, line_col: str = "line") -> DataFrame:
    """The CSV counterpart of :func:`parse_json_payload` for one REES46 line per row."""
    csv_schema = ", ".join(f"{c} string" for c in events.CSV_COLUMNS) + f", {_CORRUPT} string"
    parsed = F.from_csv(F.col(line_col), csv_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})
    fields = F.size(F.split(F.col(line_col), ",", -1))
    out = df.withColumn("payload", F.col(line_col)).withColumn("payload_bytes", F.length(F.encode(F.col(line_col), "UTF-8")).cast("int"))
    out = out.withColumn("f", parsed)
    # A quoted field may hold commas; only flag a wrong field count when there are no quotes.
    bad_shape = F.col(f"f.{_CORRUPT}").isNotNull() | (~F.col(line_col).contains('"') & (fields != len(events.CSV_COLUMNS)))
    return out.withColumn(
        "pre_reason",
        _first(
            (F.col("payload_bytes") > events.MAX_PAYLOAD_BYTES, "oversize_payload"),
            (~F.expr("is_valid_utf8(payload)"), "invalid_utf8"),
            (bad_shape, "malformed_csv"),
        ),
    )


def _blank_to_null(c: Column) -> Column:
    return F.when(F.trim(c) == "", None).otherwise(c)


def _event_time(text: Column) -> Column:
    """REES46 text (`2019-11-01 00:00:00 UTC`) or ISO-8601; null when neither parses."""
    return F.coalesce(
        F.to_timestamp(text, events.SPARK_EVENT_TIME_FORMAT),
        F.to_timestamp(text),
    )


def validate_fields(df: DataFrame) -> DataFrame:
    """Type the ``f`` fields and decide ``reason`` / ``reason_detail`` for every row.

    Expects the columns made by one of the ``parse_*`` functions. Adds typed event
    columns (``events.EVENT_COLUMNS``) plus ``event_date``.
    """
    f = {c: _blank_to_null(F.col(f"f.{c}")) for c in events.CSV_COLUMNS}
    missing = [(f[c].isNull(), f"missing_field:{c}") for c in events.REQUIRED_FIELDS]
    wrong_int = [(~f[c].rlike(_INT_PATTERN) | F.trim(f[c]).cast("bigint").isNull(), f"wrong_type:{c}") for c in _INT_FIELDS]
    wrong_price = [(~f["price"].rlike(_NUMBER_PATTERN), "wrong_type:price")]
    ts = _event_time(F.trim(f["event_time"]))
    price = F.trim(f["price"]).cast("double")
    ids = {c: F.trim(f[c]).cast("bigint") for c in _INT_FIELDS}
    min_time = F.to_timestamp(F.lit(events.MIN_EVENT_TIME))
    max_time = F.current_timestamp() + F.expr(f"INTERVAL {events.MAX_FUTURE_SECONDS} SECONDS")
    rule = _first(
        (F.col("pre_reason").isNotNull(), F.concat(F.col("pre_reason"), F.lit(":"))),
        *missing,
        *wrong_int,
        *wrong_price,
        (~f["event_type"].isin(*events.EVENT_TYPES), F.concat(F.lit("unknown_event_type:"), F.substring(f["event_type"], 1, 100))),
        (ts.isNull(), F.concat(F.lit("unparsable_timestamp:"), F.substring(f["event_time"], 1, 100))),
        ((ts < min_time) | (ts > max_time), F.concat(F.lit("timestamp_out_of_range:"), F.substring(f["event_time"], 1, 100))),
        (F.isnan(price) | (price < events.MIN_PRICE) | (price > events.MAX_PRICE), F.concat(F.lit("price_out_of_range:"), f["price"])),
        ((ids["product_id"] <= 0) | (ids["user_id"] <= 0) | (ids["category_id"] <= 0), "invalid_id:non-positive id"),
    )
    out = df.withColumn("_rule", rule)
    out = out.withColumn("reason", F.substring_index(F.col("_rule"), ":", 1))
    out = out.withColumn("reason_detail", F.expr("nullif(substring(_rule, length(reason) + 2), '')"))
    typed = {
        "event_time": ts,
        "event_type": f["event_type"],
        "product_id": ids["product_id"],
        "category_id": ids["category_id"],
        "category_code": f["category_code"],
        "brand": f["brand"],
        "price": price,
        "user_id": ids["user_id"],
        "user_session": f["user_session"],
    }
    for name, value in typed.items():
        out = out.withColumn(name, value)
    return out.withColumn("event_date", F.to_date(F.col("event_time"))).drop("_rule")


def bronze_rows(validated: DataFrame) -> DataFrame:
    """Valid rows in bronze column order."""
    return validated.filter(F.col("reason").isNull()).select(*[c.name for c in events.BRONZE_COLUMNS])


def quarantine_rows(validated: DataFrame) -> DataFrame:
    """Rejected rows in quarantine column order (payload truncated to the size limit)."""
    rejected = validated.filter(F.col("reason").isNotNull())
    rejected = rejected.withColumn("raw_payload", F.substring(F.col("payload"), 1, events.MAX_PAYLOAD_BYTES))
    rejected = rejected.withColumn("ingested_date", F.to_date(F.col("ingested_at")))
    return rejected.select(*[c.name for c in events.QUARANTINE_COLUMNS])
