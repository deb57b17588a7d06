"""Erasure helpers that need no JVM: the register watch, the event filter, CSV rewriting."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from lakehouse import config
from streaming import erasure


def test_drop_erased_keeps_other_users_and_activity_after_the_erasure() -> None:
    at = datetime(2019, 11, 2, 12, 0, 0)
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 1],
            "event_time": pd.to_datetime(
                ["2019-11-01 10:00", "2019-11-02 12:00", "2019-11-01 10:00", "2019-11-02 12:00:01"], format="ISO8601"
            ),
        }
    )
    kept = erasure.drop_erased(frame, {1: at})
    assert kept.index.tolist() == [2, 3]  # the erasure instant itself is still erased
    assert erasure.drop_erased(frame, {}) is frame


def test_watch_rereads_the_register_only_after_a_commit(tmp_path) -> None:
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    watch = erasure.ErasureWatch(cfg)
    assert watch.get() == {}
    erasure.record_erasure(cfg, 7, datetime(2020, 1, 1), retain_hours=1)
    assert watch.get() == {7: datetime(2020, 1, 1)}
    erasure.record_erasure(cfg, 8, datetime(2020, 1, 2), retain_hours=1)
    erasure.record_erasure(cfg, 7, datetime(2020, 1, 3), retain_hours=1)
    assert watch.get() == {7: datetime(2020, 1, 3), 8: datetime(2020, 1, 2)}  # the latest erasure of a user counts
    assert [r["user_id"] for r in erasure.erasures(cfg)] == [7, 8, 7]


def test_csv_rows_of_the_user_go_and_files_without_users_stay_untouched(tmp_path) -> None:
    rows = tmp_path / "predictions.csv"
    rows.write_text("session_id,user_id,p\na,10,0.5\nb,11,0.25\nc,10,0.75\n")
    other = tmp_path / "metrics.csv"
    other.write_text("scorer,auc\nmodel,10\n")
    receipt = erasure.erase_files(tmp_path, "files", 10)
    assert (receipt.found, receipt.removed) == (2, 2)
    assert rows.read_text().splitlines() == ["session_id,user_id,p", "b,11,0.25"]
    assert other.read_text() == "scorer,auc\nmodel,10\n"
    assert erasure.erase_files(tmp_path / "missing", "files", 10).found == 0


def test_the_erased_reason_is_one_of_the_documented_quarantine_reasons() -> None:
    from streaming.events import REASONS

    assert erasure.ERASED_REASON in REASONS


def test_the_scorer_state_forgets_erased_users_events_up_to_the_erasure() -> None:
    from streaming.scorer_state import SessionStateStore

    store = SessionStateStore(timeout_seconds=3600)

    def event(user: int, hour: int, session: str) -> tuple:
        return (datetime(2019, 11, 1, hour), "view", 1, 2, None, None, 1.0, user, session)

    store.add("a", b"1", event(1, 9, "a"), now=0)
    store.add("a", b"2", event(1, 13, "a"), now=0)  # after the erasure: new activity stays
    store.add("b", b"3", event(1, 10, "b"), now=0)
    store.add("c", b"4", event(2, 9, "c"), now=0)
    assert store.forget({1: datetime(2019, 11, 1, 12)}) == 2
    assert len(store) == 2 and store.n_events == 2 and "b" not in store
    assert [e["user_id"] for e in store.events("a")] == [1] and store.events("a")[0]["event_time"].hour == 13


def test_outbox_documents_of_an_erased_user_are_not_written(tmp_path) -> None:
    from streaming.session_store import SessionMirror

    class Watch:
        def get(self) -> dict:
            return {1: datetime(2019, 11, 1, 12)}

    mirror = SessionMirror("mongodb://unused", "db", tmp_path, erasures=Watch())
    docs = [
        {"_id": "old", "user_id": 1, "last_event_time": datetime(2019, 11, 1, 11)},
        {"_id": "new", "user_id": 1, "last_event_time": datetime(2019, 11, 1, 13)},
        {"_id": "other", "user_id": 2, "last_event_time": datetime(2019, 11, 1, 11)},
    ]
    assert [d["_id"] for d in mirror._writable(docs)] == ["new", "other"]


def test_dead_letters_of_the_user_are_deleted_and_pending_documents_counted(tmp_path) -> None:
    import bson
    from bson import json_util

    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    box = tmp_path / "_outbox" / "scorer-events"
    (box / "dead-letter").mkdir(parents=True)
    (box / "000000000001.bson").write_bytes(b"".join(bson.encode({"_id": s, "user_id": u}) for s, u in (("a", 5), ("b", 6))))
    for name, user in (("x", 5), ("y", 6)):
        (box / "dead-letter" / f"{name}.json").write_text(json_util.dumps({"document": {"_id": name, "user_id": user}}))
    receipt = erasure.erase_outbox(cfg, 5)
    assert (receipt.found, receipt.removed) == (2, 1) and "1 pending" in receipt.remains
    assert sorted(p.name for p in (box / "dead-letter").iterdir()) == ["y.json"]
