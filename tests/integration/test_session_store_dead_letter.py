"""The MongoDB outbox sets aside a document the server keeps refusing, and the rest flows on (#17, 5c).

Against the real embedded FerretDB, which refuses a key that starts with ``$`` or holds
a dot, and drops the connection on a NaN. A server that does not answer at all is a
connection failure instead: everything waits in the outbox, nothing is set aside.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime

import bson
import pytest

from streaming.session_store import SessionMirror, connect

pytestmark = pytest.mark.integration


def _doc(sid: str, point: int, new: bool, **extra: object) -> dict:
    when = datetime(2019, 11, 1, 12, 0, point)
    entry = {"point": point, "event_time": when, "purchase_probability": 0.1 * point, "batch_id": point}
    return {
        "_id": sid,
        "session_id": sid,
        "user_id": 1,
        "n_events": point,
        "latest_prediction": entry,
        "predictions": [entry],
        "history_cap": 20,
        "new_session": new,
        **extra,
    }


@pytest.fixture()
def mirror(mongo, tmp_path, request):
    database = "dead_" + request.node.name[:40]
    m = SessionMirror(mongo, database, tmp_path / "outbox")
    yield m
    client = connect(mongo)
    client.drop_database(database)
    client.close()


def test_a_refused_document_is_set_aside_with_its_error_and_the_others_land(mirror) -> None:
    assert mirror.publish(1, [_doc(f"s{i}", 1, new=True) for i in range(5)])
    # Three batches in the outbox at once, as when the mirror fell behind the scorer.
    batches = {
        2: [_doc("s0", 2, new=False), _doc("bad-dollar", 1, new=True, counts={"$view": 1}), _doc("s5", 1, new=True)],
        3: [_doc("s1", 2, new=False, counts={"view.count": 2}), _doc("s6", 1, new=True)],
        4: [_doc("bad-nan", 1, new=True, score=float("nan")), _doc("s2", 2, new=False), _doc("s7", 1, new=True)],
    }
    for batch, docs in batches.items():
        (mirror.outbox / f"{batch:012d}.bson").write_bytes(b"".join(bson.encode(d) for d in docs))

    assert mirror.flush() is True
    assert mirror.pending() == []

    stored = {d["_id"]: d for d in mirror.collection().find()}
    assert set(stored) == {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
    assert [e["point"] for e in stored["s0"]["predictions"]] == [1, 2]  # later batches of good sessions landed
    assert [e["point"] for e in stored["s2"]["predictions"]] == [1, 2]
    assert [e["point"] for e in stored["s1"]["predictions"]] == [1]  # its refused update is set aside, not half-applied

    dead = {json.loads(p.read_text())["session_id"]: json.loads(p.read_text()) for p in mirror.dead_letters()}
    assert set(dead) == {"bad-dollar", "s1", "bad-nan"}
    assert "$view" in dead["bad-dollar"]["error"]
    assert dead["bad-dollar"]["outbox_file"] == "000000000002.bson"
    assert dead["bad-dollar"]["document"]["counts"] == {"$view": 1}
    assert dead["s1"]["document"]["counts"] == {"view.count": 2}
    assert "view.count" in dead["s1"]["error"]  # the server's message, also for a replace of an existing document
    assert dead["bad-nan"]["error"]  # the server drops the connection: pymongo's AutoReconnect, while a ping succeeds

    # The mirror goes on: a later batch lands at once, and nothing more is set aside.
    assert mirror.publish(5, [_doc("s3", 2, new=False)])
    assert len(mirror.dead_letters()) == 3
    assert [e["point"] for e in mirror.collection().find_one({"_id": "s3"})["predictions"]] == [1, 2]


def test_a_server_that_does_not_answer_keeps_everything_in_the_outbox(tmp_path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = SessionMirror(f"mongodb://127.0.0.1:{port}/", "nobody", tmp_path / "outbox")
    assert mirror.publish(1, [_doc("s0", 1, new=True)]) is False
    assert mirror.publish(2, [_doc("s0", 2, new=False)]) is False
    assert [p.name for p in mirror.pending()] == ["000000000001.bson", "000000000002.bson"]
    assert mirror.dead_letters() == []
