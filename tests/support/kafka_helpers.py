"""Small Kafka helpers for tests: create a topic and send raw payloads as they are."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path

from lakehouse import config
from streaming import events


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **config.load().kafka_client_options)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def send_raw(bootstrap: str, topic: str, payloads: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send (key, value) pairs untouched (malformed ones included); returns the count."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config.load().kafka_client_options)
    n = 0
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush()
    producer.close()
    return n


def sample_payloads(path: Path) -> list[tuple[bytes, bytes]]:
    """The REES46 sample as (session key, JSON value) pairs, typed as the producer sends them."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            rec: dict[str, object] = dict(zip(events.CSV_COLUMNS, row, strict=True))
            for c in ("product_id", "category_id", "user_id"):
                rec[c] = int(rec[c])  # type: ignore[arg-type]
            rec["price"] = float(rec["price"])  # type: ignore[arg-type]
            for c in ("category_code", "brand", "user_session"):
                rec[c] = rec[c] or None
            out.append((str(rec["user_session"]).encode(), json.dumps(rec).encode()))
    return out


def synthetic_payloads(n: int, seed: int):
    """n (key, JSON) events over a week, every 97th a broken payload; deterministic per seed."""
    rng = random.Random(seed)
    for i in range(n):
        if i % 97 == 0:  # a steady trickle of bad records
            yield b"bad", b'{"event_type": "view", "oops": '
            continue
        rec = {
            "event_time": f"2019-11-0{1 + i % 7} {i % 24:02d}:{i % 60:02d}:00 UTC",
            "event_type": rng.choice(["view"] * 20 + ["cart", "purchase"]),
            "product_id": rng.randint(1, 5000),
            "category_id": 2053013555631882655,
            "category_code": "electronics.smartphone",
            "brand": "samsung",
            "price": round(rng.uniform(1, 900), 2),
            "user_id": rng.randint(1, 3000),
            "user_session": f"s-{i // 5}",
        }
        yield f"s-{i // 5}".encode(), json.dumps(rec).encode()
