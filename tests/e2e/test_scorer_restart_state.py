"""After `kill -9` the scorer rebuilds its session state from Kafka: events from before the kill still count.

The state lives in the scorer's memory only. Every session's first half of events is
scored and committed, the scorer is killed with SIGKILL, the second halves are sent and
a new scorer starts from the checkpoint. Its predictions must count each session's
events from both sides of the kill; a scorer that started with empty state would score
the second halves as sessions of their own (lower prediction points, fewer events).
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from streaming.predictions import predictions_path
from streaming.scorer import checkpoint_dir, final_row
from streaming.scorer_state import last_committed_batch
from streaming.session_features import normalise, split_sessions
from streaming.session_store import COLLECTION, connect
from tests.integration.dbt_support import synthetic_events
from tests.integration.test_scorer_helpers import payloads, register_models, wait_for
from tests.support.kafka_helpers import create_topic, send_raw
from tests.support.processes import kill9, start_module, terminate

pytestmark = pytest.mark.e2e


def test_a_session_split_by_a_kill9_is_scored_with_its_events_from_before_the_restart(
    spark, cfg, kafka, mongo, mlflow_uri, tmp_path, monkeypatch
) -> None:
    topic = f"scorer-rebuild-{int(time.time())}"
    create_topic(kafka, topic, partitions=2)
    register_models(mlflow_uri, synthetic_events(n_users=30, days=1, seed=1), seed=0)
    events = synthetic_events(n_users=40, days=1, seed=21, start="2019-11-12")
    events = events.drop_duplicates(subset=list(events.columns[:9])).reset_index(drop=True)
    sessions = split_sessions([normalise(e) for e in events.to_dict("records")])
    position = {e["event_id"]: (sid, i) for sid, evs in sessions.items() for i, e in enumerate(evs)}

    def in_first_half(rec: dict) -> bool:
        sid, i = position[normalise(rec)["event_id"]]
        return i < len(sessions[sid]) // 2

    first = events.apply(lambda row: in_first_half(row.to_dict()), axis=1)
    before, after = events[first], events[~first]
    split = {sid: evs for sid, evs in sessions.items() if len(evs) >= 2}  # sessions with events on both sides of the kill
    assert len(split) >= 20

    for key, value in {"SCORER_TRIGGER_SECONDS": "1", "SCORER_STARTING_OFFSETS": "earliest"}.items():
        monkeypatch.setenv(key, value)
    log_path = tmp_path / "scorer.log"
    checkpoint = checkpoint_dir(cfg, topic)
    path = str(predictions_path(cfg))
    proc = start_module("streaming.scorer", ["--topic", topic], log_path)
    try:

        def committed(n: int) -> bool:
            last = last_committed_batch(checkpoint)
            return last is not None and sum(last.end_offsets[topic].values()) == n

        sent = send_raw(kafka, topic, payloads(before))
        wait_for(lambda: committed(sent), 240, "the first halves committed")  # nothing to replay: only a rebuild brings them back
        kill9(proc)
        restarted = pd.Timestamp.utcnow().tz_localize(None)
        sent += send_raw(kafka, topic, payloads(after))
        proc = start_module("streaming.scorer", ["--topic", topic], log_path)
        wait_for(lambda: committed(sent), 300, "the second halves committed", every=2)
        p = spark.read.format("delta").load(path).toPandas()
        last = p[p.session_id.isin(split) & (p.processing_time >= restarted)].groupby("session_id").prediction_point.max()
        expected = {sid: len(evs) for sid, evs in split.items()}
        # Not len(evs) - len(evs) // 2: the first halves count. A session that bought before the kill writes no row after it.
        ends = {sid: final_row(evs) for sid, evs in split.items()}
        after_kill = {sid: end[0] for sid, end in ends.items() if end is not None and end[0] > len(split[sid]) // 2}
        assert after_kill and {sid: int(last.get(sid, 0)) for sid in after_kill} == after_kill
        coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]
        wait_for(
            lambda: {d["_id"]: d["n_events"] for d in coll.find({"_id": {"$in": list(split)}})} == expected,
            90,
            "session documents counting the events from both sides of the kill",
        )
    finally:
        terminate(proc)
    restored = re.search(r"state: restored (\d+) events", log_path.read_text())
    assert restored and int(restored.group(1)) == len(before)
