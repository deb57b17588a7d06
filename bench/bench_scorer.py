"""End-to-end scorer latency: produce -> prediction row, at fixed event rates, warm or from a cold start.

For each rate, a fresh topic gets events at that rate (paced in 100 ms ticks), while
``python -m streaming.scorer`` (its own process, its own Spark) scores them. Latency per
prediction row is ``processing_time - kafka_timestamp`` of the newest event of the session
in the batch (the ``latency_ms`` column), i.e. from the producer's send to the prediction.

By default the scorer reads the topic from the start and the producer begins once the
scorer says it runs, for ``--seconds``. With ``--cold-start`` the producer already sends
when a new scorer (fresh checkpoint at ``latest``) is launched, and goes on until
``--seconds`` after the scorer is ready: every start of the scorer (a deploy, a crash
restart) looks like that.

Reported: p50/p95/p99 over the run, for the rows of events produced in the first 60 s
(the warm-up) and after (the steady state), the last third's p95 (growing latency means
falling behind), the scorer's start-up time, whether every session got its last
prediction within 30 s of the end, and the load average before and after (the figures
move with whatever else the machine runs).

Usage: ``python -m bench.bench_scorer [--rates 500,2000] [--seconds 150] [--trigger-seconds 1] [--cold-start]``

It runs in a lakehouse folder of its own (a temporary ``LAKEHOUSE_DIR``, removed at the
end): the embedded services it starts there, the small demo champions it registers and
the predictions it writes never touch your lakehouse. Stop your own services first (the
bench's take the same ports).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from lakehouse import config, services
from streaming import scorer_process
from streaming.predictions import latency_windows, predictions_path
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


class _Producer(threading.Thread):
    """Sends messages at a fixed rate in 100 ms ticks until they run out or :meth:`finish` is called."""

    def __init__(self, topic: str, msgs: list[tuple[bytes, bytes]], rate: int, bootstrap: str) -> None:
        super().__init__(name="bench-producer", daemon=True)
        self.topic, self.msgs, self.rate, self.bootstrap = topic, msgs, rate, bootstrap
        self.per_tick = max(1, rate // 10)
        self.sent, self.started_at, self.achieved = 0, 0.0, 0.0
        self._finish = threading.Event()

    def finish(self) -> None:
        self._finish.set()

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks=1, linger_ms=5, **config.load().kafka_client_options)
        t0 = time.monotonic()
        self.started_at = time.time()
        for i in range(0, len(self.msgs), self.per_tick):
            if self._finish.is_set():
                break
            for k, v in self.msgs[i : i + self.per_tick]:
                producer.send(self.topic, key=k, value=v)
            self.sent = min(len(self.msgs), i + self.per_tick)
            time.sleep(max(0.0, t0 + (i // self.per_tick + 1) * 0.1 - time.monotonic()))
        producer.flush()
        producer.close()
        self.achieved = self.sent / (time.monotonic() - t0)


def _valid_indexes(spark, msgs: list[tuple[bytes, bytes]]) -> set[int]:
    """Positions of the messages the ingest's validation accepts (``streaming.validate.validate_json``)."""
    from pyspark.sql import functions as F

    from streaming.validate import validate_json

    frame = spark.createDataFrame([(i, v) for i, (_, v) in enumerate(msgs)], "i long, value binary")
    return {r.i for r in validate_json(frame).filter(F.col("reason").isNull()).select("i").collect()}


COLD_START_ALLOWANCE = 240  # seconds a cold start may take before the scorer logs that it runs
COLD_START_EVENTS_SECONDS = 120  # events are made for this long a start (a slower one sends what there is, and says so)


def _ready_time(log_path: Path) -> pd.Timestamp:
    """When the scorer logged that its query runs (its log's local time, as naive UTC like ``kafka_timestamp``)."""
    for line in log_path.read_text(errors="replace").splitlines():
        if scorer_process.READY_LINE in line:
            local = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
            return pd.Timestamp(local, unit="s")
    raise RuntimeError(f"no ready line in {log_path}")


_BATCH_LINE = re.compile(r"batch \d+: (\d+) events.* (\d+\.\d+)s \((.*)\)$")


def stage_seconds(log_path: Path) -> dict[str, float]:
    """Mean seconds per batch in each stage the scorer logs (read, state, score, delta, outbox), over batches with events.

    Where a batch's time goes is what to work on when latency grows; the figures are the
    scorer's own log lines (``Scorer.handle``), so the bench and production read the same clock.
    """
    laps: dict[str, list[float]] = {}
    sizes: list[int] = []
    for line in log_path.read_text(errors="replace").splitlines():
        m = _BATCH_LINE.search(line)
        if not m or int(m.group(1)) == 0:
            continue
        sizes.append(int(m.group(1)))
        laps.setdefault("total", []).append(float(m.group(2)))
        for name, sec in re.findall(r"(\w+) (\d+\.\d+)s", m.group(3)):
            laps.setdefault(name, []).append(float(sec))
    out = {f"batch_{k}_s": round(float(np.mean(v)), 3) for k, v in laps.items()}
    return {"batches": len(sizes), "batch_events_mean": round(float(np.mean(sizes))) if sizes else 0, **out}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_rate(cfg: config.Config, rate: int, seconds: int, trigger: float, seed: int, cold_start: bool = False, lead: float = 5.0) -> dict:
    """Score ``rate`` events/s for ``seconds`` s; with ``cold_start`` the producer sends ``lead`` s before the scorer is launched.

    Cold start: a new scorer (fresh checkpoint, ``SCORER_STARTING_OFFSETS`` latest, as a
    new deployment) starts while events flow; its windows are counted from its ready line,
    and only sessions that began after it are waited for. Otherwise the scorer reads the
    topic from the start and the producer begins once it is ready.
    """
    from pyspark.sql import SparkSession

    from lakehouse.spark import get_spark
    from tests.integration.test_scorer_helpers import payloads
    from tests.support.kafka_helpers import create_topic

    topic = f"bench-scorer-{'cold-' if cold_start else ''}{rate}-{int(time.time())}"
    create_topic(cfg.kafka_bootstrap, topic, partitions=2)
    # a cold start sends from `lead` s before the launch until `seconds` after the ready line: room for a slow start
    events = _events(rate * (seconds + int(lead) + COLD_START_EVENTS_SECONDS if cold_start else seconds), seed)
    msgs = payloads(events)
    per_tick = max(1, rate // 10)
    spark: SparkSession = get_spark("bench-scorer-reader", catalog=False, cfg=cfg)
    valid = _valid_indexes(spark, msgs)  # the scorer types events with the ingest's validation and skips the others
    records = events.to_dict("records")
    normalised = [normalise({**records[i], "_i": i, "_tick": i // per_tick}) for i in sorted(valid)]
    # a database of its own: the generator's session ids repeat from run to run, and
    # documents left by an earlier run would turn the mirror's inserts into replacements
    database = topic.replace("-", "_")
    offsets = "latest" if cold_start else "earliest"
    env = {"SCORER_TRIGGER_SECONDS": str(trigger), "SCORER_STARTING_OFFSETS": offsets, "MONGO_DB": database}
    log_path = Path(cfg.lakehouse_dir) / f"bench-scorer-{'cold-' if cold_start else ''}{rate}.log"
    path = str(predictions_path(cfg))
    load_before = _load()
    producer = _Producer(topic, msgs, rate, cfg.kafka_bootstrap)
    if cold_start:
        producer.start()
        time.sleep(lead)
    launched = time.time()
    proc = scorer_process.launch(topic, log_path, env)
    try:
        scorer_process.wait_until_running(proc, log_path, timeout=COLD_START_ALLOWANCE)  # JVM up, models loaded, warmed up
        ready = _ready_time(log_path)
        if cold_start:
            time.sleep(max(0.0, (ready + pd.Timedelta(seconds=seconds) - pd.Timestamp(time.time(), unit="s")).total_seconds()))
            producer.finish()
        else:
            producer.start()
        producer.join()
        ended = time.monotonic()
        began = pd.Timestamp(producer.started_at, unit="s")
        since = ready + pd.Timedelta(seconds=2) if cold_start else began
        first_tick = (since - began).total_seconds() * 10
        sessions = split_sessions([e for e in normalised if e["_i"] < producer.sent])
        # caught up: each session's last row is written (a cold start waits only for the sessions it saw from their start)
        ends = {sid: final_row(evs) for sid, evs in sessions.items() if min(e["_tick"] for e in evs) >= first_tick}
        caught_up = False
        while time.monotonic() - ended < 60:
            p = spark.read.format("delta").load(path).filter(f"processing_time >= '{ready}'").toPandas()
            p = p[p.session_id.isin(sessions)]
            last = p.groupby("session_id").prediction_point.max()
            if all(end is None or (s in last and last[s] >= end[0]) for s, end in ends.items()):
                caught_up = time.monotonic() - ended <= 30
                break
            time.sleep(2)
    finally:
        producer.finish()
        scorer_process.stop(proc)  # a scorer far behind is killed after the grace period: the figures still stand
        backlog = len(SessionMirror.from_config(cfg, topic).pending())
        connect(cfg.mongo_uri).drop_database(database)
    tail = p.sort_values("processing_time").tail(max(1, len(p) // 3))["latency_ms"].dropna().to_numpy() / 1000
    return {
        "mode": "cold-start" if cold_start else "warm",
        "rate_target": rate,
        "rate_achieved": round(producer.achieved, 1),
        "seconds": seconds,
        "trigger_seconds": trigger,
        "events": producer.sent,
        "sessions": len(sessions),
        "prediction_rows": len(p),
        "scorer_start_s": round((ready - pd.Timestamp(launched, unit="s")).total_seconds(), 1),
        **{f"{window}_{k}": v for window, figures in latency_windows(p, since, 60).items() for k, v in figures.items()},
        "last_third_p95_s": round(float(np.percentile(tail, 95)), 3) if len(tail) else None,
        # None: no session began after `since` (a cold start slower than the events made for it), nothing to judge
        "caught_up_within_30s": caught_up if ends else None,
        "sessions_waited_for": len(ends),
        "mongo_batches_behind_at_stop": backlog,
        **stage_seconds(log_path),
        "load_avg_before": load_before,
        "load_avg_after": _load(),
    }


def main(
    rates: str = typer.Option("500,2000", help="Comma-separated event rates (events/s)."),
    seconds: int = typer.Option(150, help="How long each rate is sustained."),
    trigger_seconds: float = typer.Option(None, help="Scorer micro-batch trigger interval (default: SCORER_TRIGGER_SECONDS)."),
    cold_start: bool = typer.Option(False, "--cold-start", help="Launch the scorer while the producer already sends."),
    lead_seconds: float = typer.Option(5.0, help="With --cold-start: seconds the producer sends before the scorer is launched."),
    seed: int = typer.Option(3),
    keep: bool = typer.Option(False, "--keep", help="Keep the bench's lakehouse (with the scorer's logs) after a run that succeeded."),
) -> None:
    """Measure produce-to-prediction latency (p50/p95/p99) of the streaming scorer at fixed rates."""
    lake = Path(tempfile.mkdtemp(prefix="bench-scorer-"))
    os.environ["LAKEHOUSE_DIR"] = str(lake)  # the scorer and producer processes inherit it, and every config.load() here reads it
    cfg = config.load()
    embedded = [svc for name in ("kafka", "mongo", "mlflow") if (svc := services.all_services(cfg).get(name)) is not None]
    measured = False
    try:
        for svc in embedded:
            svc.start()
        _measure(cfg, rates, seconds, trigger_seconds, cold_start, lead_seconds, seed)
        measured = True
    finally:
        for svc in reversed(embedded):
            svc.stop()
        if measured and not keep:
            shutil.rmtree(lake, ignore_errors=True)
        else:
            print(f"the bench's lakehouse, with the scorer's logs, is kept: {lake}", flush=True)


def _measure(
    cfg: config.Config, rates: str, seconds: int, trigger_seconds: float | None, cold_start: bool, lead_seconds: float, seed: int
) -> None:
    trigger = float(cfg["SCORER_TRIGGER_SECONDS"] if trigger_seconds is None else trigger_seconds)
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(cfg.mlflow_uri).get_model_version_by_alias("purchase_intent", "champion")
    except Exception:
        from tests.integration.dbt_support import synthetic_events
        from tests.integration.test_scorer_helpers import register_models

        register_models(cfg.mlflow_uri, synthetic_events(n_users=60, days=2, seed=1))
    results = []
    for rate in rates.split(","):
        results.append(run_rate(cfg, int(rate), seconds, trigger, seed, cold_start=cold_start, lead=lead_seconds))
        print(json.dumps(results[-1]), flush=True)  # as each rate ends: a long sweep shows its figures early
    sustained = [r["rate_target"] for r in results if r["caught_up_within_30s"]]
    print(f"highest sustained rate among those tested (trigger {trigger:g} s): {max(sustained) if sustained else 'none'} events/s")


if __name__ == "__main__":
    typer.run(main)
