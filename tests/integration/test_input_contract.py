"""The strict input contract (``streaming.events.REASON_RULES``), bad input by bad input, through the real validation.

Every kind of bad input has its expected reason and a piece of the ``reason_detail``
that names the offending value. JSON payloads go through the ingest's parser
(``validate_kafka``); CSV lines through the backfill's (``validate_csv``) and through
the ingest as the producer sends a bad file line (raw, flagged in a Kafka header), and
both doors must agree. Good records, including the forms the contract accepts on
purpose (a byte order mark, an offset instead of `` UTC``, brackets inside strings),
must reach bronze with their values unaltered. A last test sends a representative
subset through the real Kafka -> ingest path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from streaming import events, ingest
from streaming.bronze import BronzePaths
from streaming.erasure import ERASED_REASON
from streaming.validate import validate_csv, validate_kafka
from tests.support.kafka_helpers import create_topic, send_raw

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = {
    "event_time": "2019-11-01 00:00:00 UTC",
    "event_type": "view",
    "product_id": 1,
    "category_id": 2,
    "category_code": "electronics.smartphone",
    "brand": "apple",
    "price": 9.5,
    "user_id": 3,
    "user_session": "s-1",
}
GOOD_JSON = json.dumps(GOOD)
GOOD_CSV = "2019-11-01 00:00:00 UTC,view,1,2,electronics.smartphone,apple,9.5,3,s-1"


def j(**changes: object) -> bytes:
    """GOOD as JSON with some fields changed (a value of ``...`` removes the field)."""
    return json.dumps({k: v for k, v in {**GOOD, **changes}.items() if v is not ...}).encode()


def raw(text: str) -> bytes:
    return text.encode("utf-8")


def csv_line(**changes: str) -> str:
    values = dict(zip(events.CSV_COLUMNS, GOOD_CSV.split(","), strict=True)) | changes
    return ",".join(values[c] for c in events.CSV_COLUMNS)


# (what is wrong, payload, expected reason, a piece of the expected reason_detail or None)
BAD_JSON: list[tuple[str, bytes, str, str | None]] = [
    # one object, nothing else, keys once
    ("duplicate key, view then purchase", raw(GOOD_JSON[:-1] + ', "event_type": "purchase"}'), "duplicate_key", "event_type"),
    ("duplicate key, same value twice", raw(GOOD_JSON[:-1] + ', "brand": "apple"}'), "duplicate_key", "brand"),
    ("duplicate key spelled with an escape", raw(GOOD_JSON[:-1] + ', "event\\u005ftype": "cart"}'), "duplicate_key", "event_type"),
    ("trailing text", raw(GOOD_JSON + " trailing"), "trailing_content", "trailing"),
    ("two objects in one message", raw(GOOD_JSON + '{"event_type": "purchase"}'), "trailing_content", '{"event_type": "purchase"}'),
    ("two objects on two lines", raw(GOOD_JSON + '\n{"event_type": "cart"}'), "trailing_content", '{"event_type": "cart"}'),
    ("a closing bracket after the object", raw(GOOD_JSON + "]"), "trailing_content", "]"),
    ("a comment after the object", raw(GOOD_JSON + " // sent twice"), "trailing_content", "// sent twice"),
    ("a number after the object", raw(GOOD_JSON + " 42"), "trailing_content", "42"),
    ("trailing text after strings holding braces", j(brand='a}"{b', category_code="x]") + b" tail", "trailing_content", "tail"),
    ("unknown field", raw(GOOD_JSON[:-1] + ', "extra": 1}'), "unknown_field", "extra"),
    ("field name in another case", raw(GOOD_JSON.replace('"brand"', '"Brand"')), "unknown_field", "Brand"),
    ("array value", j(brand=["apple"]), "nested_value", "brand"),
    ("object value", j(category_code={"top": "electronics"}), "nested_value", "category_code"),
    # not JSON, or not an object
    ("not JSON", b"{not json", "invalid_json", None),
    ("truncated object", raw(GOOD_JSON[:40]), "invalid_json", None),
    ("an array of events", raw(f"[{GOOD_JSON}]"), "invalid_json", None),
    ("a JSON string", b'"view"', "invalid_json", None),
    ("JSON null", b"null", "invalid_json", None),
    ("empty message", b"", "invalid_json", None),
    ("single quotes", raw(GOOD_JSON.replace('"', "'")), "invalid_json", None),
    ("NaN price", raw(GOOD_JSON.replace("9.5", "NaN")), "invalid_json", None),
    ("leading zero in a number", raw(GOOD_JSON.replace('"product_id": 1', '"product_id": 01')), "invalid_json", None),
    ("trailing comma", raw(GOOD_JSON[:-1] + ",}"), "invalid_json", None),
    ("raw tab inside a string", raw(GOOD_JSON.replace("apple", "app\tle")), "invalid_json", None),
    ("byte order mark before an array", b"\xef\xbb\xbf[1]", "invalid_json", None),
    ("invalid UTF-8", raw(GOOD_JSON).replace(b"apple", b"app\xff\xfe"), "invalid_utf8", None),
    ("oversize", j(brand="x" * (events.MAX_PAYLOAD_BYTES + 1)), "oversize_payload", None),
    # fields present
    ("missing user_id", j(user_id=...), "missing_field", "user_id"),
    ("null event_type", j(event_type=None), "missing_field", "event_type"),
    ("blank product_id", j(product_id=" "), "missing_field", "product_id"),
    ("empty object", b"{}", "missing_field", "event_time"),
    # lengths and characters
    ("15,000-character user_session", j(user_session="s" * 15_000), "field_too_long", "user_session: 15000 characters (limit 64)"),
    ("300-character brand", j(brand="b" * 300), "field_too_long", "brand: 300 characters"),
    ("256-character category_code", j(category_code="c" * 256), "field_too_long", "category_code: 256 characters"),
    ("long event_type", j(event_type="v" * 40), "field_too_long", "event_type: 40 characters"),
    ("NUL in user_session", j(user_session="s\u00001"), "invalid_character", "user_session: U+0000"),
    ("DEL in brand", j(brand="app\u007fle"), "invalid_character", "brand: U+007F"),
    ("replacement character in brand", j(brand="app\ufffdle"), "invalid_character", "brand: U+FFFD"),
    ("escaped newline in category_code", j(category_code="a\nb"), "invalid_character", "category_code: U+000A"),
    ("unpaired high surrogate escape", raw(GOOD_JSON.replace('"apple"', '"app\\ud800le"')), "invalid_character", "\\ud800"),
    ("unpaired low surrogate escape", raw(GOOD_JSON.replace('"apple"', '"\\uDC00"')), "invalid_character", "\\uDC00"),
    # long inputs that must not overflow a regex's stack (the stream would crash on every retry)
    ("1,200 repeated keys", raw(GOOD_JSON[:-1] + "," + ",".join('"brand": "b"' for _ in range(1200)) + "}"), "duplicate_key", "brand"),
    ("7,000 escaped quotes in brand", j(brand='"' * 7000), "field_too_long", "brand: 7000 characters"),
    ("7,000 braces in a string, then text", j(brand="}" * 7000) + b" x", "trailing_content", "x"),
    # types and values
    ("product_id not a number", j(product_id="abc"), "wrong_type", "product_id: abc"),
    ("product_id a fraction", j(product_id=1.5), "wrong_type", "product_id: 1.5"),
    ("user_id of 20 digits", j(user_id=10**19 * 5), "wrong_type", "user_id"),
    ("category_id true", j(category_id=True), "wrong_type", "category_id: true"),
    ("price text", j(price="cheap"), "wrong_type", "price: cheap"),
    ("price beyond a double", raw(GOOD_JSON.replace("9.5", "1e400")), "wrong_type", "price"),
    ("unknown event type", j(event_type="teleport"), "unknown_event_type", "teleport"),
    ("event type in capitals", j(event_type="VIEW"), "unknown_event_type", "VIEW"),
    ("negative price", j(price=-12.0), "price_out_of_range", "-12.0"),
    ("absurd price", j(price=1e12), "price_out_of_range", None),
    ("negative user_id", j(user_id=-4), "invalid_id", "user_id: -4"),
    ("zero category_id", j(category_id=0), "invalid_id", "category_id: 0"),
    # timestamps: a date and a time, and a zone
    ("date only", j(event_time="2019-11-01"), "timestamp_without_time", "2019-11-01"),
    ("year only", j(event_time="2019"), "timestamp_without_time", "2019"),
    ("year and month", j(event_time="2019-11"), "timestamp_without_time", "2019-11"),
    ("no zone", j(event_time="2019-11-01 00:00:00"), "timestamp_without_zone", "2019-11-01 00:00:00"),
    ("ISO without zone", j(event_time="2019-11-01T10:00:00"), "timestamp_without_zone", "2019-11-01T10:00:00"),
    ("no seconds", j(event_time="2019-11-01 10:00 UTC"), "unparsable_timestamp", "2019-11-01 10:00 UTC"),
    ("30 February", j(event_time="2019-02-30 00:00:00 UTC"), "unparsable_timestamp", "2019-02-30"),
    ("hour 24", j(event_time="2019-11-01 24:00:00 UTC"), "unparsable_timestamp", "24:00:00"),
    ("a region instead of an offset", j(event_time="2019-11-01 00:00:00 Europe/Paris"), "unparsable_timestamp", "Europe/Paris"),
    ("words", j(event_time="yesterday at noon"), "unparsable_timestamp", "yesterday at noon"),
    ("epoch seconds", j(event_time=1572566400), "unparsable_timestamp", "1572566400"),
    ("before 2000", j(event_time="1999-12-31 23:59:59 UTC"), "timestamp_out_of_range", "1999-12-31"),
    ("far future", j(event_time="2999-01-01 00:00:00 UTC"), "timestamp_out_of_range", "2999-01-01"),
]

# The same rules on the backfill's CSV lines.
BAD_CSV: list[tuple[str, str, str, str | None]] = [
    ("eight fields", GOOD_CSV.rsplit(",", 1)[0], "malformed_csv", "found 8"),
    ("ten fields", GOOD_CSV + ",extra", "malformed_csv", "found 10"),
    ("date only", csv_line(event_time="2019-11-01"), "timestamp_without_time", "2019-11-01"),
    ("year only", csv_line(event_time="2019"), "timestamp_without_time", "2019"),
    ("no zone", csv_line(event_time="2019-11-01 00:00:00"), "timestamp_without_zone", None),
    ("15,000-character user_session", csv_line(user_session="s" * 15_000), "field_too_long", "user_session: 15000"),
    ("control character in brand", csv_line(brand="app\x01le"), "invalid_character", "brand: U+0001"),
    ("product_id not a number", csv_line(product_id="abc"), "wrong_type", "product_id: abc"),
    ("unknown event type", csv_line(event_type="teleport"), "unknown_event_type", "teleport"),
    ("blank price", csv_line(price=""), "missing_field", "price"),
    ("30 February", csv_line(event_time="2019-02-30 00:00:00 UTC"), "unparsable_timestamp", None),
    ("negative user_id", csv_line(user_id="-4"), "invalid_id", "user_id: -4"),
]

# Records the contract accepts: (what, payload, the event_time it must get as UTC ISO text, expected field values).
GOOD_JSON_CASES: list[tuple[str, bytes, str, dict]] = [
    ("the producer's form", j(), "2019-11-01T00:00:00", {}),
    ("a byte order mark first (ignored, RFC 8259)", b"\xef\xbb\xbf" + j(), "2019-11-01T00:00:00", {}),
    ("whitespace and line ends around the object", b"\r\n  " + j() + b" \n", "2019-11-01T00:00:00", {}),
    ("ISO with Z", j(event_time="2019-11-01T10:20:30Z"), "2019-11-01T10:20:30", {}),
    ("an offset", j(event_time="2019-11-01T00:30:00+01:00"), "2019-10-31T23:30:00", {}),
    ("a compact offset", j(event_time="2019-11-01 00:00:00-0500"), "2019-11-01T05:00:00", {}),
    ("microseconds", j(event_time="2019-11-01 00:00:00.123456 UTC"), "2019-11-01T00:00:00.123456", {}),
    (
        "brackets and quotes inside strings",
        j(brand='a}"[b{', category_code="x]"),
        "2019-11-01T00:00:00",
        {"brand": 'a}"[b{', "category_code": "x]"},
    ),
    ("non-ASCII text", j(brand="café ☕"), "2019-11-01T00:00:00", {"brand": "café ☕"}),
    ("a surrogate pair escape", raw(GOOD_JSON.replace('"apple"', '"\\ud83d\\ude00"')), "2019-11-01T00:00:00", {"brand": "\U0001f600"}),
    (
        "an escaped backslash before u-d-8-0-0",
        raw(GOOD_JSON.replace('"apple"', '"\\\\ud800"')),
        "2019-11-01T00:00:00",
        {"brand": "\\ud800"},
    ),
    (
        "nulls where allowed",
        j(category_code=None, brand=None, user_session=None),
        "2019-11-01T00:00:00",
        {"category_code": None, "brand": None, "user_session": None},
    ),
    ("a session id at the length limit", j(user_session="s" * 64), "2019-11-01T00:00:00", {"user_session": "s" * 64}),
]


def _kafka_frame(spark, payloads: list[bytes], csv_flags: list[bool] | None = None):
    flags = csv_flags or [False] * len(payloads)
    rows = [(bytearray(p), flag, i) for i, (p, flag) in enumerate(zip(payloads, flags, strict=True))]
    return spark.createDataFrame(rows, "value binary, is_csv_line boolean, id int")


def _judged(validated) -> dict[int, tuple[str | None, str | None]]:
    return {r.id: (r.reason, r.reason_detail) for r in validated.select("id", "reason", "reason_detail").collect()}


def test_there_are_at_least_40_kinds_of_bad_input_and_every_reason_is_exercised() -> None:
    assert len(BAD_JSON) + len(BAD_CSV) >= 40
    # erased_user is not about the record's form but about who it belongs to: tests/integration/test_erasure.py covers it
    assert {r for _, _, r, _ in BAD_JSON + BAD_CSV} == set(events.REASONS) - {ERASED_REASON}


def test_each_bad_json_payload_is_quarantined_with_its_own_reason_and_the_offending_value(spark) -> None:
    judged = _judged(validate_kafka(_kafka_frame(spark, [p for _, p, _, _ in BAD_JSON]), NOW))
    wrong = []
    for i, (what, _, reason, detail) in enumerate(BAD_JSON):
        got_reason, got_detail = judged[i]
        if got_reason != reason or (detail is not None and detail not in (got_detail or "")):
            wrong.append(f"{what}: expected {reason} / {detail!r}, got {got_reason} / {got_detail!r}")
    assert not wrong, "\n".join(wrong)


def test_each_bad_csv_line_gets_the_same_reason_through_the_backfill_and_through_kafka(spark) -> None:
    lines = [line for _, line, _, _ in BAD_CSV]
    by_backfill = validate_csv(spark.createDataFrame([(line, i) for i, line in enumerate(lines)], "line string, id int"), NOW)
    by_kafka = validate_kafka(_kafka_frame(spark, [line.encode() for line in lines], [True] * len(lines)), NOW)
    backfill, kafka = _judged(by_backfill), _judged(by_kafka)
    wrong = []
    for i, (what, _, reason, detail) in enumerate(BAD_CSV):
        got_reason, got_detail = backfill[i]
        if got_reason != reason or (detail is not None and detail not in (got_detail or "")):
            wrong.append(f"{what}: expected {reason} / {detail!r}, got {got_reason} / {got_detail!r}")
        if kafka[i] != backfill[i]:
            wrong.append(f"{what}: the backfill says {backfill[i]}, the ingest {kafka[i]}")
    assert not wrong, "\n".join(wrong)


def test_good_records_pass_unaltered(spark) -> None:
    validated = validate_kafka(_kafka_frame(spark, [p for _, p, _, _ in GOOD_JSON_CASES]), NOW)
    rows = {r.id: r for r in validated.withColumn("micros", F.unix_micros("event_time")).collect()}
    wrong = []
    for i, (what, _, utc, expected) in enumerate(GOOD_JSON_CASES):
        row = rows[i]
        want = {**GOOD, "price": 9.5, **expected}
        got = {k: row[k] for k in want if k != "event_time"}
        want_micros = round(datetime.fromisoformat(utc).replace(tzinfo=UTC).timestamp() * 1_000_000)
        if row.reason is not None or row.micros != want_micros or got != {k: v for k, v in want.items() if k != "event_time"}:
            wrong.append(
                f"{what}: reason {row.reason} ({row.reason_detail}), micros {row.micros} (want {want_micros}, {utc} UTC), values {got}"
            )
    assert not wrong, "\n".join(wrong)


def test_the_reported_cases_reach_quarantine_through_kafka_and_nothing_reaches_bronze_altered(spark, cfg, kafka, tmp_topic) -> None:
    """A representative subset through the real Kafka -> ingest path: every record in exactly one table, with its reason."""
    picks = {
        "duplicate key, view then purchase",
        "two objects in one message",
        "trailing text",
        "unknown field",
        "array value",
        "date only",
        "year only",
        "no zone",
        "15,000-character user_session",
        "NUL in user_session",
        "single quotes",
        "oversize",
    }
    bad = [(p, reason) for what, p, reason, _ in BAD_JSON if what in picks]
    assert len(bad) == len(picks)
    good = [
        b"\xef\xbb\xbf" + j(user_session="bom"),
        j(user_session="plain"),
        j(event_time="2019-11-01T00:30:00+01:00", user_session="offset"),
    ]
    create_topic(kafka, tmp_topic, partitions=1)
    sent = send_raw(kafka, tmp_topic, [(b"k", p) for p in good] + [(b"k", p) for p, _ in bad])

    query = ingest.start(spark, cfg, topic=tmp_topic, available_now=True, starting_offsets="earliest")
    query.awaitTermination(600)
    assert query.exception() is None

    paths = BronzePaths.from_config(cfg)
    bronze = spark.read.format("delta").load(str(paths.events)).filter(F.col("kafka_topic") == tmp_topic)
    quarantine = spark.read.format("delta").load(str(paths.quarantine)).filter(F.col("kafka_topic") == tmp_topic)
    landed = {r.user_session: r for r in bronze.collect()}
    assert set(landed) == {"bom", "plain", "offset"}
    assert {r.event_type for r in landed.values()} == {"view"}
    assert landed["offset"].event_time.timestamp() == datetime(2019, 10, 31, 23, 30, tzinfo=UTC).timestamp()
    got = {r.kafka_offset: r.reason for r in quarantine.collect()}
    assert got == {len(good) + i: reason for i, (_, reason) in enumerate(bad)}
    assert bronze.count() + quarantine.count() == sent
