"""End-to-end scorer latency: produce -> prediction row, at fixed event rates.

For each rate, a fresh topic gets events at that rate for ``--seconds`` (paced in
100 ms ticks), while ``python -m streaming.scorer`` (its own process, its own Spark)
scores them. Latency per prediction row is ``processing_time - kafka_timestamp`` of
the newest event of the session in the batch (the ``latency_ms`` column), i.e. from
the producer's send to the prediction. Reported: p50/p95/p99 over the run, the same
for the last third (growing latency means falling behind), events scored per second
and whether every session got its last prediction within 30 s of the end.

Usage: ``python -m bench.bench_scorer [--rates 500,2000] [--seconds 150] [--trigger-seconds 1]``
(starts the embedded services if needed; registers small demo champions if none).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from lakehouse import config, services
from streaming import scorer_process
from streaming.predictions import predictions_path
from streaming.scorer import final_row
from streaming.session_features import normalise, split_sessions
from streaming.session_store import SessionMirror, connect


def _events(n: int, seed: int) -> pd.DataFrame:
    from tests.integration.dbt_support import synthetic_events

    parts, total, i = [], 0, 0
    while total < n:
        ev = synthetic_events(n_users=2000, days=1, seed=seed + i, start="2019-11-15")
        ev["user_session"] = ev["user_session"].map(lambda s, i=i: None if pd.isna(s) else f"{s}-{seed}-{i}")
        ev["user_id"] = ev["user_id"] + 10_000 * i
        parts.append(ev)
        total += len(ev)
        i += 1
    return pd.concat(parts, ignore_index=True).head(n)


def _produce(topic: str, msgs: list[tuple[bytes, bytes]], rate: int, bootstrap: str) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    per_tick = max(1, rate // 10)
    t0 = time.monotonic()
    for i in range(0, len(msgs), per_tick):
        for k, v in msgs[i : i + per_tick]:
            producer.send(topic, key=k, value=v)
        due = t0 + (i // per_tick + 1) * 0.1
        time.sleep(max(0.0, due - time.monotonic()))
    producer.flush()
    producer.close()
    return len(msgs) / (time.monotonic() - t0)


def run_rate(cfg: config.Config, rate: int, seconds: int, trigger: float, seed: int) -> dict:
    from pyspark.sql import SparkSession

    from lakehouse.spark import get_spark
    from tests.integration.test_scorer_helpers import payloads
    from tests.support.kafka_helpers import create_topic

    topic = f"bench-scorer-{rate}-{int(time.time())}"
    create_topic(cfg.kafka_bootstrap, topic, partitions=2)
    events = _events(rate * seconds, seed)
    msgs = payloads(events)
    sessions = split_sessions([normalise(e) for e in events.to_dict("records")])
    ends = {sid: final_row(evs) for sid, evs in sessions.items()}  # caught up: each session's last row is written
    # a database of its own: the generator's session ids repeat from run to run, and
    # documents left by an earlier run would turn the mirror's inserts into replacements
    database = topic.replace("-", "_")
    env = {"SCORER_TRIGGER_SECONDS": str(trigger), "SCORER_STARTING_OFFSETS": "earliest", "MONGO_DB": database}
    log_path = Path(cfg.lakehouse_dir) / f"bench-scorer-{rate}.log"
    proc = scorer_process.launch(topic, log_path, env)
    spark: SparkSession = get_spark("bench-scorer-reader", catalog=False, cfg=cfg)
    path = str(predictions_path(cfg))
    try:
        scorer_process.wait_until_running(proc, log_path)  # JVM up, models loaded: then the clock starts
        started = pd.Timestamp.utcnow().tz_localize(None)
        achieved = _produce(topic, msgs, rate, cfg.kafka_bootstrap)
        ended = time.monotonic()
        caught_up = False
        while time.monotonic() - ended < 60:
            p = spark.read.format("delta").load(path).filter(f"processing_time >= '{started}'").toPandas()
            p = p[p.session_id.isin(sessions)]
            last = p.groupby("session_id").prediction_point.max()
            if len(last) == len(sessions) and all(end is None or last[s] >= end[0] for s, end in ends.items()):
                caught_up = time.monotonic() - ended <= 30
                break
            time.sleep(2)
    finally:
        scorer_process.stop(proc)  # a scorer far behind is killed after the grace period: the figures still stand
        backlog = len(SessionMirror.from_config(cfg, topic).pending())
        connect(cfg.mongo_uri).drop_database(database)
    lat = p["latency_ms"].dropna().to_numpy() / 1000
    tail = p.sort_values("processing_time").tail(max(1, len(p) // 3))["latency_ms"].dropna().to_numpy() / 1000
    return {
        "rate_target": rate,
        "rate_achieved": round(achieved, 1),
        "seconds": seconds,
        "trigger_seconds": trigger,
        "events": len(msgs),
        "sessions": len(sessions),
        "prediction_rows": len(p),
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p95_s": round(float(np.percentile(lat, 95)), 3),
        "p99_s": round(float(np.percentile(lat, 99)), 3),
        "last_third_p95_s": round(float(np.percentile(tail, 95)), 3),
        "caught_up_within_30s": caught_up,
        "mongo_batches_behind_at_stop": backlog,
    }


def main(
    rates: str = typer.Option("500,2000", help="Comma-separated event rates (events/s)."),
    seconds: int = typer.Option(150, help="How long each rate is sustained."),
    trigger_seconds: float = typer.Option(1.0, help="Scorer micro-batch trigger interval."),
    seed: int = typer.Option(3),
) -> None:
    """Measure produce-to-prediction latency (p50/p95/p99) of the streaming scorer at fixed rates."""
    cfg = config.load()
    for name in ("kafka", "mongo", "mlflow"):
        svc = services.all_services(cfg).get(name)
        if svc is not None:
            svc.start()
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(cfg.mlflow_uri).get_model_version_by_alias("purchase_intent", "champion")
    except Exception:
        from tests.integration.dbt_support import synthetic_events
        from tests.integration.test_scorer_helpers import register_models

        register_models(cfg.mlflow_uri, synthetic_events(n_users=60, days=2, seed=1))
    results = []
    for rate in rates.split(","):
        results.append(run_rate(cfg, int(rate), seconds, trigger_seconds, seed))
        print(json.dumps(results[-1]), flush=True)  # as each rate ends: a long sweep shows its figures early
    sustained = [r["rate_target"] for r in results if r["caught_up_within_30s"]]
    print(f"highest sustained rate among those tested (trigger {trigger_seconds:g} s): {max(sustained) if sustained else 'none'} events/s")


if __name__ == "__main__":
    typer.run(main)
