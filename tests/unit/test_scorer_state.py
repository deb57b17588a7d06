"""The scorer's in-driver session state: merge, dedupe, touched sessions, eviction, rebuild, checkpoint reading."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from streaming.scorer_state import SessionStateStore, initial_offsets, last_committed_batch, rebuild_ranges
from streaming.session_features import normalise, split_sessions

T0 = 1_800_000_000.0  # processing time (epoch seconds) of the first batch in these tests


def frame(*rows: tuple[str, str, int, str | None, int, float]) -> pd.DataFrame:
    """typed_events-shaped rows from (event_time, event_type, product, session, user, kafka epoch seconds)."""
    recs = []
    for t, typ, product, session, user, kts in rows:
        recs.append(
            {
                "state_key": session if session is not None else f"nosession-{user}",
                "event_time": pd.Timestamp(t),
                "event_type": typ,
                "product_id": product,
                "category_id": 100 + product,
                "category_code": "electronics.phone" if product % 2 else None,
                "brand": "acme" if product % 3 else None,
                "price": 10.0 * product,
                "user_id": user,
                "user_session": session,
                "kafka_timestamp": pd.Timestamp(kts, unit="s"),
            }
        )
    return pd.DataFrame(recs)


def expected_sessions(df: pd.DataFrame) -> dict[str, list[dict]]:
    cols = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session"]
    return split_sessions([normalise(r) for r in df[cols].to_dict("records")])


def test_a_session_split_over_batches_is_scored_with_all_its_events_as_normalise_sees_them() -> None:
    store = SessionStateStore(timeout_seconds=1800)
    first = frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0), ("2019-11-03 10:01:00", "cart", 1, "s1", 7, T0))
    second = frame(("2019-11-03 10:02:00", "view", 2, "s1", 7, T0 + 5), ("2019-11-03 10:02:30", "view", 3, "s2", 8, T0 + 6))
    store.merge(first, T0)
    sessions, kts = store.touched_sessions(store.merge(second, T0 + 7))
    assert sessions == expected_sessions(pd.concat([first, second]))  # same dicts as the old json + normalise path
    assert [len(sessions["s1"]), len(sessions["s2"])] == [3, 1]
    assert kts == {"s1": pd.Timestamp(T0 + 5, unit="s"), "s2": pd.Timestamp(T0 + 6, unit="s")}
    assert (len(store), store.n_events) == (2, 4)


def test_a_re_read_event_counts_once_but_touches_its_session_again() -> None:
    store = SessionStateStore(timeout_seconds=1800)
    rows = frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0), ("2019-11-03 10:01:00", "view", 2, "s1", 7, T0))
    store.merge(rows, T0)
    again = frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0 + 3))  # same nine fields: same event id
    sessions, kts = store.touched_sessions(store.merge(again, T0 + 3))
    assert len(sessions["s1"]) == 2 and store.n_events == 2
    assert kts["s1"] == pd.Timestamp(T0 + 3, unit="s")


def test_only_the_dbt_sessions_holding_a_touched_event_are_returned() -> None:
    store = SessionStateStore(timeout_seconds=3600)
    # one user without session ids: two dbt sessions (40 minutes apart), one state key
    store.merge(frame(("2019-11-03 10:00:00", "view", 1, None, 9, T0), ("2019-11-03 10:05:00", "view", 2, None, 9, T0)), T0)
    sessions, _ = store.touched_sessions(store.merge(frame(("2019-11-03 10:45:00", "cart", 2, None, 9, T0 + 10)), T0 + 10))
    assert list(sessions) == ["timeout-9-20191103104500"]
    assert [e["event_type"] for e in sessions["timeout-9-20191103104500"]] == ["cart"]
    assert store.n_events == 3


def test_a_key_idle_past_the_timeout_is_evicted_and_a_new_event_starts_it_afresh() -> None:
    store = SessionStateStore(timeout_seconds=60)
    store.merge(frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0)), T0)
    store.merge(frame(("2019-11-03 10:00:30", "view", 1, "s2", 8, T0 + 30)), T0 + 30)
    assert store.evict(T0 + 60) == 0  # idle exactly the timeout: kept
    assert store.evict(T0 + 61) == 1 and "s1" not in store and "s2" in store
    assert store.n_events == 1
    # an event for an idle key that no sweep removed yet also starts a new state
    sessions, _ = store.touched_sessions(store.merge(frame(("2019-11-03 10:05:00", "view", 2, "s2", 8, T0 + 200)), T0 + 200))
    assert len(sessions["s2"]) == 1 and store.n_events == 1


def test_a_touch_keeps_a_key_alive() -> None:
    store = SessionStateStore(timeout_seconds=60)
    store.merge(frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0)), T0)
    store.merge(frame(("2019-11-03 10:00:10", "view", 1, "s2", 8, T0)), T0)
    store.merge(frame(("2019-11-03 10:00:50", "view", 2, "s1", 7, T0 + 50)), T0 + 50)
    assert store.evict(T0 + 100) == 1 and "s1" in store and "s2" not in store


def test_restore_rebuilds_the_state_without_touching_anything() -> None:
    timeout = 600
    batches = [
        (T0, frame(("2019-11-03 10:00:00", "view", 1, "old", 5, T0 - 1), ("2019-11-03 10:00:00", "view", 1, "s1", 7, T0 - 1))),
        (T0 + 700, frame(("2019-11-03 10:10:00", "cart", 1, "s1", 7, T0 + 699))),
        (T0 + 900, frame(("2019-11-03 10:12:00", "view", 2, "s1", 7, T0 + 899), ("2019-11-03 10:12:00", "view", 3, "s3", 8, T0 + 899))),
    ]
    live = SessionStateStore(timeout)
    for now, rows in batches:
        live.evict(now)
        live.merge(rows, now)
    rebuilt = SessionStateStore(timeout)
    # read back in another order (two partitions), each event at its Kafka time; evict as of the last batch
    everything = pd.concat([rows for _, rows in reversed(batches)], ignore_index=True)
    assert rebuilt.restore(everything, until=T0 + 900) == 5
    assert (len(rebuilt), rebuilt.n_events) == (len(live), live.n_events) == (2, 3)
    for key in ("s1", "s3"):
        assert rebuilt.events(key) == live.events(key)
    assert [e["event_type"] for e in rebuilt.events("s1")] == ["cart", "view"]  # idle 700 s > 600 s: s1 started afresh
    assert "old" not in rebuilt


def test_restore_of_nothing_is_an_empty_store() -> None:
    store = SessionStateStore(1800)
    assert store.restore(frame(), until=T0) == 0
    assert len(store) == 0


def test_checkpoint_logs_give_the_last_committed_batch_and_the_first_offsets(tmp_path) -> None:
    assert last_committed_batch(tmp_path) is None  # fresh checkpoint
    (tmp_path / "offsets").mkdir()
    (tmp_path / "commits").mkdir()
    for n, (ts, offs) in enumerate([(1000, {"0": 5, "1": 7}), (2000, {"0": 9, "1": 7}), (3000, {"0": 12, "1": 8})]):
        meta = {"batchWatermarkMs": 0, "batchTimestampMs": ts, "conf": {}}
        (tmp_path / "offsets" / str(n)).write_text(f"v1\n{json.dumps(meta)}\n{json.dumps({'events': offs})}")
    for n in (0, 1):  # batch 2 started but never committed
        (tmp_path / "commits" / str(n)).write_text('v1\n{"nextBatchWatermarkMs":0}')
    (tmp_path / "commits" / ".1.crc").write_bytes(b"crc")
    last = last_committed_batch(tmp_path)
    assert (last.batch_id, last.timestamp_ms, last.end_offsets) == (1, 2000, {"events": {0: 9, 1: 7}})
    assert initial_offsets(tmp_path) == {}
    (tmp_path / "sources" / "0").mkdir(parents=True)
    (tmp_path / "sources" / "0" / "0").write_bytes(b'\x00v1\n{"events":{"0":3,"1":-2}}')
    assert initial_offsets(tmp_path) == {"events": {0: 3}}


def test_rebuild_ranges_start_at_the_window_but_not_before_the_query_and_skip_empty_partitions() -> None:
    ends = {0: 100, 1: 50, 2: 10, 3: 40}
    since = {0: 60, 1: None, 2: 4, 3: 10}  # partition 1: no event that new
    assert rebuild_ranges(ends, since, lower={2: 10, 3: 20}) == {0: (60, 100), 3: (20, 40)}


def test_events_are_kept_as_tuples_with_shared_strings() -> None:
    store = SessionStateStore(1800)
    store.merge(frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0), ("2019-11-03 10:00:01", "view", 3, "s1", 7, T0)), T0)
    kept = list(store._keys["s1"].events.values())
    assert all(type(e) is tuple for e in kept)
    assert kept[0][4] is kept[1][4] and kept[0][8] is kept[1][8]  # category code and session id are not copied per event
    assert type(kept[0][0]) is datetime


def test_a_session_is_new_only_in_the_batch_that_brought_all_of_its_events() -> None:
    store = SessionStateStore(timeout_seconds=1800)
    first = frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0), ("2019-11-03 10:01:00", "cart", 1, "s1", 7, T0))
    sessions, _ = store.touched_sessions(store.merge(first, T0))
    assert store.new_sessions(sessions) == {"s1"}
    second = frame(("2019-11-03 10:02:00", "view", 2, "s1", 7, T0 + 5), ("2019-11-03 10:02:30", "view", 3, "s2", 8, T0 + 6))
    sessions, _ = store.touched_sessions(store.merge(second, T0 + 7))
    assert store.new_sessions(sessions) == {"s2"}
    resent = frame(("2019-11-03 10:00:00", "view", 1, "s1", 7, T0 + 9), ("2019-11-03 10:02:30", "view", 3, "s2", 8, T0 + 9))
    sessions, _ = store.touched_sessions(store.merge(resent, T0 + 9))  # re-sent events: scored again, but not new
    assert set(sessions) == {"s1", "s2"} and store.new_sessions(sessions) == set()
