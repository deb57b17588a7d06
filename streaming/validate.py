"""Parse and validate raw event records in Spark: one rule set for stream and backfill.

Every record gets either typed event columns or a quarantine ``reason`` (the first
rule it breaks, in the order of ``events.REASON_RULES``, where the rules are written
down) with the offending value in ``reason_detail``.
The streaming ingest feeds Kafka values (JSON); the backfill feeds CSV lines. Both
end in :func:`validate_fields`, so a record is judged the same whichever door it
came in by.

Everything is a Spark SQL expression, evaluated in the JVM: the usual record costs a
few cheap checks (its key list, its count of brackets, a length per field, one regex
on its event time), and the expensive work (where trailing content starts, which
keys repeat) is done only in the branch of a record that broke that rule.
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

    ``pre_reason`` covers what makes a payload unreadable or ambiguous before looking at
    fields: oversize, invalid UTF-8, not exactly one JSON object with known, distinct keys
    and flat values (``events.REASON_RULES``).
    """
    value = F.col(value_col)
    out = df.select("*", _text(value), _byte_size(value))
    out = out.select("*", _json_text(F.col("payload")).alias(_JSON))
    out = out.select("*", _from_json(F.col(_JSON)).alias("f"), _json_keys(F.col(_JSON)), *_shape_inputs(F.col(_JSON)))
    out = out.select("*", _shape().alias(_SHAPE))
    return out.withColumn("pre_reason", _json_pre_reason()).drop(*_JSON_HELPERS)


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
    out = out.select("*", F.when(~is_csv, _json_text(payload)).alias(_JSON))
    json_text = F.col(_JSON)
    out = out.select(
        "*",
        F.when(is_csv, _from_csv(payload)).otherwise(_from_json(json_text)).alias("f"),
        _json_keys(json_text),
        *_shape_inputs(json_text),
    )
    out = out.select("*", _shape().alias(_SHAPE))
    out = out.withColumn("pre_reason", F.when(is_csv, _csv_pre_reason()).otherwise(_json_pre_reason()))
    return out.drop(*_JSON_HELPERS)


_JSON = "_json"  # the payload without a leading byte order mark
_KEYS = "_keys"  # the object's keys as the JSON parser reads them (repeats included), null when not an object
_SKELETON = "_skeleton"  # the text with its strings emptied, only for a text with more than its two brackets
_SHAPE = "_shape"  # ok, trailing (content after the object) or nested (an array or object inside it)
_LONE = "_lone"  # the first unpaired surrogate escape, or empty
_JSON_HELPERS = (_JSON, _KEYS, _SKELETON, _SHAPE, _LONE)
_WS = " \t\r\n"  # JSON's whitespace
# Strict JSON (RFC 8259): Spark's reader otherwise takes single quotes and NaN / Infinity.
_JSON_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": _CORRUPT,
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}


def _text(value: Column) -> Column:
    return value.cast("string").alias("payload")


def _byte_size(value: Column) -> Column:
    return F.coalesce(F.length(value), F.lit(0)).cast("int").alias("payload_bytes")


def _json_text(payload: Column) -> Column:
    """The payload as JSON text: a leading UTF-8 byte order mark dropped (RFC 8259 lets a parser ignore it).

    The mark is an encoding detail, not content; the quarantine keeps the payload as received.
    """
    return F.when(payload.startswith("\ufeff"), payload.substr(F.lit(2), F.length(payload))).otherwise(payload)


def _from_json(payload: Column) -> Column:
    # Spark's JSON reader keeps the *last* of repeated keys and stops reading after the first
    # object: both are caught by the rules on _KEYS and on the text's structure, not here.
    return F.from_json(payload, RAW_SCHEMA, _JSON_OPTIONS)


def _json_keys(json_text: Column) -> Column:
    return F.json_object_keys(json_text).alias(_KEYS)


def _from_csv(payload: Column) -> Column:
    csv_schema = ", ".join(f"{c} string" for c in events.CSV_COLUMNS) + f", {_CORRUPT} string"
    return F.from_csv(payload, csv_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})


def _json_pre_reason() -> Column:
    """The message-level rules of a JSON payload, from ``payload``, ``payload_bytes``, ``f`` and the helper columns."""
    text, keys, shape, lone = F.col(_JSON), F.col(_KEYS), F.col(_SHAPE), F.col(_LONE)
    not_object = F.col("f").isNull() | F.col(f"f.{_CORRUPT}").isNotNull() | keys.isNull() | ~text.rlike(f"^[{_WS}]*\\{{")
    known = F.array(*[F.lit(c) for c in events.CSV_COLUMNS])
    usual = keys == known  # the producer's nine keys in their order: no set operations needed
    unknown = F.array_except(keys, known)
    return _first(
        (F.col("payload_bytes") > events.MAX_PAYLOAD_BYTES, "oversize_payload"),
        (~F.expr("is_valid_utf8(payload)"), "invalid_utf8"),
        (not_object, "invalid_json"),
        (shape == "trailing", F.concat(F.lit("trailing_content:"), _clip(_after_first_object(text)))),
        (~usual & (F.size(keys) != F.size(F.array_distinct(keys))), F.concat(F.lit("duplicate_key:"), _repeated(keys))),
        (~usual & (F.size(unknown) > 0), F.concat(F.lit("unknown_field:"), _clip(F.array_join(unknown, ", ")))),
        (shape == "nested", F.concat(F.lit("nested_value:"), _nested_keys(text))),
        (lone != "", F.concat(F.lit("invalid_character:unpaired UTF-16 surrogate "), lone)),
    )


def _shape_inputs(text: Column) -> list[Column]:
    """The skeleton of an unusual text, and its first unpaired surrogate escape: each computed once, for few records.

    The usual record has exactly two bracket characters, its first and its last: then
    nothing follows the object and nothing is nested in it, and it needs no skeleton.
    Spark evaluates a CASE branch only for the rows that take it, and these columns are
    their own projection, so no later rule computes them again.
    """
    # One possessive regex pass; counting the brackets with translate() cost several times more per record.
    usual = text.rlike(f"^[{_WS}]*\\{{[^{{}}\\[\\]]*+\\}}[{_WS}]*$")
    lone = F.when(F.instr(text, "\\u") > 0, _lone_surrogate(text)).otherwise("")
    return [F.when(~usual, _skeleton(text)).alias(_SKELETON), lone.alias(_LONE)]


def _shape() -> Column:
    """``ok``, ``trailing`` or ``nested``, read on the skeleton (a text already known to start with an object)."""
    skeleton = F.col(_SKELETON)
    flat = f"^[{_WS}]*\\{{[^{{}}\\[\\]]*\\}}"
    return F.when(skeleton.isNull() | skeleton.rlike(flat + f"[{_WS}]*$"), "ok").when(skeleton.rlike(flat), "trailing").otherwise("nested")


def _neutral(text: Column) -> Column:
    """The text with every escape (a backslash and the character after it) as ``__``: same length, and every ``"`` delimits a string."""
    return F.regexp_replace(text, r"(?s)\\.", "__")


def _skeleton(text: Column) -> Column:
    """The text with every string emptied: brackets left are structure, never content.

    No regex here loops over a group (Java's matcher recurses per iteration of one and
    would overflow its stack on a long payload): escapes go first, then ``"[^"]*"``.
    """
    return F.regexp_replace(_neutral(text), '"[^"]*+"', '""')


def _after_first_object(text: Column) -> Column:
    """What follows the first (flat) object: the text after its first ``}`` outside a string.

    Splitting the escape-free text at its quotes puts the text outside strings at even
    positions; the object ends at the first ``}`` of those.
    """
    parts = F.split(_neutral(text), '"', -1)
    acc = F.struct(F.lit(0).alias("pos"), F.lit(0).alias("i"), F.lit(0).alias("end"))

    def step(a: Column, part: Column) -> Column:
        here = F.instr(part, "}")
        found = (a["end"] == 0) & (a["i"] % 2 == 0) & (here > 0)
        return F.struct(
            (a["pos"] + F.length(part) + 1).alias("pos"),
            (a["i"] + 1).alias("i"),
            F.when(found, a["pos"] + here).otherwise(a["end"]).alias("end"),
        )

    end = F.aggregate(parts, acc, step, lambda a: a["end"])
    return F.regexp_replace(text.substr(end + 1, F.lit(1 << 20)), f"^[{_WS}]+", "")


# An escaped UTF-16 surrogate without its other half: Spark's reader turns it into "?" (an altered value).
_LONE_SURROGATE = (
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _lone_surrogate(text: Column) -> Column:
    """The first unpaired surrogate escape (``\\ud800``), else empty; only a text with a surrogate escape is searched.

    Escaped backslashes are blanked first, so that ``\\\\ud800`` (a backslash, then text) is not read as one.
    """
    candidate = text.rlike(r"\\u[dD][89a-fA-F]")
    return F.when(candidate, F.regexp_extract(F.regexp_replace(text, r"\\\\", "__"), f"({_LONE_SURROGATE})", 1)).otherwise("")


def _repeated(keys: Column) -> Column:
    """The keys that occur more than once, each named once."""
    twice = F.filter(keys, lambda k: F.size(F.filter(keys, lambda j: j == k)) > 1)
    return _clip(F.array_join(F.array_distinct(twice), ", "))


def _nested_keys(text: Column) -> Column:
    """The keys whose value opens an array or an object (for a human: read off the escape-free text)."""
    return _clip(
        F.array_join(F.array_distinct(F.regexp_extract_all(_neutral(text), F.lit('"([^"]*+)"[ \t\r\n]*:[ \t\r\n]*[\\[{]'), 1)), ", ")
    )


def _clip(text: Column, n: int = 100) -> Column:
    """At most ``n`` characters of a value for ``reason_detail`` (the quarantine's raw payload holds all of it)."""
    return F.when(F.length(text) > n, F.concat(F.substring(text, 1, n), F.lit("…"))).otherwise(text)


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
    """The timestamp of a text in an accepted form (``events.EVENT_TIME_PATTERN``), else null.

    A plain cast once the form is checked: Spark's string-to-timestamp cast reads both
    the REES46 form and ISO-8601 with an offset, and is several times faster than a
    pattern-based parse. On its own the cast also reads a bare date or a time without a
    zone (inventing midnight, or the session's zone): the pattern keeps those out. A
    form that passes but names no real instant (``2019-02-30``) casts to null.
    """
    return F.when(text.rlike(events.EVENT_TIME_PATTERN), text.cast("timestamp"))


def _timestamp_problem(text: Column) -> Column:
    """The reason for an event time that did not parse: no time, no zone, or neither."""
    return (
        F.when(text.rlike(events.DATE_ONLY_PATTERN), "timestamp_without_time")
        .when(text.rlike(events.NO_ZONE_PATTERN), "timestamp_without_zone")
        .otherwise("unparsable_timestamp")
    )


def _too_long(v: dict[str, Column]) -> Column:
    """``field: N characters (limit L): value`` for the first field over its limit, else null."""
    rule = None
    for c, limit in events.MAX_FIELD_LENGTH.items():
        n = F.length(v[c])
        detail = F.concat(F.lit(f"{c}: "), n.cast("string"), F.lit(f" characters (limit {limit}): "), _clip(v[c]))
        rule = F.when(n > limit, detail) if rule is None else rule.when(n > limit, detail)
    return rule  # type: ignore[return-value]


def _has_bad_character(text: Column) -> Column:
    """Whether the text holds a character of ``events.BAD_CHARACTER_CLASS`` (one regex search: cheaper than translate())."""
    return text.rlike(events.BAD_CHARACTER_CLASS)


def _bad_character(v: dict[str, Column]) -> Column:
    """``field: U+XXXX in value`` for the first field holding a forbidden character."""
    rule = None
    for c in events.CSV_COLUMNS:
        char = F.regexp_extract(v[c], f"({events.BAD_CHARACTER_CLASS})", 1)
        detail = F.concat(F.lit(f"{c}: "), F.format_string("U+%04X", F.ascii(char)), F.lit(" in "), _clip(v[c]))
        has = v[c].rlike(events.BAD_CHARACTER_CLASS)
        rule = F.when(has, detail) if rule is None else rule.when(has, detail)
    return rule  # type: ignore[return-value]


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
    trims) inside every CASE branch that uses it. The detail of a rule is computed in
    its branch only, so only a record that broke it pays for it.
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
        "_too_long": F.greatest(*[F.length(v[c]) > limit for c, limit in events.MAX_FIELD_LENGTH.items()]),
        # One regex over all the text rather than one per field; which field it was is looked for only when one has it.
        "_bad_char": _has_bad_character(F.concat_ws("", *v.values())),
        **{f"_id_{c}": F.trim(v[c]).cast("bigint") for c in _INT_FIELDS},
        **{f"_id_ok_{c}": v[c].rlike(_INT_PATTERN) for c in _INT_FIELDS},
    }
    out = out.select("*", *[e.alias(k) for k, e in typed.items()])
    ts, price = F.col("_ts"), F.col("_price")
    ids = {c: F.col(f"_id_{c}") for c in _INT_FIELDS}
    # 3. the rule: the first one a record breaks, in events.REASONS order
    min_time = F.to_timestamp(F.lit(events.MIN_EVENT_TIME))
    max_time = (F.current_timestamp() if now is None else F.lit(now)) + F.expr(f"INTERVAL {events.MAX_FUTURE_SECONDS} SECONDS")
    time_text = _clip(v["event_time"])
    rule = _first(
        (F.col("pre_reason").isNotNull(), F.col("pre_reason")),
        *[(v[c].isNull(), f"missing_field:{c}") for c in events.REQUIRED_FIELDS],
        (F.coalesce(F.col("_too_long"), F.lit(False)), F.concat(F.lit("field_too_long:"), _too_long(v))),
        (F.coalesce(F.col("_bad_char"), F.lit(False)), F.concat(F.lit("invalid_character:"), _bad_character(v))),
        *[(~F.col(f"_id_ok_{c}") | ids[c].isNull(), F.concat(F.lit(f"wrong_type:{c}: "), _clip(v[c]))) for c in _INT_FIELDS],
        (~F.col("_price_ok"), F.concat(F.lit("wrong_type:price: "), _clip(v["price"]))),
        (~v["event_type"].isin(*events.EVENT_TYPES), F.concat(F.lit("unknown_event_type:"), _clip(v["event_type"]))),
        (ts.isNull(), F.concat(_timestamp_problem(F.trim(v["event_time"])), F.lit(":"), time_text)),
        ((ts < min_time) | (ts > max_time), F.concat(F.lit("timestamp_out_of_range:"), time_text)),
        (
            F.isnan(price) | (price < events.MIN_PRICE) | (price > events.MAX_PRICE),
            F.concat(F.lit("price_out_of_range:"), _clip(v["price"])),
        ),
        *[(ids[c] <= 0, F.concat(F.lit(f"invalid_id:{c}: "), v[c])) for c in _INT_FIELDS],
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
