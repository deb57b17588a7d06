"""The streaming scorer against the real broker, Spark, FerretDB and MLflow.

One scorer query runs for the module; the tests follow one story: events produced
to Kafka become prediction rows in Delta and session documents in MongoDB; a new
champion is picked up without a restart; a MongoDB outage delays the mirror but
loses nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from lakehouse import services
from streaming import scorer as scorer_mod
from streaming.predictions import predictions_path
from streaming.session_features import features_for_events, normalise, split_sessions
from streaming.session_store import COLLECTION, SessionMirror, connect
from tests.integration.dbt_support import synthetic_events
from tests.integration.test_scorer_helpers import payloads, register_models, wait_for
from tests.support.kafka_helpers import create_topic, send_raw

pytestmark = pytest.mark.integration


def _events(seed: int, start: str, n_users: int = 25) -> pd.DataFrame:
    ev = synthetic_events(n_users=n_users, days=1, seed=seed, start=start)
    ev["user_session"] = ev["user_session"].map(lambda s: None if pd.isna(s) else f"{s}-{seed}")
    return ev


@pytest.fixture(scope="module")
def live(spark, cfg, kafka, mongo, mlflow_uri, tmp_path_factory):
    """A running scorer on a fresh topic with champion models v1; yields a small namespace."""
    topic = f"scorer-it-{tmp_path_factory.mktemp('t').name[-6:]}"
    create_topic(kafka, topic, partitions=2)
    train_events = _events(1, "2019-11-01", n_users=40)
    versions = register_models(mlflow_uri, train_events, seed=0)
    models = scorer_mod.ChampionModels(mlflow_uri, refresh_seconds=1.0)
    mirror = SessionMirror.from_config(cfg, topic)
    mirror.flush_interval = 1.0
    query, sc = scorer_mod.start(spark, cfg, topic=topic, trigger_seconds=1, starting_offsets="earliest", models=models, mirror=mirror)
    coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]
    ns = type("Live", (), {})()
    ns.topic, ns.query, ns.scorer, ns.coll, ns.versions, ns.mirror = topic, query, sc, coll, versions, mirror
    ns.path = str(predictions_path(cfg))
    yield ns
    query.stop()
    mirror.stop_background_flush()


def _predictions(spark, path: str) -> pd.DataFrame:
    return spark.read.format("delta").load(path).toPandas()


def test_events_become_prediction_rows_and_session_documents(live, spark, kafka) -> None:
    ev = _events(2, "2019-11-05")
    send_raw(kafka, live.topic, payloads(ev))
    expected = split_sessions([normalise(e) for e in ev.to_dict("records")])

    def done():
        p = _predictions(spark, live.path)
        p = p[p.session_id.isin(expected)]
        last = p.groupby("session_id").prediction_point.max()
        ok = len(last) == len(expected) and all(last[s] == len(evs) for s, evs in expected.items())
        return p if ok else None

    preds = wait_for(done, 300, "a prediction at the last event of every session")
    assert preds["purchase_probability"].between(0, 1).all()
    assert preds["top_1"].notna().all() and (preds["top_1"] != preds["top_2"]).all()
    assert (preds["purchase_model_version"] == live.versions["purchase"]).all()
    assert (preds["latency_ms"] > 0).all()
    # every (session, point) scored once: no duplicate rows
    assert not preds.duplicated(["session_id", "prediction_point"]).any()

    docs = wait_for(lambda: (d := list(live.coll.find({"_id": {"$in": list(expected)}}))) and len(d) == len(expected) and d, 60, "docs")
    by_id = {d["_id"]: d for d in docs}
    for sid, evs in expected.items():
        d = by_id[sid]
        assert d["n_events"] == len(evs) and d["user_id"] == evs[0]["user_id"]
        assert d["counts"]["view"] == sum(e["event_type"] == "view" for e in evs)
        assert d["latest_prediction"]["point"] == len(evs)
        points = [h["point"] for h in d["predictions"]]
        assert points == sorted(set(points))  # history keyed by point: no duplicates
    # the live features equal the batch computation at the last point
    f = features_for_events(ev.to_dict("records"), live.scorer.history.get())
    assert len(f) == sum(len(v) for v in expected.values())


def test_a_new_champion_is_picked_up_without_restart(live, spark, kafka, mlflow_uri) -> None:
    v2 = register_models(mlflow_uri, _events(1, "2019-11-01", n_users=40), seed=3)
    assert v2["purchase"] != live.versions["purchase"]
    ev = _events(4, "2019-11-06", n_users=8)
    send_raw(kafka, live.topic, payloads(ev))
    sessions = set(split_sessions([normalise(e) for e in ev.to_dict("records")]))

    def done():
        p = _predictions(spark, live.path)
        p = p[p.session_id.isin(sessions)]
        return p if p.session_id.nunique() == len(sessions) else None

    p = wait_for(done, 240, "predictions of the new sessions")
    assert set(p["purchase_model_version"]) == {v2["purchase"]}
    assert set(p["category_model_version"]) == {v2["category"]}


def test_mongodb_outage_delays_the_mirror_but_loses_nothing(live, spark, kafka, cfg) -> None:
    mongo_svc = services.all_services(cfg)["mongo"]
    ev = _events(5, "2019-11-07", n_users=10)
    sessions = split_sessions([normalise(e) for e in ev.to_dict("records")])
    mongo_svc.stop()
    try:
        send_raw(kafka, live.topic, payloads(ev))

        def in_delta():
            p = _predictions(spark, live.path)
            return p[p.session_id.isin(sessions)].session_id.nunique() == len(sessions)

        wait_for(in_delta, 240, "predictions in Delta while MongoDB is down")
        # the batch goes to the outbox just after its Delta commit; with MongoDB down it stays there
        wait_for(live.mirror.pending, 30, "the un-mirrored documents waiting in the outbox")
    finally:
        mongo_svc.start()
    docs = wait_for(
        lambda: (d := list(live.coll.find({"_id": {"$in": list(sessions)}}))) and len(d) == len(sessions) and d,
        90,
        "the mirror to catch up after MongoDB returns",
    )
    for d in docs:
        assert d["n_events"] == len(sessions[d["_id"]])
        assert d["latest_prediction"]["point"] == len(sessions[d["_id"]])
    wait_for(lambda: not live.mirror.pending(), 30, "the outbox to drain")
    assert timedelta(0) <= (docs[0]["last_event_time"] - docs[0]["start_time"])
