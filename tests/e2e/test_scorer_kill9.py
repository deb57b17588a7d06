"""Faults during live scoring: `kill -9` of the scorer three times and a FerretDB restart, in one run.

The scorer runs as its own process (``python -m streaming.scorer``) on the test
lakehouse and services. Events arrive in four parts; after each of the first three
the scorer is killed with SIGKILL (mid-batch, most likely) and restarted from its
checkpoint, and during the second FerretDB is stopped and started again. Afterwards
the Delta table holds exactly one row per (session, prediction point) scored, every
session is scored at its last event, and MongoDB has one up-to-date document per
session whose prediction history has no repeated point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from lakehouse import config, services
from streaming.predictions import predictions_path
from streaming.scorer import final_row
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


def test_three_kill9s_and_a_ferretdb_restart_leave_no_duplicate_and_no_lost_prediction(
    spark, cfg, kafka, mongo, mlflow_uri, tmp_path
) -> None:
    topic = f"scorer-kill9-{int(time.time())}"
    create_topic(kafka, topic, partitions=2)
    register_models(mlflow_uri, synthetic_events(n_users=30, days=1, seed=1), seed=0)
    events = synthetic_events(n_users=120, days=1, seed=9, start="2019-11-10")
    events = events.drop_duplicates(subset=list(events.columns[:9]))  # exact duplicates rescore a point: keep the check sharp
    sessions = split_sessions([normalise(e) for e in events.to_dict("records")])
    msgs = payloads(events)
    path = str(predictions_path(cfg))
    mongo_svc = services.all_services(cfg)["mongo"]

    def rows() -> int:
        return spark.read.format("delta").load(path).count() if os.path.exists(path + "/_delta_log") else 0

    log = open(tmp_path / "scorer.log", "w")  # noqa: SIM115 - shared by the scorer processes, closed in finally
    proc = _spawn(topic, log)
    parts = [msgs[i * len(msgs) // 4 : (i + 1) * len(msgs) // 4] for i in range(4)]
    try:
        for kill in range(3):
            before = rows()
            send_raw(kafka, topic, parts[kill])
            wait_for(lambda before=before: rows() > before, 240, f"rows before kill {kill + 1}")
            if kill == 1:  # FerretDB goes away while the scorer keeps writing Delta: the outbox holds the documents
                mongo_svc.stop()
            time.sleep(1.5)  # most likely mid-batch
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            proc = _spawn(topic, log)
            if kill == 1:
                time.sleep(10)
                mongo_svc.start()
        send_raw(kafka, topic, parts[3])

        ends = {sid: final_row(evs) for sid, evs in sessions.items()}  # a score at its last event, or its conversion

        def complete():
            p = spark.read.format("delta").load(path).toPandas()
            last = p.groupby("session_id").prediction_point.max()
            ok = all(s in last and (end is None or last[s] == end[0]) for s, end in ends.items())
            return p if ok else None

        preds: pd.DataFrame = wait_for(complete, 300, "every session's last row written after the restarts", every=3)
        coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]

        def mirrored():  # the outbox drains once FerretDB is back: every document at the session's last event
            docs = list(coll.find({"_id": {"$in": list(sessions)}}))
            return docs if len(docs) == len(sessions) and all(d["n_events"] == len(sessions[d["_id"]]) for d in docs) else None

        docs = wait_for(mirrored, 120, "every session document up to date")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
        if mongo_svc.pid() is None:
            mongo_svc.start()
    ours = preds[preds.session_id.isin(sessions)]
    dup = ours.duplicated(["session_id", "prediction_point"], keep=False)
    assert not dup.any(), ours[dup].sort_values(["session_id", "prediction_point"]).head(10)
    for d in docs:
        points = [h["point"] for h in d["predictions"]]
        assert len(points) == len(set(points))
