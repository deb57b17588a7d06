"""The scorer's event ids come from the JVM (``typed_events``): they must be the staging model's, byte for byte.

Python's :func:`streaming.session_features.event_id` restates the staging expression;
the scorer now takes the Spark column instead, with the rows already typed by the
ingest's validation. Both ways must give each event the same id and the same compact
state tuple, on the values where text forms differ: fractional seconds, an offset
that is not UTC, prices whole, fractional and large, missing optional fields,
non-ASCII text.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from streaming.scorer import typed_events
from streaming.scorer_state import frame_events
from streaming.session_features import event_id, normalise

pytestmark = pytest.mark.integration

RECORDS = [
    ("2019-11-01 10:00:00 UTC", "view", 5.0, "electronics.smartphone", "apple", "s-1"),
    ("2019-11-01 10:00:00.25 UTC", "cart", 0.1, None, None, "s-1"),
    ("2019-11-01T10:00:01.123456Z", "purchase", 999999.99, "appliances.kitchen", "bosch", "s-2"),
    ("2019-11-01 12:00:02+02:00", "remove_from_cart", 1234567.0 / 10, "furniture", "ikea", None),
    ("2019-11-01 10:00:03 UTC", "view", 0.0, "kids.toys", "brand é ü 中", "s-3"),
    ("2019-11-01 10:00:04 UTC", "view", 100000.0, "", "", "s-3"),
]


def _raw(spark):
    values = [
        json.dumps(
            {
                "event_time": t,
                "event_type": kind,
                "product_id": 100 + i,
                "category_id": 7,
                "category_code": code,
                "brand": brand,
                "price": price,
                "user_id": 500 + i,
                "user_session": session,
            }
        ).encode()
        for i, (t, kind, price, code, brand, session) in enumerate(RECORDS)
    ]
    return spark.createDataFrame([(v, datetime(2026, 1, 1)) for v in values], "value binary, timestamp timestamp")


def test_the_jvm_event_id_is_the_staging_models_and_the_state_tuples_match(spark):
    frame = typed_events(_raw(spark)).toPandas()
    assert len(frame) == len(RECORDS)  # all valid: nothing here is a quarantine case
    for row in frame.to_dict("records"):
        fields = {k: v for k, v in row.items() if k not in ("state_key", "kafka_timestamp", "event_digest")}
        assert row["event_digest"].hex() == event_id(normalise(fields)), fields

    from_jvm = list(frame_events(frame))
    from_python = list(frame_events(frame.drop(columns=["event_digest"])))
    assert from_jvm == from_python
    assert [ev[4] for _, _, ev, _ in from_jvm][-1] is None  # a blank category code is null in the state too
