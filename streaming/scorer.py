"""Streaming scorer: Kafka events -> per-session state -> features -> champion models -> Delta + MongoDB.

Spark Structured Streaming reads the topic and types events with the ingest's own
validation (invalid ones are the ingest's business and are not scored); a plain
``foreachBatch`` brings each micro-batch's events into the driver, which keeps every
open session's events in memory (``streaming.scorer_state``: deduplicated by event id,
a key idle ``SCORER_STATE_TIMEOUT_MINUTES`` of processing time is dropped). On start,
before the stream, that state is rebuilt from Kafka up to the last committed batch
(``restore_state``), so ``kill -9`` loses none of it. For every session the batch
touched, the driver applies the feature marts' prediction-point rule
(``macros/session_events.sql``; K from ``ml.feature_contract.prediction_points``): a
session with no purchase and at most K events is scored at its latest event (the dbt
marts' ``f_*`` values, ``streaming.session_features``, with the models holding the
``champion`` alias, re-checked every ``SCORER_MODEL_REFRESH_SECONDS``); one that has
bought is recorded once as converted, without a probability; one past K keeps its last
prediction and its document says scoring stopped at the cap. Then it

* appends the predictions to the Delta ``predictions`` table (``streaming.predictions``,
  through delta-rs) as an idempotent write keyed by the batch id (Delta's ``txn``
  action, as ``streaming.bronze``): a batch replayed after ``kill -9`` adds nothing;
* mirrors one document per session to MongoDB through an outbox
  (``streaming.session_store``): upserts by session id, history entries keyed by the
  prediction point, so replays do not duplicate and a MongoDB outage only delays the
  mirror.

Before its query starts the scorer warms up (:func:`warm_up`: history, models, MongoDB,
the Kafka read path), so the first batches cost what later ones do. It refuses to start
when the predictions table holds a later batch of it than its checkpoint knows
(:func:`require_checkpoint_covers_predictions`), and a failed query is started again
from its checkpoint, state rebuilt, by the streams' supervisor (``streaming.supervisor``).

Usage: ``python -m streaming.scorer [--topic events] [--trigger-seconds 1] [--starting-offsets latest] [--max-restarts 100]``
"""

from __future__ import annotations

import faulthandler
import gc
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import typer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import config
from lakehouse.spark import LONG_RUNNING_CONF, get_spark
from ml.baselines import LIVE_BASELINE_VERSION, live_last_viewed
from ml.feature_contract import CATEGORIES, TASK_SPECS, prediction_points
from ml.registry import CHAMPION
from streaming import supervisor
from streaming.bronze import require_checkpoint_covers
from streaming.erasure import ErasureWatch, drop_erased, erased_users
from streaming.predictions import COLUMN_NAMES, PredictionsWriter, ensure_predictions_table, predictions_path
from streaming.producer import ensure_topic
from streaming.scorer_process import READY_LINE
from streaming.scorer_state import SessionStateStore, frame_events, initial_offsets, last_committed_batch, rebuild_ranges
from streaming.session_features import PriorHistory, build_history, event_digest_column, first_purchase, normalise, point_features
from streaming.session_store import SessionMirror, session_document
from streaming.validate import validate_json

log = logging.getLogger("streaming.scorer")

GC_YOUNG_THRESHOLD = 100_000  # allocations between young collections in the scorer (Python's default: 700)


def status_path(cfg: config.Config, topic: str) -> Path:
    """The scorer's status file: its last batch, the model versions it scores with, and their problems."""
    return cfg.lakehouse_dir / "_status" / f"scorer-{topic}.json"


def write_status(path: Path, status: dict) -> None:
    """Replace the status file in one rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"updated": datetime.now(UTC).isoformat(timespec="seconds"), **status}, indent=2, default=str))
    tmp.replace(path)


def checkpoint_dir(cfg: config.Config, topic: str) -> Path:
    return cfg.checkpoints_dir / f"scorer-{topic}"


def app_id(topic: str) -> str:
    """The Delta transaction app id of the scorer's appends: stable across restarts, so a replayed batch is skipped."""
    return f"scorer:{topic}"


# ---------------------------------------------------------------- models


@dataclass
class LoadedModel:
    version: str
    model: object


class ChampionModels:
    """The two champions, re-resolved from the registry at most every ``refresh_seconds``.

    Reloading only when the alias points at a new version keeps the check cheap; a
    registry outage keeps the models already loaded (scoring goes on). So does a new
    champion that cannot be loaded, or that fails on a batch: the scorer keeps (or
    goes back to) the version it had, logs why, and :meth:`status` reports it, so one
    bad registration cannot take live scoring down.
    """

    def __init__(self, tracking_uri: str, refresh_seconds: float, pinned: dict[str, str] | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.refresh_seconds = refresh_seconds
        self.pinned = pinned or {}
        self.models: dict[str, LoadedModel | None] = {"purchase": None, "category": None}
        self.previous: dict[str, LoadedModel | None] = {"purchase": None, "category": None}
        self.problems: dict[str, str] = {}  # task -> what went wrong with its newest champion
        self.refused: dict[str, str] = {}  # task -> a version that failed; not tried again
        self._checked = 0.0

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked < self.refresh_seconds:
            return
        import mlflow
        from mlflow.tracking import MlflowClient

        self._checked = time.monotonic()
        try:
            mlflow.set_tracking_uri(self.tracking_uri)
            client = MlflowClient(self.tracking_uri)
        except Exception as exc:  # a malformed or unreachable registry: keep what we have
            log.warning("model registry %s not usable (%s); keeping the models loaded", self.tracking_uri, exc)
            return
        for task in ("purchase", "category"):
            name = TASK_SPECS[task].registered_model
            try:
                version = self.pinned.get(task) or str(client.get_model_version_by_alias(name, CHAMPION).version)
            except Exception as exc:  # no champion yet, or registry down: keep what we have
                if self.models[task] is None:
                    log.warning("no %s model %s@%s yet (%s); its predictions stay null", task, name, CHAMPION, type(exc).__name__)
                continue
            current = self.models[task]
            if (current is not None and current.version == version) or self.refused.get(task) == version:
                continue
            try:
                model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
            except Exception as exc:
                self._refuse(task, version, f"{name} v{version} could not be loaded ({type(exc).__name__}: {exc})")
                continue
            self.previous[task], self.models[task] = current, LoadedModel(version, model)
            self.problems.pop(task, None)
            log.info("scoring %s with %s version %s", task, name, version)

    def _refuse(self, task: str, version: str, why: str) -> None:
        kept = self.models[task]
        self.refused[task] = version
        self.problems[task] = why + (f"; still scoring with v{kept.version}" if kept else "; no model to fall back on")
        log.error("%s", self.problems[task])

    def _predict(self, task: str, features: pd.DataFrame, read) -> tuple[LoadedModel | None, dict | None]:
        """The model's output as columns (``read``), falling back to the previous version when the current one fails.

        Reading the output is part of the attempt: a model that returns the wrong shape
        (a column missing, a row count that differs) is a failed model, not a failed batch.
        """
        loaded = self.models[task]
        if loaded is None or not len(features):
            return loaded, None
        try:
            return loaded, read(loaded.model.predict(features), len(features))
        except Exception as exc:
            self.models[task], self.previous[task] = self.previous[task], None
            self._refuse(task, loaded.version, f"{TASK_SPECS[task].registered_model} v{loaded.version} failed on a batch ({exc})")
            return self._predict(task, features, read)

    def status(self) -> dict[str, object]:
        """Versions in use and problems, for the scorer's status and log."""
        return {
            "models": {t: (m.version if m else None) for t, m in self.models.items()},
            "problems": dict(self.problems),
        }

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """Probabilities, label, top-3 and model versions for each feature row (nulls without a model).

        One ``predict`` call per model for the whole batch.
        """
        out = pd.DataFrame(index=features.index)
        p, res = self._predict("purchase", features, _purchase_columns)
        for col in ("purchase_probability", "purchase_label"):
            out[col] = res[col] if res is not None else None
        c, res = self._predict("category", features, _category_columns)
        category_version = c.version if c else None
        if res is None and len(features):  # no category champion (none beat the baseline): serve the baseline, labelled
            res = _category_columns(live_last_viewed(features, list(CATEGORIES)), len(features))
            category_version = LIVE_BASELINE_VERSION
        for col in ("category_probabilities", "top_1", "top_2", "top_3"):
            out[col] = res[col] if res is not None else None
        out["purchase_model_version"] = p.version if p else None
        out["category_model_version"] = category_version
        return out


def _require_rows(values, n: int) -> None:
    if len(values) != n:
        raise ValueError(f"the model returned {len(values)} rows for {n} feature rows")


def _purchase_columns(res: pd.DataFrame, n: int) -> dict:
    """The purchase model's ``probability`` and ``label`` columns (pyfunc output of ``ml``), checked for shape."""
    _require_rows(res, n)
    return {
        "purchase_probability": res["probability"].to_numpy(dtype=float),
        "purchase_label": res["label"].to_numpy().astype("int64"),
    }


def _category_columns(res: pd.DataFrame, n: int) -> dict:
    """The category model's ``p_<category>`` probabilities as one map per row, and its ``top_1..3``."""
    _require_rows(res, n)
    probs = res[[col for col in res.columns if col.startswith("p_")]]
    if probs.shape[1] == 0:
        raise ValueError("the model returned no p_<category> column")
    names = [col[2:] for col in probs.columns]
    out: dict = {"category_probabilities": [dict(zip(names, row, strict=True)) for row in probs.to_numpy(dtype=float).tolist()]}
    for i in (1, 2, 3):
        out[f"top_{i}"] = res[f"top_{i}"].to_numpy() if f"top_{i}" in res else None
    return out


class HistoryCache:
    """User/product/category history from bronze, reloaded every ``refresh_seconds`` in the background.

    The first load (:meth:`load`) runs before the stream starts. Later reloads are a
    Spark job over bronze; run inside a batch they stalled it and every event queued
    behind it, so a thread runs them and the batches keep the history they have until
    the new one is ready (a stale history beats late predictions).
    """

    def __init__(self, spark: SparkSession, bronze: Path, refresh_seconds: float) -> None:
        self.spark, self.bronze, self.refresh_seconds = spark, bronze, refresh_seconds
        self.history = PriorHistory()
        self._loaded = -1e18
        self._reload: threading.Thread | None = None

    def load(self) -> PriorHistory:
        """Load now, in this thread."""
        try:
            self.history = build_history(self.spark, self.bronze)
        except Exception as exc:  # stale (or empty) history beats no predictions
            log.warning("history reload failed, keeping the previous one: %s", exc)
        self._loaded = time.monotonic()
        return self.history

    def get(self) -> PriorHistory:
        """The history loaded last; starts a background reload when it is older than ``refresh_seconds``."""
        stale = time.monotonic() - self._loaded >= self.refresh_seconds
        if stale and (self._reload is None or not self._reload.is_alive()):
            self._loaded = time.monotonic()  # one reload at a time, not one per batch while it runs
            self._reload = threading.Thread(target=self.load, name="scorer-history", daemon=True)
            self._reload.start()
        return self.history


# ---------------------------------------------------------------- scoring (pure pandas, shared with reprocess)


SCORE, CONVERTED, CAPPED = "score", "converted", "points_cap"
CONVERTED_BEFORE = "converted_before"  # recorded by an earlier batch: the document's counts only


def session_status(events: list[dict], cap: int) -> str:
    """Where the prediction-point rule leaves a session: converted (it has bought), points_cap (past K events) or score."""
    if first_purchase(events) is not None:
        return CONVERTED
    return CAPPED if len(events) > cap else SCORE


def session_outcome(events: list[dict], cap: int, added: set[bytes] | None) -> str:
    """What a batch writes for a session it touched: a score, the conversion, or a document without a prediction.

    A conversion is written once, by the batch that brings the first purchase (judged
    from the events the session had before the batch: those not in ``added``, every one
    when ``added`` is None); a batch replayed after a restart sees the same state and so
    decides the same. A session past the cap, or converted by an earlier batch, gets its
    document (counts, last events) updated on every touch, without a prediction: the
    MongoDB record of a session follows all its events.
    """
    status = session_status(events, cap)
    if status != CONVERTED:
        return status
    before = [] if added is None else [e for e in events if bytes.fromhex(e["event_id"]) not in added]
    return CONVERTED_BEFORE if first_purchase(before) is not None else CONVERTED


def final_row(events: list[dict], cap: int | None = None) -> tuple[int, bool] | None:
    """(prediction_point, converted) of the last row the scorer writes for a session once all ``events`` are in.

    For whoever waits on the predictions table: a session that bought ends with its
    conversion at its first purchase, one of at most K events with a score at its last
    event. None past K: its last score is at the last point a batch ended on, which
    depends on how its events were batched.
    """
    cap = prediction_points() if cap is None else cap
    status = session_status(events, cap)
    if status == CAPPED:
        return None
    return (first_purchase(events), True) if status == CONVERTED else (len(events), False)


def score_sessions(
    sessions: dict[str, list[dict]],
    history: PriorHistory,
    models: ChampionModels,
    *,
    kafka_ts: dict[str, pd.Timestamp | None],
    batch_id: int,
    source: str,
    history_cap: int,
    new_sessions: set[str] | frozenset[str] = frozenset(),
    added: set[bytes] | None = None,
    points_cap: int | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Prediction rows and MongoDB documents for the sessions a batch touched, by the marts' prediction-point rule.

    A session that has not bought and has at most ``points_cap`` events (default: the
    dbt var, so live points are the points the models were trained on) is scored at its
    latest event. One that has bought gets one row with ``converted`` true and no
    probability, dated by its first purchase, and one document update. One past the cap
    gets no row (it keeps its last prediction) and a document saying scoring stopped
    there (see :func:`session_outcome`).

    ``added``: ids (sha256 digests) of the events this batch added to the state; None
    (reprocess) treats every event as new. ``new_sessions``: those no earlier batch
    scored (their documents need no merge with a stored history).
    """
    cap = prediction_points() if points_cap is None else points_cap
    outcomes = {sid: session_outcome(evs, cap, added) for sid, evs in sessions.items()}
    to_score = [sid for sid, outcome in outcomes.items() if outcome == SCORE]
    features = pd.DataFrame([point_features(sessions[sid], len(sessions[sid]), history) for sid in to_score])
    scores = dict(zip(to_score, models.score(features).to_dict("records"), strict=True)) if to_score else {}
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    rows, docs = [], []
    for sid, outcome in outcomes.items():
        evs = sessions[sid]
        row = None  # past the cap, or converted earlier: the document only
        if outcome == SCORE:
            row = _prediction_row(sid, evs, len(evs), scores[sid], now, kafka_ts.get(sid), source, batch_id)
        elif outcome == CONVERTED:
            row = _prediction_row(sid, evs, first_purchase(evs), None, now, kafka_ts.get(sid), source, batch_id)
        if row is not None:
            rows.append(row)
        docs.append(session_document(sid, evs, row, history_cap, points_cap=cap, new=sid in new_sessions))
    return pd.DataFrame(rows, columns=COLUMN_NAMES), docs


def _prediction_row(
    sid: str,
    evs: list[dict],
    point: int,
    scored: dict | None,
    now: pd.Timestamp,
    kts: pd.Timestamp | None,
    source: str,
    batch_id: int,
) -> dict:
    """One row of the predictions table: the scores at ``point``, or (``scored`` None) the session converted at ``point``."""
    at = evs[point - 1]
    s = scored or {}
    probability, label = s.get("purchase_probability"), s.get("purchase_label")
    return {
        "session_id": sid,
        "user_id": int(evs[0]["user_id"]),
        "prediction_point": point,
        "event_time": pd.Timestamp(at["event_time"]),
        "event_date": at["event_time"].date(),
        "processing_time": now,
        "kafka_timestamp": kts,
        "latency_ms": (now - kts).total_seconds() * 1000.0 if kts is not None and not pd.isna(kts) else None,
        "purchase_probability": None if probability is None or pd.isna(probability) else float(probability),
        "purchase_label": None if label is None or pd.isna(label) else int(label),
        "top_1": s.get("top_1"),
        "top_2": s.get("top_2"),
        "top_3": s.get("top_3"),
        "category_probabilities": s.get("category_probabilities"),
        "purchase_model_version": s.get("purchase_model_version"),
        "category_model_version": s.get("category_model_version"),
        "source": source,
        "batch_id": int(batch_id),
        "converted": scored is None,
    }


# ---------------------------------------------------------------- the streaming query


def typed_events(raw: DataFrame) -> DataFrame:
    """Valid events with their Kafka timestamp and the state key (session, or user for null sessions)."""
    v = validate_json(raw.select("value", F.col("timestamp").alias("kafka_timestamp")))
    v = v.filter(F.col("reason").isNull())
    key = F.coalesce(F.col("user_session"), F.concat(F.lit("nosession-"), F.col("user_id").cast("string")))
    cols = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session"]
    return v.select(key.alias("state_key"), *cols, "kafka_timestamp", event_digest_column().alias("event_digest"))


def restore_state(spark: SparkSession, cfg: config.Config, topic: str, store: SessionStateStore) -> None:
    """Refill ``store`` with what the last committed batch left in it, read back from Kafka; nothing is scored.

    Reads, as one Spark batch job, the events produced from (the last committed batch's
    time - the state timeout) up to that batch's end offsets, never before the query's
    first offsets. Runs before the stream starts, so an uncommitted batch that Spark
    replays next sees the state it saw the first time. A fresh checkpoint leaves it empty.
    """
    from kafka import KafkaConsumer, TopicPartition

    cp = checkpoint_dir(cfg, topic)
    last = last_committed_batch(cp)
    if last is None or topic not in last.end_offsets:
        log.info("state: fresh checkpoint, starting empty")
        return
    started = time.monotonic()
    ends = last.end_offsets[topic]
    since_ms = last.timestamp_ms - int(store.timeout_seconds * 1000)
    consumer = KafkaConsumer(bootstrap_servers=cfg.kafka_bootstrap, **cfg.kafka_client_options)
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        found = consumer.offsets_for_times(dict.fromkeys(tps, max(since_ms, 0)))
        first = consumer.beginning_offsets(tps)  # what retention kept
    finally:
        consumer.close()
    since = {tp.partition: (None if found.get(tp) is None else max(found[tp].offset, first[tp])) for tp in tps}
    ranges = rebuild_ranges(ends, since, initial_offsets(cp).get(topic, {}))
    rows = 0
    if ranges:
        raw = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
            .options(**cfg.spark_kafka_options)
            .option("assign", json.dumps({topic: sorted(ranges)}))
            .option("startingOffsets", json.dumps({topic: {str(p): s for p, (s, _) in ranges.items()}}))
            .option("endingOffsets", json.dumps({topic: {str(p): e for p, (_, e) in ranges.items()}}))
            .option("failOnDataLoss", "false")
            .load()
        )
        rows = store.restore(drop_erased(typed_events(raw).toPandas(), erased_users(cfg)), until=last.timestamp_ms / 1000)
    log.info(
        "state: restored %d events of %d keys (%d Kafka events read back to batch %d) in %.1fs",
        store.n_events,
        len(store),
        rows,
        last.batch_id,
        time.monotonic() - started,
    )


@dataclass
class Scorer:
    """Everything the foreachBatch function needs, built once per process."""

    cfg: config.Config
    topic: str
    models: ChampionModels
    history: HistoryCache
    mirror: SessionMirror
    state: SessionStateStore
    predictions: PredictionsWriter
    erasures: ErasureWatch | None = None
    _forgotten: int = 0  # the register generation the state was last cleaned for

    @property
    def app_id(self) -> str:
        return app_id(self.topic)

    def without_erased(self, pdf: pd.DataFrame) -> pd.DataFrame:
        """The batch minus erased users' replayed events; the state forgets theirs when the register changes."""
        if self.erasures is None:
            return pdf
        erased = self.erasures.get()
        if self.erasures.generation != self._forgotten:
            if erased:
                log.info("erasure register changed: %d event(s) of erased users left the state", self.state.forget(erased))
            self._forgotten = self.erasures.generation
        return drop_erased(pdf, erased)

    def handle(self, batch: DataFrame, batch_id: int) -> None:
        """Merge a micro-batch into the state and score the sessions it touched; logs where the batch's time went."""
        clock = _StageClock()
        pdf = self.without_erased(batch.toPandas())
        clock.lap("read")
        now = time.time()  # processing time, the clock of the state timeout
        self.state.evict(now)
        sessions, kts = self.state.touched_sessions(self.state.merge(pdf, now))
        clock.lap("state")
        self.models.refresh()
        rows, docs = score_sessions(
            sessions,
            self.history.get(),
            self.models,
            kafka_ts=kts,
            batch_id=batch_id,
            source="stream",
            history_cap=int(self.cfg["PREDICTION_HISTORY_CAP"]),
            new_sessions=self.state.new_sessions(sessions),
            added=self.state.last_added,
        )
        clock.lap("score")
        wrote = False
        if len(rows):
            wrote = self.predictions.append(rows, self.app_id, batch_id)
        clock.lap("delta")
        self.mirror.publish(batch_id, docs)
        clock.lap("outbox")
        converted = int(rows["converted"].sum()) if len(rows) else 0
        pending = len(self.mirror.pending())
        log.info(
            "batch %d: %d events, %d sessions scored, %d converted, %d document-only (past the points cap or converted earlier), "
            "delta %s, mongo outbox %d batch(es) pending, state %d keys / %d events, %s",
            batch_id,
            len(pdf),
            len(rows) - converted,
            converted,
            len(docs) - len(rows),
            "written" if wrote else "skipped (replay or empty)",
            pending,
            len(self.state),
            self.state.n_events,
            clock,
        )
        write_status(
            status_path(self.cfg, self.topic),
            {
                "batch_id": batch_id,
                "events": len(pdf),
                "rows": len(rows),
                "mongo_outbox_pending": pending,
                "mongo_dead_letters": len(self.mirror.dead_letters()),
            }
            | self.models.status(),
        )


class _StageClock:
    """Seconds spent per stage of a batch, for the log line (the first place to look when latency grows)."""

    def __init__(self) -> None:
        self.started = self._last = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.laps.append((stage, now - self._last))
        self._last = now

    def __str__(self) -> str:
        parts = " ".join(f"{name} {sec:.2f}s" for name, sec in self.laps)
        return f"{time.monotonic() - self.started:.2f}s ({parts})"


def require_checkpoint_covers_predictions(cfg: config.Config, topic: str) -> None:
    """Refuse to start when the predictions table holds a later batch of this scorer than its checkpoint knows.

    The appends are idempotent by (app id, batch id): a lost or recreated checkpoint
    numbers batches from 0 again and every batch up to the table's would be skipped as
    already written. The ingest's guard (``streaming.bronze.require_checkpoint_covers``).
    """
    require_checkpoint_covers([predictions_path(cfg)], app_id(topic), checkpoint_dir(cfg, topic))


WARM_UP_RECORDS = 20_000  # made-up events the warm-up validates: enough for the JVM to compile the hot paths
WARM_UP_EVENT = {
    "event_time": datetime(2019, 11, 1, 12, 0, 0),
    "event_type": "view",
    "product_id": 1,
    "category_id": 1,
    "category_code": "warm.up",
    "brand": None,
    "price": 1.0,
    "user_id": 1,
    "user_session": "scorer-warm-up",
}


def warm_up(spark: SparkSession, cfg: config.Config, topic: str, scorer: Scorer) -> None:
    """Do once, before the query starts, what the first batches would otherwise do while events queue up.

    The history is loaded, one made-up session goes through the features and both
    models (nothing is written), the MongoDB connection and its indexes are opened, and
    a throwaway query runs the stream's typed read on a few records (:func:`_read_tail`).
    What fails here is only logged: the stream deals with it as it would have.
    """
    started = time.monotonic()
    scorer.history.load()
    for task, loaded in scorer.models.models.items():
        try:  # the model itself, not ChampionModels.score: a made-up session must not get a champion refused
            if loaded is not None:
                loaded.model.predict(pd.DataFrame([point_features([normalise(dict(WARM_UP_EVENT))], 1, scorer.history.history)]))
        except Exception as exc:
            log.warning("warm-up: the %s model failed on a made-up session (%s)", task, exc)
    try:
        scorer.mirror.collection()
    except Exception as exc:  # MongoDB down: the outbox keeps the documents until it is back
        log.warning("warm-up: MongoDB not reachable yet (%s)", type(exc).__name__)
    try:
        rows = _read_tail(spark, cfg, topic, per_partition=200)
    except Exception as exc:
        rows = 0
        log.warning("warm-up: reading the topic failed (%s)", exc)
    try:
        _exercise_validation(spark, WARM_UP_RECORDS)
    except Exception as exc:
        log.warning("warm-up: validating made-up records failed (%s)", exc)
    log.info(
        "warm-up: history, models, MongoDB, the Kafka read path (%d records) and the validation (%d made-up records) ready in %.1fs",
        rows,
        WARM_UP_RECORDS,
        time.monotonic() - started,
    )


def _exercise_validation(spark: SparkSession, n: int) -> None:
    """Validate ``n`` made-up events with :func:`typed_events`, twice, and turn them into state tuples; nothing is kept.

    The topic may hold nothing yet (a new deployment), and a few hundred records would
    not be enough anyway: the JVM compiles a method to fast code only after it has run
    thousands of times. Without this, the first half-minute of batches at a high rate
    ran the JSON parser, the rules and the Arrow transfer slowly and built a backlog.
    """
    values = [
        (
            json.dumps(
                {**WARM_UP_EVENT, "event_time": "2019-11-01 12:00:00 UTC", "product_id": i + 1, "user_session": f"warm-up-{i % 500}"}
            ).encode(),
        )
        for i in range(n)
    ]
    raw = spark.createDataFrame(values, "value binary").select("value", F.current_timestamp().alias("timestamp"))
    for _ in range(2):
        for _event in frame_events(typed_events(raw).toPandas()):
            pass


def _read_tail(spark: SparkSession, cfg: config.Config, topic: str, per_partition: int, timeout: float = 120.0) -> int:
    """Run a throwaway copy of the stream's query over the last ``per_partition`` records of each partition; returns how many it read.

    The same source, :func:`typed_events` and ``toPandas`` inside ``foreachBatch`` as the
    real query: Spark keeps the code it generated for a plan and reuses it for the same
    plan, so what a query's first micro-batch pays once (code generation, the Kafka
    consumers, the JVM's callback connection to this process) is paid here, before the
    real query exists. Only the start offsets and the batch size differ (they are not
    part of the generated code); it is stopped after its first batch, and its
    checkpoint is a temporary folder, deleted after.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=cfg.kafka_bootstrap, **cfg.kafka_client_options)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends, firsts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
    finally:
        consumer.close()
    starts = {tp: max(firsts[tp], ends[tp] - per_partition) for tp in tps}
    if not any(ends[tp] > starts[tp] for tp in tps):  # nothing to read: no batch would run
        return 0
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
        .options(**cfg.spark_kafka_options)
        .option("subscribe", topic)
        .option("startingOffsets", json.dumps({topic: {str(tp.partition): s for tp, s in starts.items()}}))
        .option("maxOffsetsPerTrigger", per_partition * len(tps))
        .option("failOnDataLoss", "false")
        .load()
    )
    read: list[int] = []
    first_batch = threading.Event()

    def handle(batch: DataFrame, _batch_id: int) -> None:
        read.append(len(batch.toPandas()))
        first_batch.set()

    with tempfile.TemporaryDirectory(prefix="scorer-warm-up-") as checkpoint:
        query = (
            typed_events(raw)
            .writeStream.foreachBatch(handle)
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="0 seconds")
            .queryName(f"scorer-warm-up-{topic}")
            .start()
        )
        deadline = time.monotonic() + timeout
        while not first_batch.wait(0.5) and query.isActive and time.monotonic() < deadline:
            pass
        query.stop()
    return sum(read)


def fewer_collections() -> None:
    """Run Python's cyclic garbage collector less often in this process.

    A batch allocates millions of short-lived objects (event dicts, feature rows,
    documents) that reference counting frees, beside a state of millions of event
    tuples. At the default threshold a young collection runs every 700 allocations
    and finds nothing to free, a large share of a batch's Python time (the README's
    benchmark notes give the figures). Cycles are still collected, less often.
    """
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


def start(
    spark: SparkSession,
    cfg: config.Config,
    *,
    topic: str | None = None,
    trigger_seconds: float | None = None,
    starting_offsets: str | None = None,
    max_offsets: int | None = None,
    models: ChampionModels | None = None,
    mirror: SessionMirror | None = None,
):
    """Warm up, then start the scoring query; returns (query, scorer).

    Everything slow happens before the query exists (state rebuild, model load, warm-up):
    a new query at ``latest`` then starts reading where the warm-up ended, and one
    resuming a checkpoint finds the scorer ready for its backlog.
    """
    topic = topic or str(cfg["KAFKA_TOPIC"])
    fewer_collections()
    ensure_topic(topic, bootstrap=cfg.kafka_bootstrap)  # the stream may start before the first producer
    ensure_predictions_table(spark, predictions_path(cfg))
    require_checkpoint_covers_predictions(cfg, topic)
    models = models or ChampionModels(cfg.mlflow_uri, float(cfg["SCORER_MODEL_REFRESH_SECONDS"]))
    models.refresh(force=True)
    mirror = mirror or SessionMirror.from_config(cfg, topic)
    history = HistoryCache(spark, cfg.table_path("bronze", "events"), float(cfg["SCORER_HISTORY_REFRESH_SECONDS"]))
    state = SessionStateStore(int(cfg["SCORER_STATE_TIMEOUT_MINUTES"]) * 60)
    restore_state(spark, cfg, topic, state)  # before the stream: a replayed batch must see the state it saw first
    scorer = Scorer(cfg, topic, models, history, mirror, state, PredictionsWriter(predictions_path(cfg)), ErasureWatch(cfg))
    warm_up(spark, cfg, topic, scorer)
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
        .options(**cfg.spark_kafka_options)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets or str(cfg["SCORER_STARTING_OFFSETS"]))
        .option("maxOffsetsPerTrigger", int(max_offsets or cfg["SCORER_MAX_OFFSETS_PER_TRIGGER"]))
        .option("failOnDataLoss", "false")
        .load()
    )
    seconds = float(trigger_seconds if trigger_seconds is not None else cfg["SCORER_TRIGGER_SECONDS"])
    query = (
        typed_events(raw)
        .writeStream.foreachBatch(scorer.handle)
        .option("checkpointLocation", str(checkpoint_dir(cfg, topic)))
        .trigger(processingTime=f"{seconds} seconds")
        .queryName(f"scorer-{topic}")
        .start()
    )
    mirror.start_background_flush()
    return query, scorer


app = typer.Typer(add_completion=False)


@app.command()
def main(
    topic: str = typer.Option(None, help="Kafka topic to read (default: KAFKA_TOPIC)."),
    trigger_seconds: float = typer.Option(None, help="Micro-batch interval in seconds (default: SCORER_TRIGGER_SECONDS)."),
    starting_offsets: str = typer.Option(None, help="earliest or latest, for a new checkpoint (default: SCORER_STARTING_OFFSETS)."),
    max_offsets: int = typer.Option(None, help="Max records per micro-batch (default: SCORER_MAX_OFFSETS_PER_TRIGGER)."),
    max_restarts: int = typer.Option(100, help="Restarts from the checkpoint after a failure before giving up."),
) -> None:
    """Score live sessions from Kafka with the champion models into Delta `predictions` and MongoDB `sessions`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack: where a stalled batch waits
    cfg = config.load()
    topic = topic or str(cfg["KAFKA_TOPIC"])
    extra = {**LONG_RUNNING_CONF, "spark.sql.execution.arrow.pyspark.enabled": "true"}
    spark = get_spark("scorer", catalog=False, cfg=cfg, extra=extra)
    # One set of models and one outbox across restarts: a refused champion stays refused, pending documents stay queued.
    models = ChampionModels(cfg.mlflow_uri, float(cfg["SCORER_MODEL_REFRESH_SECONDS"]))
    mirror = SessionMirror.from_config(cfg, topic)

    def start_query():
        # A restart rebuilds the state from Kafka like a new process: the failed batch may have half-merged into it.
        query, _ = start(
            spark,
            cfg,
            topic=topic,
            trigger_seconds=trigger_seconds,
            starting_offsets=starting_offsets,
            max_offsets=max_offsets,
            models=models,
            mirror=mirror,
        )
        log.info("%s: %s -> %s + mongo %s", READY_LINE, topic, predictions_path(cfg), cfg["MONGO_DB"])
        return query

    try:
        supervisor.supervise(start_query, name="scorer", max_restarts=max_restarts)
    except RuntimeError as exc:  # CheckpointMismatch included: its message says what to do
        typer.secho(f"scorer failed: {exc}", fg="red", err=True)
        sys.exit(1)
    finally:
        mirror.stop_background_flush()
        mirror.flush()


if __name__ == "__main__":
    app()
