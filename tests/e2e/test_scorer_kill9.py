"""`kill -9` of the scorer process mid-stream, then a restart: no duplicated prediction rows, no lost session.

The scorer runs as its own process (``python -m streaming.scorer``) on the test
lakehouse and services; it is killed with SIGKILL while events are still arriving,
restarted from its checkpoint, and the Delta table must then hold exactly one row
per (session, prediction point) scored, with every session scored at its last event,
and MongoDB one document per session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from lakehouse import config
from streaming.scorer import predictions_path
from streaming.session_features import normalise, split_sessions
from streaming.session_store import COLLECTION, connect
from tests.integration.dbt_support import synthetic_events
from tests.integration.test_scorer_helpers import payloads, register_models, wait_for
from tests.support.kafka_helpers import create_topic, send_raw

pytestmark = pytest.mark.e2e


def _spawn(topic: str, log) -> subprocess.Popen:
    env = {**os.environ, "SCORER_TRIGGER_SECONDS": "1", "SCORER_STARTING_OFFSETS": "earliest", "SCORER_MODEL_REFRESH_SECONDS": "5"}
    cmd = [sys.executable, "-m", "streaming.scorer", "--topic", topic]
    return subprocess.Popen(cmd, cwd=config.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_kill9_then_restart_leaves_no_duplicate_prediction_rows(spark, cfg, kafka, mongo, mlflow_uri, tmp_path) -> None:
    topic = f"scorer-kill9-{int(time.time())}"
    create_topic(kafka, topic, partitions=2)
    register_models(mlflow_uri, synthetic_events(n_users=30, days=1, seed=1), seed=0)
    events = synthetic_events(n_users=120, days=1, seed=9, start="2019-11-10")
    events = events.drop_duplicates(subset=list(events.columns[:9]))  # exact duplicates rescore a point: keep the check sharp
    sessions = split_sessions([normalise(e) for e in events.to_dict("records")])
    msgs = payloads(events)
    path = str(predictions_path(cfg))
    log = open(tmp_path / "scorer.log", "w")  # noqa: SIM115 - shared by two processes, closed in finally
    proc = _spawn(topic, log)
    try:
        third = len(msgs) // 3
        send_raw(kafka, topic, msgs[:third])
        wait_for(lambda: os.path.exists(path + "/_delta_log") and spark.read.format("delta").load(path).count() > 0, 240, "first rows")
        send_raw(kafka, topic, msgs[third : 2 * third])
        time.sleep(2.5)  # mid-batch, most likely
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        send_raw(kafka, topic, msgs[2 * third :])
        proc = _spawn(topic, log)

        def complete():
            p = spark.read.format("delta").load(path).toPandas()
            last = p.groupby("session_id").prediction_point.max()
            ok = all(s in last and last[s] == len(evs) for s, evs in sessions.items())
            return p if ok else None

        preds: pd.DataFrame = wait_for(complete, 300, "every session scored at its last event after the restart", every=3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
    dup = preds.duplicated(["session_id", "prediction_point"], keep=False)
    assert not dup.any(), preds[dup].sort_values(["session_id", "prediction_point"]).head(10)
    coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]
    docs = wait_for(lambda: coll.count_documents({"_id": {"$in": list(sessions)}}) == len(sessions), 60, "all documents")
    assert docs
    for d in coll.find({"_id": {"$in": list(sessions)}}):
        points = [h["point"] for h in d["predictions"]]
        assert len(points) == len(set(points)) and d["n_events"] == len(sessions[d["_id"]])
