"""Erasure of one user from every store, with a receipt per store.

``python -m streaming.session_admin delete-user USER`` calls :func:`erase_user`. It
first adds the user to the erasure register (a Delta table of user id and erasure
time), then removes or scrubs what each store holds:

* MongoDB session documents: deleted;
* Delta predictions: rows deleted;
* bronze events: each row becomes a quarantine *tombstone* (reason ``erased_user``,
  its Kafka or file coordinates only, no payload), then the row is deleted, so
  reconciliation still finds every Kafka record exactly once;
* quarantine: rows whose payload names the user lose their payload and detail (the
  reason and coordinates stay);
* every dbt table with a ``user_id`` column: rows deleted (aggregates hold no user),
  and, in a table with deletion vectors, purged from its live files;
* CSV files under ``output/`` and the CSV copies the embedded MLflow server keeps as
  run artifacts: rows of the user dropped;
* Kafka: records cannot be deleted one by one; they leave with the topic's retention,
  and the receipt says until when;
* the running scorer and the ingest read the register: a replayed record of the user
  older than the erasure is quarantined as ``erased_user`` without payload, and the
  scorer drops the user's state.

Deleted rows stay in the Delta tables' older files until VACUUM removes them. VACUUM
must not race a writer, which may have written files it has not committed yet; so
erasure vacuums with a retention (``ERASURE_VACUUM_RETAIN_HOURS``) longer than any
commit takes, and the files this erasure removed are deleted by the first VACUUM after
that retention (``session_admin vacuum``, or the next erasure). The register records
when that is due.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakehouse import config

ERASED_REASON = "erased_user"
# Where a record came from, unique across the lakehouse: reconciliation counts by these.
_ORIGIN = ("source", "kafka_topic", "kafka_partition", "kafka_offset", "source_file", "source_line")
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


@dataclass(frozen=True)
class StoreReceipt:
    """What one store held of the user and what is left of it."""

    store: str
    found: int
    removed: int
    remains: str = "nothing"


def register_path(cfg: config.Config) -> Path:
    """The erasure register: one row per erasure (user id, erasure time, VACUUM due time)."""
    return cfg.table_path("erasure", "erased_users")


def record_erasure(cfg: config.Config, user_id: int, at: datetime, retain_hours: float) -> None:
    """Append the user to the register before any store is touched, so streams stop re-adding them."""
    import pyarrow as pa
    from deltalake import write_deltalake

    row = pa.table(
        {
            "user_id": pa.array([int(user_id)], pa.int64()),
            "erased_at": pa.array([at.replace(tzinfo=None)], pa.timestamp("us")),
            "vacuum_due_at": pa.array([(at + timedelta(hours=retain_hours)).replace(tzinfo=None)], pa.timestamp("us")),
        }
    )
    write_deltalake(str(register_path(cfg)), row, mode="append")


def erasures(cfg: config.Config) -> list[dict]:
    """Every erasure in the register, oldest first (for ``session_admin erasures``)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        rows = DeltaTable(str(register_path(cfg))).to_pyarrow_table().to_pylist()
    except TableNotFoundError:
        return []
    return sorted(rows, key=lambda r: r["erased_at"])


def erased_users(cfg: config.Config) -> dict[int, datetime]:
    """Erased user id -> latest erasure time (UTC, naive); empty when nobody was erased."""
    return {int(r["user_id"]): r["erased_at"] for r in erasures(cfg)}  # oldest first: the latest erasure wins


class ErasureWatch:
    """The register for a stream that asks at every batch: re-read only when a commit changed it."""

    def __init__(self, cfg: config.Config) -> None:
        self._cfg = cfg
        self._log = register_path(cfg) / "_delta_log"
        self._seen: int | None = None
        self._users: dict[int, datetime] = {}
        self.generation = 0  # moves when the register is read anew: a stream's cue to clean its state

    def get(self) -> dict[int, datetime]:
        """Erased user id -> erasure time, as of now."""
        try:
            stamp = self._log.stat().st_mtime_ns  # a commit adds a file: the folder's time moves
        except FileNotFoundError:
            return {}
        if stamp != self._seen:
            self._users, self._seen = erased_users(self._cfg), stamp
            self.generation += 1
        return self._users


def keep_document(doc: dict, erased: dict[int, datetime]) -> bool:
    """Whether a session document may still be written: not of an erased user's activity before the erasure."""
    at = erased.get(doc.get("user_id"))  # type: ignore[arg-type]
    last = doc.get("last_event_time")
    return at is None or (last is not None and last.replace(tzinfo=None) > at)


def drop_erased(frame, erased: dict[int, datetime]):
    """Rows of a pandas frame of events (``user_id``, ``event_time``) minus erased users' events older than their erasure."""
    if not erased or frame.empty:
        return frame
    at = frame["user_id"].map(erased)
    return frame[at.isna() | (frame["event_time"] > at)]


def skipping_erased(validate, erased: dict[int, datetime]):
    """A validator that also quarantines records of erased users dated before their erasure.

    Such a record is a replay (a re-ingest, or Kafka still holding it), not new data:
    it becomes an ``erased_user`` quarantine row with its coordinates and no payload,
    so nothing of the user returns and reconciliation still counts the record once.
    A record dated after the erasure is new activity and passes as usual.
    """
    if not erased:
        return validate

    def validated(records, now=None):
        from pyspark.sql import functions as F

        out = validate(records, now)
        register = F.broadcast(out.sparkSession.createDataFrame(sorted(erased.items()), "_erased_user bigint, _erased_at timestamp"))
        joined = out.join(register, out["user_id"] == register["_erased_user"], "left")
        hit = F.col("reason").isNull() & F.col("_erased_at").isNotNull() & (F.col("event_time") <= F.col("_erased_at"))
        return joined.select(
            *[
                F.when(hit, F.lit(None)).otherwise(F.col(c)).alias(c)
                if c in ("payload", "payload_bytes", "reason_detail")
                else F.when(hit, F.lit(ERASED_REASON)).otherwise(F.col(c)).alias(c)
                if c == "reason"
                else F.col(c)
                for c in out.columns
            ]
        )

    return validated


def delta_tables(root: Path) -> Iterator[Path]:
    """Delta tables under ``root`` (folders holding a ``_delta_log``), not descending into them."""
    if not root.is_dir():
        return
    for dirpath, dirnames, _ in os.walk(root):
        if "_delta_log" in dirnames:
            dirnames.clear()
            yield Path(dirpath)
        else:
            dirnames[:] = [d for d in dirnames if not d.startswith(("_", "."))]


def _has_column(path: Path, column: str) -> bool:
    from deltalake import DeltaTable

    return column in DeltaTable(str(path), without_files=True).schema().to_arrow().names


def _retry(action, attempts: int = 5):
    """Run a Delta commit again when a concurrent writer (a stream, dbt) won the race."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as exc:  # Delta's ConcurrentModificationException family arrives as a Py4J error
            if "Concurrent" not in type(exc).__name__ + str(exc)[:400] or attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)
    return None


def _delete_rows(spark, path: Path, condition) -> int:
    """Delete matching rows from a Delta table by path; how many there were.

    On a table with deletion vectors the rows are then purged from its live files
    (:func:`purge_deletion_vectors`), so that the VACUUM after them can remove them.
    """
    from delta.tables import DeltaTable

    found = spark.read.format("delta").load(str(path)).filter(condition).count()
    if found:
        _retry(lambda: DeltaTable.forPath(spark, str(path)).delete(condition))
    purge_deletion_vectors(spark, path)
    return found


def _has_deletion_vectors(path: Path) -> bool:
    """Whether the table at ``path`` may hold deletion vectors (its protocol has the feature)."""
    from deltalake import DeltaTable

    features = DeltaTable(str(path), without_files=True).protocol().reader_features or []
    return "deletionVectors" in features


def purge_deletion_vectors(spark, path: Path) -> None:
    """Rewrite the files of ``path`` that carry deletion vectors without the rows they mark.

    With deletion vectors (the ML feature marts: their MERGEs mark replaced rows instead
    of copying the rest of each file) a deleted or replaced row stays in a live data
    file, marked, and no VACUUM removes a live file; so a DELETE alone would leave the
    user's rows, and the older versions of their updated rows, on disk. REORG ... PURGE
    rewrites those files without the marked rows; the files it replaces are ordinary
    removed files that the next VACUUM deletes.
    """
    if _has_deletion_vectors(path):
        _retry(lambda: spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)").collect())


def tombstone_bronze(spark, cfg: config.Config, user_id: int, now: datetime) -> StoreReceipt:
    """Move the user's bronze rows to quarantine as payload-free tombstones, then delete them."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from streaming import events
    from streaming.bronze import BronzePaths, ensure_tables

    paths = BronzePaths.from_config(cfg)
    if not (paths.events / "_delta_log").is_dir():
        return StoreReceipt("bronze events", 0, 0)
    mine = F.col("user_id") == F.lit(int(user_id))
    rows = spark.read.format("delta").load(str(paths.events)).filter(mine)
    found = rows.count()
    if not found:
        return StoreReceipt("bronze events", 0, 0)
    ensure_tables(spark, paths)  # bronze loaded by other means may have no quarantine table yet
    keep = {*_ORIGIN, "kafka_timestamp"}
    tombstones = rows.select(
        *[
            (F.col(c.name) if c.name in keep else F.lit(None)).cast(c.sql_type).alias(c.name)
            for c in events.QUARANTINE_COLUMNS
            if c.name not in ("reason", "ingested_at", "ingested_date")
        ],
        F.lit(ERASED_REASON).alias("reason"),
        F.lit(now).cast("timestamp").alias("ingested_at"),
        F.lit(now.date()).alias("ingested_date"),
    ).select(*[c.name for c in events.QUARANTINE_COLUMNS])
    key = " AND ".join(f"q.{k} <=> t.{k}" for k in _ORIGIN)
    # Insert-if-absent: running the erasure again after a crash adds no second tombstone.
    _retry(
        lambda: (
            DeltaTable.forPath(spark, str(paths.quarantine))
            .alias("q")
            .merge(tombstones.alias("t"), key)
            .whenNotMatchedInsertAll()
            .execute()
        )
    )
    removed = _delete_rows(spark, paths.events, mine)
    return StoreReceipt("bronze events (now quarantine tombstones)", found, removed)


def _payload_user(raw):
    """The user id a quarantined payload names: its JSON ``user_id``, or the 8th CSV field."""
    from pyspark.sql import functions as F

    from_json = F.get_json_object(raw, "$.user_id")
    from_csv = F.try_element_at(F.split(raw, ","), F.lit(8))
    return F.trim(F.coalesce(from_json, from_csv))


def scrub_quarantine(spark, cfg: config.Config, user_id: int) -> StoreReceipt:
    """Drop the payload and detail of quarantine rows that name the user (reason and coordinates stay)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from streaming.bronze import BronzePaths

    path = BronzePaths.from_config(cfg).quarantine
    if not (path / "_delta_log").is_dir():
        return StoreReceipt("quarantine", 0, 0)
    mine = F.col("raw_payload").isNotNull() & (_payload_user(F.col("raw_payload")) == F.lit(str(int(user_id))))
    found = spark.read.format("delta").load(str(path)).filter(mine).count()
    if found:
        _retry(
            lambda: DeltaTable.forPath(spark, str(path)).update(
                mine, {"raw_payload": F.lit(None).cast("string"), "reason_detail": F.lit(None).cast("string")}
            )
        )
    return StoreReceipt("quarantine", found, found, "nothing (rows keep reason and coordinates)")


def erase_tables(spark, cfg: config.Config, user_id: int) -> list[StoreReceipt]:
    """Predictions and every dbt table with a ``user_id`` column."""
    from pyspark.sql import functions as F

    from streaming.predictions import predictions_path

    mine = F.col("user_id") == F.lit(int(user_id))
    receipts = []
    targets = [("predictions", predictions_path(cfg))]
    targets += [(f"dbt {p.parent.name}/{p.name}", p) for p in sorted(delta_tables(cfg.warehouse_dir))]
    for name, path in targets:
        if not (path / "_delta_log").is_dir() or not _has_column(path, "user_id"):
            continue
        n = _delete_rows(spark, path, mine)
        receipts.append(StoreReceipt(name, n, n))
    return receipts


def vacuum(spark, cfg: config.Config, retain_hours: float) -> list[Path]:
    """VACUUM every lakehouse Delta table at ``retain_hours``; the tables vacuumed.

    The retention check is switched off for this session only: it guards against
    vacuuming below the table's 7-day default, and erasure vacuums sooner on purpose,
    at a retention longer than any writer's commit takes.
    """
    from delta.tables import DeltaTable

    spark.conf.set(_RETENTION_CHECK, "false")
    done = []
    try:
        for path in sorted(delta_tables(cfg.lakehouse_dir)):
            if path == register_path(cfg):
                continue
            _retry(lambda p=path: DeltaTable.forPath(spark, str(p)).vacuum(float(retain_hours)))
            done.append(path)
    finally:
        spark.conf.set(_RETENTION_CHECK, "true")
    return done


def erase_mongo(cfg: config.Config, user_id: int) -> StoreReceipt:
    from streaming.session_store import COLLECTION, connect

    coll = connect(cfg.mongo_uri)[str(cfg["MONGO_DB"])][COLLECTION]
    n = coll.delete_many({"user_id": int(user_id)}).deleted_count
    return StoreReceipt("MongoDB sessions", n, n)


def drop_user_rows(path: Path, user_id: int) -> int:
    """Rewrite a CSV file without the user's rows (atomically); rows dropped, 0 if it has no user_id."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if "user_id" not in (reader.fieldnames or []):
            return 0
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    keep = [r for r in rows if r["user_id"].strip() != str(int(user_id))]
    if len(keep) == len(rows):
        return 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(keep)
    os.replace(tmp, path)
    return len(rows) - len(keep)


def erase_files(root: Path, name: str, user_id: int) -> StoreReceipt:
    """Drop the user's rows from every CSV under ``root``."""
    n = sum(drop_user_rows(p, user_id) for p in sorted(root.rglob("*.csv"))) if root.is_dir() else 0
    return StoreReceipt(name, n, n)


def erase_outbox(cfg: config.Config, user_id: int) -> StoreReceipt:
    """The scorers' outboxes: documents set aside as dead letters are deleted; pending ones are counted.

    A pending outbox file belongs to a running scorer's flusher, so it is not rewritten
    here: the flusher checks the register and drops the user's documents itself.
    """
    import bson
    from bson import json_util

    from streaming.session_store import DEAD_LETTER

    root = cfg.lakehouse_dir / "_outbox"
    pending = 0
    for path in root.glob("*/*.bson"):
        try:
            pending += sum(1 for d in bson.decode_all(path.read_bytes()) if d.get("user_id") == int(user_id))
        except FileNotFoundError:  # flushed meanwhile
            continue
    dead = [
        p
        for p in root.glob(f"*/{DEAD_LETTER}/*.json")
        if (json_util.loads(p.read_text()).get("document") or {}).get("user_id") == int(user_id)
    ]
    for path in dead:
        path.unlink()
    left = f"{pending} pending document(s): the scorer drops them when it flushes (it reads the register)" if pending else "nothing"
    return StoreReceipt("scorer outbox", pending + len(dead), len(dead), left)


def mlflow_artifacts(cfg: config.Config) -> Path | None:
    """The embedded MLflow server's artifact folder; None for an external server we cannot rewrite."""
    return cfg.services_dir / "mlflow" / "artifacts" if cfg.mlflow_embedded else None


def kafka_receipt(cfg: config.Config, topic: str, records: int, last_sent: datetime | None) -> StoreReceipt:
    """Kafka keeps records until retention; say until when the user's newest record stays."""
    from streaming.producer import topic_retention

    store = f"Kafka topic {topic}"
    if last_sent is None:
        return StoreReceipt(store, 0, 0, "no record of the user in bronze to date it by")
    try:
        retention = topic_retention(topic, cfg.kafka_bootstrap)
    except LookupError as exc:
        return StoreReceipt(store, records, 0, f"not checked: {exc}")
    if retention is None:
        return StoreReceipt(store, records, 0, "kept: the topic has no time retention (see KAFKA_RETENTION_HOURS)")
    return StoreReceipt(
        store, records, 0, f"until about {last_sent + retention:%Y-%m-%d %H:%M} UTC (topic retention; replays skip the user)"
    )


def last_sent(spark, cfg: config.Config, user_id: int) -> datetime | None:
    """When the producer sent the user's newest record (bronze's Kafka timestamp)."""
    from pyspark.sql import functions as F

    from streaming.bronze import BronzePaths

    path = BronzePaths.from_config(cfg).events
    if not (path / "_delta_log").is_dir():
        return None
    row = spark.read.format("delta").load(str(path)).filter(F.col("user_id") == F.lit(int(user_id))).agg(F.max("kafka_timestamp")).first()
    return row[0]


def _merge(first: list[StoreReceipt], again: list[StoreReceipt]) -> list[StoreReceipt]:
    """Receipts of two passes over the same stores, found and removed added up per store."""
    more = {r.store: r for r in again}
    out = [
        replace(r, found=r.found + more[r.store].found, removed=r.removed + more[r.store].removed) if r.store in more else r for r in first
    ]
    return out + [r for r in again if r.store not in {f.store for f in first}]


def _stream_stores(spark, cfg: config.Config, user_id: int, now: datetime) -> tuple[StoreReceipt, list[StoreReceipt]]:
    """The MongoDB receipt and the Delta receipts (bronze, quarantine, predictions, dbt tables)."""
    mongo = erase_mongo(cfg, user_id)
    return mongo, [tombstone_bronze(spark, cfg, user_id, now), scrub_quarantine(spark, cfg, user_id), *erase_tables(spark, cfg, user_id)]


def erase_user(
    spark,
    cfg: config.Config,
    user_id: int,
    *,
    retain_hours: float,
    output_dir: Path,
    topic: str | None = None,
    settle_seconds: float = 0,
) -> list[StoreReceipt]:
    """Erase ``user_id`` from every store; one receipt per store, Kafka's (``topic``, default KAFKA_TOPIC) last.

    A stream may be in the middle of a micro-batch it began before the register named
    the user, and commit it after the first pass deleted their rows. With
    ``settle_seconds`` > 0 the stores the streams write are swept again after that
    pause, by which time such a batch has committed and every later one skips the user.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    record_erasure(cfg, user_id, now, retain_hours)
    sent = last_sent(spark, cfg, user_id)
    mongo, delta = _stream_stores(spark, cfg, user_id, now)
    if settle_seconds > 0:
        time.sleep(settle_seconds)
        mongo_again, delta_again = _stream_stores(spark, cfg, user_id, now)
        (mongo,), delta = _merge([mongo], [mongo_again]), _merge(delta, delta_again)
    vacuum(spark, cfg, retain_hours)
    if retain_hours > 0:
        due = now + timedelta(hours=retain_hours)
        left = f"older file versions until `python -m streaming.session_admin vacuum` runs after {due:%Y-%m-%d %H:%M:%S} UTC"
        delta = [replace(r, remains=left) if r.found else r for r in delta]
    artifacts = mlflow_artifacts(cfg)
    return [
        mongo,
        erase_outbox(cfg, user_id),
        *delta,
        erase_files(output_dir, "output CSV files", user_id),
        erase_files(artifacts, "MLflow artifacts (CSV)", user_id)
        if artifacts
        else StoreReceipt("MLflow artifacts", 0, 0, "not searched: an external MLflow server; delete its run artifacts there"),
        kafka_receipt(cfg, topic or str(cfg["KAFKA_TOPIC"]), delta[0].found, sent),
    ]
