"""The producer replays the real sample into a real Kafka broker, keyed and typed as the contract says."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from lakehouse import config
from streaming.events import CSV_COLUMNS
from streaming.producer import produce_file, produce_records
from streaming.rees46 import iter_raw_records

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5_000,
        **config.load().kafka_client_options,
    )
    out: list = []
    import time

    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1_000).values():
                out.extend(batch)
    finally:
        consumer.close()
    return out


def test_sample_round_trips_through_kafka(kafka: str, tmp_topic: str, sample_csv: Path) -> None:
    assert produce_file(sample_csv, tmp_topic, partitions=3, bootstrap=kafka) == 683
    records = _consume(kafka, tmp_topic, 683)
    assert len(records) == 683
    assert len({r.partition for r in records}) > 1, "spread over the partitions"

    raw = [fields for _, fields in iter_raw_records(sample_csv)]
    by_session: dict[str, list[dict]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        value = json.loads(r.value)
        assert r.key.decode() == value["user_session"]
        by_session[value["user_session"]].append((r.partition, r.offset, value))
        partitions[value["user_session"]].add(r.partition)
    assert all(len(p) == 1 for p in partitions.values()), "one session, one partition"
    assert len(by_session) == 240

    expected: dict[str, list[dict]] = defaultdict(list)
    for fields in raw:
        expected[fields["user_session"]].append(fields)
    for session, got in by_session.items():
        values = [v for _, _, v in sorted(got, key=lambda x: x[1])]  # offset order within the partition
        want = expected[session]
        assert len(values) == len(want)
        for value, text in zip(values, want, strict=True):
            assert list(value) == list(CSV_COLUMNS)
            assert value["event_time"] == text["event_time"]
            assert value["event_type"] == text["event_type"]
            for name in ("product_id", "category_id", "user_id"):
                assert isinstance(value[name], int) and value[name] == int(text[name])
            assert value["price"] == float(text["price"])
            assert value["category_code"] == (text["category_code"] or None)
            assert value["brand"] == (text["brand"] or None)


def test_null_session_is_keyed_by_user(kafka: str, tmp_topic: str, sample_csv: Path, tmp_path: Path) -> None:
    lines = sample_csv.read_text().splitlines(keepends=True)[:3]
    lines[1] = lines[1][: lines[1].rfind(",") + 1] + "\n"
    path = tmp_path / "null-session.csv"
    path.write_text("".join(lines))
    assert produce_file(path, tmp_topic, bootstrap=kafka) == 3
    records = sorted(_consume(kafka, tmp_topic, 3), key=lambda r: json.loads(r.value)["product_id"])
    nulls = [r for r in records if json.loads(r.value)["user_session"] is None]
    assert len(nulls) == 1
    assert nulls[0].key.decode() == str(json.loads(nulls[0].value)["user_id"])


def test_limit_and_rate(kafka: str, tmp_topic: str, sample_csv: Path) -> None:
    import time

    started = time.monotonic()
    assert produce_file(sample_csv, tmp_topic, rate=200, limit=100, bootstrap=kafka) == 100
    assert time.monotonic() - started >= 0.45  # 100 events at 200/s take at least ~0.5 s
    assert len(_consume(kafka, tmp_topic, 100, timeout_s=20)) == 100


def test_raw_records_pass_malformed_payloads_untouched(kafka: str, tmp_topic: str) -> None:
    payloads = [b"not json at all", b"\xff\xfe", {"event_type": "view"}]
    assert produce_records(payloads, tmp_topic, key=b"k", bootstrap=kafka) == 3
    values = sorted(r.value for r in _consume(kafka, tmp_topic, 3))
    assert values == sorted([b"not json at all", b"\xff\xfe", b'{"event_type":"view"}'])
