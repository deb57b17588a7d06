"""The streaming scorer against the real broker, Spark, FerretDB and MLflow.

One scorer query runs for the module; the tests follow one story: events produced
to Kafka become prediction rows in Delta and session documents in MongoDB (a session
that buys ends with one converted row and a document saying so); a new champion is
picked up without a restart; a MongoDB outage delays the mirror but loses nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from lakehouse import services
from ml.feature_contract import prediction_points
from streaming import scorer as scorer_mod
from streaming.predictions import predictions_path
from streaming.session_features import features_for_events, first_purchase, last_point, normalise, split_sessions
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


def _last_row(evs: list[dict]) -> tuple[int, bool]:
    """(prediction_point, converted) of a session's last prediction row once all its events are in.

    The synthetic sessions are shorter than K, so each one ends scored at its last event,
    or, if it bought, converted at its first purchase.
    """
    last = scorer_mod.final_row(evs)
    assert last is not None, "a synthetic session longer than K"
    return last


def _up_to_date(doc: dict, evs: list[dict]) -> bool:
    """The document says what the session's events say: converted at the first purchase, or scored at the last event."""
    point, converted = _last_row(evs)
    latest = doc.get("latest_prediction") or {}
    return doc.get("converted") is converted and latest.get("point") == point and (converted or doc["n_events"] == len(evs))


def test_events_become_prediction_rows_and_session_documents(live, spark, kafka) -> None:
    ev = _events(2, "2019-11-05")
    send_raw(kafka, live.topic, payloads(ev))
    expected = split_sessions([normalise(e) for e in ev.to_dict("records")])

    def done():
        p = _predictions(spark, live.path)
        p = p[p.session_id.isin(expected)]
        last = p.sort_values("prediction_point").groupby("session_id")[["prediction_point", "converted"]].last()
        ok = len(last) == len(expected) and all(tuple(last.loc[s]) == _last_row(evs) for s, evs in expected.items())
        return p if ok else None

    preds = wait_for(done, 300, "a prediction at the last event, or the conversion, of every session")
    converted = preds["converted"].astype(bool)
    assert converted.any() and (~converted).any(), "the synthetic sessions include buyers and browsers"
    scored = preds[~converted]
    assert scored["purchase_probability"].between(0, 1).all()
    assert scored["top_1"].notna().all() and (scored["top_1"] != scored["top_2"]).all()
    assert (scored["purchase_model_version"] == live.versions["purchase"]).all()
    assert preds.loc[converted, "purchase_probability"].isna().all()
    assert not preds.loc[converted, "session_id"].duplicated().any(), "a conversion is recorded once"
    for sid, point in preds.loc[~converted, ["session_id", "prediction_point"]].itertuples(index=False):
        assert point <= last_point(expected[sid], prediction_points()), "no probability at or after the first purchase"
    assert (preds["latency_ms"] > 0).all()
    # every (session, point) scored once: no duplicate rows
    assert not preds.duplicated(["session_id", "prediction_point"]).any()

    def mirrored():
        docs = {d["_id"]: d for d in live.coll.find({"_id": {"$in": list(expected)}})}
        return docs if len(docs) == len(expected) and all(_up_to_date(docs[s], evs) for s, evs in expected.items()) else None

    by_id = wait_for(mirrored, 60, "docs")
    for sid, evs in expected.items():
        d = by_id[sid]
        assert d["user_id"] == evs[0]["user_id"] and d["points_cap"] == prediction_points()
        if d["converted"]:
            assert d["scoring_stopped"] == "converted" and d["latest_prediction"]["purchase_probability"] is None
            assert d["first_purchase_time"] == evs[first_purchase(evs) - 1]["event_time"]
        else:
            assert d["scoring_stopped"] is None and d["first_purchase_time"] is None
            assert d["counts"]["view"] == sum(e["event_type"] == "view" for e in evs)
        points = [h["point"] for h in d["predictions"]]
        assert points == sorted(set(points))  # history keyed by point: no duplicates
    # the live features equal the batch computation at the last point
    f = features_for_events(ev.to_dict("records"), live.scorer.history.get())
    assert len(f) == sum(last_point(v, prediction_points()) for v in expected.values())


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
    p = p[~p["converted"].astype(bool)]  # a conversion is recorded without a model
    assert set(p["purchase_model_version"]) == {v2["purchase"]}
    assert set(p["category_model_version"]) == {v2["category"]}
    status = json.loads(scorer_mod.status_path(live.scorer.cfg, live.topic).read_text())  # what an operator reads
    assert status["models"] == {"purchase": v2["purchase"], "category": v2["category"]} and status["problems"] == {}


def test_a_session_past_the_points_cap_keeps_its_last_prediction(live, spark, kafka) -> None:
    k = prediction_points()
    ev = _events(6, "2019-11-06", n_users=1).head(1)
    ev = pd.concat([ev] * (k + 2), ignore_index=True)
    ev["event_type"] = "view"
    ev["user_session"] = "past-the-cap"
    ev["event_time"] = [pd.Timestamp("2019-11-06 12:00:00") + timedelta(seconds=10 * i) for i in range(k + 2)]
    send_raw(kafka, live.topic, payloads(ev.head(k)))

    def rows():
        p = _predictions(spark, live.path)
        return p[p.session_id == "past-the-cap"]

    wait_for(lambda: (p := rows()).prediction_point.max() == k and p, 240, "the prediction at point K")
    send_raw(kafka, live.topic, payloads(ev.tail(2)))
    doc = wait_for(
        lambda: (d := live.coll.find_one({"_id": "past-the-cap"})) and d["n_events"] == k + 2 and d, 120, "the document past the cap"
    )
    assert doc["scoring_stopped"] == "points_cap" and doc["points_cap"] == k and not doc["converted"]
    assert doc["latest_prediction"]["point"] == k and doc["latest_prediction"]["purchase_probability"] is not None
    assert rows().prediction_point.max() == k, "no prediction past K"


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
        lambda: (
            (d := list(live.coll.find({"_id": {"$in": list(sessions)}})))
            and len(d) == len(sessions)
            and all(_up_to_date(doc, sessions[doc["_id"]]) for doc in d)
            and d
        ),
        90,
        "the mirror to catch up after MongoDB returns",
    )
    wait_for(lambda: not live.mirror.pending(), 30, "the outbox to drain")
    assert timedelta(0) <= (docs[0]["last_event_time"] - docs[0]["start_time"])


def test_a_lost_checkpoint_is_refused_instead_of_skipping_its_batches_as_already_written(live, spark, cfg, kafka) -> None:
    """Runs last: it stops the module's query. Batch ids restart at 0 with a new checkpoint; Delta would drop them as replays."""
    import shutil

    from streaming.bronze import CheckpointMismatch

    ev = _events(7, "2019-11-07", n_users=5)
    send_raw(kafka, live.topic, payloads(ev))
    sessions = set(split_sessions([normalise(e) for e in ev.to_dict("records")]))
    wait_for(lambda: _predictions(spark, live.path).session_id.isin(sessions).any() or None, 300, "a row of the new events")
    live.query.stop()
    shutil.rmtree(scorer_mod.checkpoint_dir(cfg, live.topic))
    with pytest.raises(CheckpointMismatch, match="lost or recreated"):
        scorer_mod.start(spark, cfg, topic=live.topic, trigger_seconds=1, starting_offsets="earliest", models=live.scorer.models)
