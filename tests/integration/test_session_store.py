"""The session mirror's writes on the embedded FerretDB stay fast and never hang.

Two FerretDB 1.24 SQLite-backend bugs are patched at setup (``setup/ferretdb/*.patch``);
these tests fail on an unpatched server:

* lookups by ``_id`` must use the ``_id`` index (upstream scanned the collection for
  every update, upsert and delete, so the mirror slowed down as sessions piled up);
* one bulk write with more than 100 updates of existing documents must complete
  (upstream held a pooled connection per matched document and hung).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from streaming.session_store import FLUSH_FILES, SessionMirror, connect, ensure_indexes, upsert_documents

pytestmark = pytest.mark.integration


def _doc(i: int, point: int) -> dict:
    when = datetime(2019, 11, 1, 12, 0, point)
    entry = {
        "point": point,
        "event_time": when,
        "scored_at": when,
        "purchase_probability": 0.1 * point,
        "purchase_label": 0,
        "top3": ["electronics"],
        "purchase_model_version": "1",
        "category_model_version": "1",
        "source": "stream",
        "batch_id": point,
    }
    sid = f"sess-{i}"
    return {
        "_id": sid,
        "session_id": sid,
        "user_id": i,
        "last_event_time": when,
        "n_events": point,
        "latest_prediction": entry,
        "predictions": [entry],
        "history_cap": 20,
    }


@pytest.fixture()
def collection(mongo, request):
    client = connect(mongo)
    client.admin.command("ping")
    db = client["store_" + request.node.name[:40]]
    coll = db["sessions"]
    coll.drop()
    ensure_indexes(coll)
    yield coll
    client.drop_database(db.name)
    client.close()


def test_lookups_by_session_id_use_the_index(collection) -> None:
    collection.insert_many([_doc(i, 1) for i in range(50)])
    plan = collection.find({"_id": "sess-7"}).explain()
    if "ferretdbVersion" in plan.get("serverInfo", {}):  # the embedded server reports its SQLite plan
        assert any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]), plan["queryPlanner"]
    else:  # MongoDB: a point read by _id
        assert "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"])


def test_a_bulk_of_updates_to_existing_sessions_completes_and_merges_history(collection) -> None:
    n = 300  # well over the 100 pooled SQLite connections the unpatched server hung on
    assert upsert_documents(collection, [_doc(i, 1) for i in range(n)]) == n
    started = datetime.now()
    assert upsert_documents(collection, [_doc(i, 2) for i in range(n)]) == n
    seconds = (datetime.now() - started).total_seconds()  # a hang ends in the client's 60 s socket timeout
    assert seconds < 30, f"updating {n} existing session documents took {seconds:.1f} s"
    doc = collection.find_one({"_id": "sess-123"})
    assert [e["point"] for e in doc["predictions"]] == [1, 2]
    assert doc["latest_prediction"]["point"] == 2 and doc["n_events"] == 2
    assert collection.count_documents({}) == n


def test_a_backlog_of_outbox_files_drains_in_groups_into_the_documents_one_at_a_time_would_give(collection, mongo, tmp_path) -> None:
    outbox = tmp_path / "outbox"
    down = SessionMirror("mongodb://127.0.0.1:1", collection.database.name, outbox, flush_interval=60)
    down.start_background_flush()  # its retries fail (nothing listens there) and back off: the files pile up
    batches = FLUSH_FILES * 2 + 3  # more than one group, the last one partial
    for b in range(1, batches + 1):  # session 0 is scored in every batch, session b only in batch b
        down.publish(b, [_doc(0, b), _doc(b, 1)])
    down.stop_background_flush()
    assert len(down.pending()) == batches
    up = SessionMirror(mongo, collection.database.name, outbox)
    assert up.flush() is True
    assert up.pending() == []
    busy = collection.find_one({"_id": "sess-0"})
    assert [e["point"] for e in busy["predictions"]] == list(range(batches - 19, batches + 1))  # history_cap 20, newest kept
    assert busy["n_events"] == batches and busy["latest_prediction"]["point"] == batches
    assert collection.count_documents({}) == batches + 1


def test_the_mirror_merges_history_from_its_memory_and_after_a_restart_from_the_stored_document(collection, mongo, tmp_path) -> None:
    def doc(session: int, point: int, new: bool) -> dict:
        return {**_doc(session, point), "new_session": new}

    first = SessionMirror(mongo, collection.database.name, tmp_path / "outbox")
    assert first.publish(1, [doc(5, 1, new=True)]) and first.publish(2, [doc(5, 2, new=False)])  # 2: from its memory
    assert first.publish(3, [doc(6, 1, new=True)])
    restarted = SessionMirror(mongo, collection.database.name, tmp_path / "outbox")  # after kill -9, batch 3 replays
    assert restarted.publish(3, [doc(6, 1, new=True), doc(7, 1, new=True)])  # sess-6 exists: inserting it fails, it is replaced
    assert restarted.publish(4, [doc(5, 3, new=False), doc(6, 2, new=False)])  # nothing in memory: the stored histories
    assert [e["point"] for e in collection.find_one({"_id": "sess-5"})["predictions"]] == [1, 2, 3]
    assert [e["point"] for e in collection.find_one({"_id": "sess-6"})["predictions"]] == [1, 2]
    assert collection.count_documents({}) == 3
    assert "new_session" not in collection.find_one({"_id": "sess-7"})
