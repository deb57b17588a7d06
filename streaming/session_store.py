"""The MongoDB session mirror: one document per session, written through a local outbox.

Why an outbox: the scorer's Delta write is the system of record; MongoDB is a
serving copy that may be down. Every batch's documents are first written to a
file under ``$LAKEHOUSE_DIR/_outbox/scorer-<topic>/`` (named by batch id, so a
replayed batch rewrites the same file), then upserted; the file is deleted only
once MongoDB acknowledged it. While MongoDB is down files accumulate, and a
background thread (and every later batch) retries them oldest first. Nothing is lost
and the stream never blocks on MongoDB for longer than a short server-selection
timeout.

Why BSON files: the documents' own wire format, encoded by pymongo's C extension.
Extended JSON cost the scorer 0.33 s per 3,000 documents to write and the flusher
thread as much again to read (BSON: 0.04 and 0.06 s), on the stream's critical path
and under its interpreter lock. Files an earlier version left (``.json``) are still drained.

Why a dead-letter folder: a document the server refuses (FerretDB refuses a key that
starts with ``$`` or holds a dot, and drops the connection on a NaN) would otherwise be
retried forever and hold back every batch after it. A failed write is a connection
failure only if the server then fails a ping too: the outbox waits and retries. If the
server answers, the group of files is written again file by file and document by
document; a document that still fails, alone, on ``REJECTED_AFTER`` attempts is set
aside in ``dead-letter/`` next to the outbox (the document and the error, as extended
JSON), logged at ERROR, counted by :meth:`SessionMirror.dead_letters` (the scorer's
status file reports it), and the rest flows on.

Why replays leave the same documents: a document is replaced as a whole from the
session's events (which the scorer keeps in state), and its prediction history is
merged by prediction point (the number of events seen), so a replayed batch
rewrites entries that are already there instead of appending duplicates.

What a document says about scoring (the feature marts' prediction-point rule, applied
by ``streaming.scorer``): ``points_cap`` is K, the most events a scored point has;
``converted`` and ``first_purchase_time`` say whether and when the session bought;
``scoring_stopped`` is null while the session is scored, ``converted`` once it has
bought (its latest entry then has no probability), ``points_cap`` once it passed K
events without buying (its latest entry is its last prediction, at K events at most).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import bson
import pandas as pd
from bson import json_util

from lakehouse import config

log = logging.getLogger("streaming.session_store")

COLLECTION = "sessions"
LAST_EVENTS = 10
UPSERT_CHUNK = 500
FLUSH_FILES = 16  # outbox files merged into one round of upserts (see SessionMirror.flush)
HISTORY_CACHE_SESSIONS = 100_000  # sessions whose last written history the mirror remembers
_TRANSPORT_FIELDS = ("history_cap", "new_session")
_EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")


def _dt(v):
    if type(v) is datetime:  # the events' own times: already what BSON stores
        return v
    return None if v is None or pd.isna(v) else pd.Timestamp(v).to_pydatetime()


def prediction_entry(row: dict) -> dict:
    """The part of a prediction row kept in the document's history."""
    return {
        "converted": bool(row.get("converted")),
        "point": int(row["prediction_point"]),
        "event_time": _dt(row["event_time"]),
        "scored_at": _dt(row["processing_time"]),
        "purchase_probability": row["purchase_probability"],
        "purchase_label": row["purchase_label"],
        "top3": [c for c in (row["top_1"], row["top_2"], row["top_3"]) if c is not None],
        "purchase_model_version": row["purchase_model_version"],
        "category_model_version": row["category_model_version"],
        "source": row["source"],
        "batch_id": int(row["batch_id"]),
    }


def session_document(
    session_id: str, events: Sequence[dict], row: dict | None, history_cap: int, new: bool = False, *, points_cap: int
) -> dict:
    """A session document from the session's (ordered) events and its newest prediction row.

    ``row`` is None for a session past ``points_cap`` events: it gets no new prediction,
    and the stored history (its last prediction) stays. ``new``: no earlier prediction
    of this session was mirrored, so the writer need not read a stored history to merge
    with (see ``upsert_documents``).
    """
    counts = {t: sum(1 for e in events if e["event_type"] == t) for t in _EVENT_TYPES}
    cats: list[str] = []
    for e in events:
        if e["category_top"] not in cats:
            cats.append(e["category_top"])
    entry = None if row is None else prediction_entry(row)
    bought = next((e["event_time"] for e in events if e["event_type"] == "purchase"), None)
    stopped = "converted" if bought is not None else "points_cap" if len(events) > points_cap else None
    return {
        "_id": session_id,
        "session_id": session_id,
        "user_id": int(events[0]["user_id"]),
        "start_time": _dt(events[0]["event_time"]),
        "last_event_time": _dt(events[-1]["event_time"]),
        "n_events": len(events),
        "counts": counts,
        "categories": cats,
        "last_events": [
            {
                "event_time": _dt(e["event_time"]),
                "event_type": e["event_type"],
                "product_id": int(e["product_id"]),
                "category_code": e["category_code"],
                "brand": e["brand"],
                "price": float(e["price"]),
            }
            for e in events[-LAST_EVENTS:]
        ],
        "converted": bought is not None,
        "first_purchase_time": _dt(bought),
        "points_cap": int(points_cap),
        "scoring_stopped": stopped,
        "latest_prediction": entry,
        "predictions": [] if entry is None else [entry],
        "history_cap": int(history_cap),
        "new_session": bool(new),
    }


def merge_history(old: Sequence[dict], new: Sequence[dict], cap: int) -> list[dict]:
    """Union of history entries keyed by prediction point (newer wins), oldest first, last ``cap`` kept."""
    by_point = {int(e["point"]): e for e in old}
    for e in new:
        by_point[int(e["point"])] = e
    return [by_point[p] for p in sorted(by_point)][-cap:]


def connect(uri: str, timeout_ms: int = 2000):
    from pymongo import MongoClient

    return MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, socketTimeoutMS=60_000)


def ensure_indexes(coll) -> None:
    """Unique session id; user + time for the history and export commands."""
    from pymongo import ASCENDING

    coll.create_index([("session_id", ASCENDING)], unique=True, name="session_id_unique")
    coll.create_index([("user_id", ASCENDING), ("last_event_time", ASCENDING)], name="user_time")


def stored_histories(coll, session_ids: Sequence[str]) -> dict[str, list[dict]]:
    """The stored prediction history of each session that has a document.

    One point read by ``_id`` per session rather than one ``$in`` query: FerretDB's
    SQLite backend serves only a plain ``{_id: value}`` filter from the index and
    scans (and decodes) the whole collection for ``$in``; on MongoDB both are indexed.
    """
    out: dict[str, list[dict]] = {}
    for sid in session_ids:
        d = coll.find_one({"_id": sid}, {"predictions": 1})
        if d is not None:
            out[sid] = d.get("predictions", [])
    return out


class WrittenHistories:
    """The prediction history last written per session, for the ``capacity`` sessions written most recently.

    Only the process that writes the documents may trust it: a session written by
    someone else since (``session_admin reprocess``) is overwritten from this memory.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, list[dict]] = OrderedDict()

    def get(self, session_id: str) -> list[dict] | None:
        return self._entries.get(session_id)

    def update(self, histories: dict[str, list[dict]]) -> None:
        if self.capacity <= 0:
            return
        for sid, hist in histories.items():
            self._entries[sid] = hist
            self._entries.move_to_end(sid)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


def stored_form(doc: dict) -> dict:
    """The document as MongoDB keeps it: without the fields that only travel through the outbox."""
    return {k: v for k, v in doc.items() if k not in _TRANSPORT_FIELDS}


def upsert_documents(coll, docs: Sequence[dict], histories: WrittenHistories | None = None) -> int:
    """Replace each session document, merging its prediction history with the stored one.

    The stored history is read (one ``_id`` lookup, ~0.4-0.9 ms on FerretDB: most of
    the mirror's time) only for a session that is neither marked ``new_session`` by
    the scorer (no earlier batch scored it, so it has no document) nor in
    ``histories``, the writer's memory of what it last wrote per session.
    """
    from pymongo import ReplaceOne

    if not docs:
        return 0
    histories = histories if histories is not None else WrittenHistories(0)
    latest: dict[str, dict] = {}
    new: set[str] = set()
    for d in docs:  # several entries for one session (outbox files merged): merge them first
        prev = latest.get(d["_id"])
        if prev is not None:
            d = {**d, "predictions": merge_history(prev["predictions"], d["predictions"], int(d["history_cap"]))}
        elif d.get("new_session"):
            new.add(d["_id"])
        latest[d["_id"]] = d
    ids = list(latest)
    for i in range(0, len(ids), UPSERT_CHUNK):  # bounded requests: a big batch never hits the socket timeout
        chunk = ids[i : i + UPSERT_CHUNK]
        previous = _previous_histories(coll, chunk, new, histories)
        inserts, replaces, written = [], [], {}
        for sid in chunk:
            d = latest[sid]
            hist = written[sid] = merge_history(previous.get(sid, []), d["predictions"], int(d["history_cap"]))
            full = stored_form(d)
            full["predictions"] = hist
            full["latest_prediction"] = hist[-1] if hist else None  # a session past the cap before its first score has none
            (inserts if sid in new else replaces).append(full)
        replaces += _insert_new(coll, inserts)
        if len(replaces) == 1:  # alone (as when the outbox isolates a refused document): the server's own error, not
            # pymongo's KeyError on FerretDB's reply to a refused bulk replace
            coll.replace_one({"_id": replaces[0]["_id"]}, replaces[0], upsert=True)
        elif replaces:
            coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in replaces], ordered=False)
        histories.update(written)  # only once MongoDB acknowledged them
    return len(ids)


def _previous_histories(coll, session_ids: Sequence[str], new: set[str], histories: WrittenHistories) -> dict[str, list[dict]]:
    """Each session's history before this write: none for a new one, the remembered one, else the stored one."""
    out: dict[str, list[dict]] = {sid: [] for sid in session_ids if sid in new}
    for sid in session_ids:
        if sid not in out and (remembered := histories.get(sid)) is not None:
            out[sid] = remembered
    out.update(stored_histories(coll, [sid for sid in session_ids if sid not in out]))
    return out


def _insert_new(coll, docs: list[dict]) -> list[dict]:
    """Insert the documents of new sessions (a third of an upsert's cost on FerretDB); returns those that already existed.

    A new session's document exists only when its batch is replayed after a crash that
    came after the mirror wrote it: the caller replaces those (with the same content).
    """
    from pymongo.errors import BulkWriteError

    if not docs:
        return []
    try:
        coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):  # anything but a duplicate _id is a real failure
            raise
        return [docs[e["index"]] for e in errors]
    return []


def _read_outbox_file(path: Path) -> list[dict]:
    return bson.decode_all(path.read_bytes()) if path.suffix == ".bson" else json_util.loads(path.read_text())


DEAD_LETTER = "dead-letter"  # folder of the outbox where refused documents are set aside
REJECTED_AFTER = 3  # attempts of a document alone, with the server answering, before it is set aside
RETRY_PAUSE = 0.5  # seconds between those attempts


def _describe(exc: BaseException) -> str:
    """The error as the server gave it: a bulk write's per-document message when there is one."""
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and "errmsg" in details:
        return f"code {details.get('code')}: {details['errmsg']}"
    errors = details.get("writeErrors", []) if isinstance(details, dict) else []
    if errors:
        return "; ".join(f"code {e.get('code')}: {e.get('errmsg')}" for e in errors[:3])
    return f"{type(exc).__name__}: {exc}"


@dataclass
class SessionMirror:
    """Outbox + MongoDB upserts for the scorer (and the reprocess command)."""

    uri: str
    database: str
    outbox: Path
    flush_interval: float = 5.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _client: object = field(default=None, repr=False)
    _indexed: bool = field(default=False, repr=False)
    _histories: WrittenHistories = field(default_factory=lambda: WrittenHistories(HISTORY_CACHE_SESSIONS), repr=False)
    # The erasure register (``streaming.erasure.ErasureWatch``): documents waiting in the outbox
    # when their user is erased must not be written after the erasure deleted the others.
    erasures: object = field(default=None, repr=False)

    @classmethod
    def from_config(cls, cfg: config.Config, name: str) -> SessionMirror:
        from streaming.erasure import ErasureWatch

        return cls(cfg.mongo_uri, str(cfg["MONGO_DB"]), cfg.lakehouse_dir / "_outbox" / f"scorer-{name}", erasures=ErasureWatch(cfg))

    def _writable(self, docs: list[dict]) -> list[dict]:
        """The documents minus those of erased users' activity before their erasure."""
        if self.erasures is None:
            return docs
        from streaming.erasure import keep_document

        erased = self.erasures.get()  # type: ignore[attr-defined]
        return [d for d in docs if keep_document(d, erased)] if erased else docs

    def collection(self):
        if self._client is None:
            self._client = connect(self.uri)
        coll = self._client[self.database][COLLECTION]
        if not self._indexed:
            ensure_indexes(coll)
            self._indexed = True
        return coll

    def reachable(self) -> bool:
        """Whether the server answers a ping now (tells a connection failure from a refused document)."""
        try:
            self.collection().database.client.admin.command("ping")
            return True
        except Exception:
            return False

    def dead_letters(self) -> list[Path]:
        """The documents set aside because the server kept refusing them, one file each."""
        folder = self.outbox / DEAD_LETTER
        return sorted(folder.glob("*.json")) if folder.exists() else []

    def pending(self) -> list[Path]:
        if not self.outbox.exists():
            return []
        return sorted([*self.outbox.glob("*.bson"), *self.outbox.glob("*.json")], key=lambda p: p.stem)

    def publish(self, batch_id: int, docs: Sequence[dict]) -> bool:
        """Put the batch in the outbox, then try to drain it; True when MongoDB is up to date."""
        if docs:
            self.outbox.mkdir(parents=True, exist_ok=True)
            path = self.outbox / f"{int(batch_id):012d}.bson"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(bson.encode(d) for d in docs))
            tmp.replace(path)  # atomic: a half-written file never looks pending
        if self._thread is not None:  # the flusher thread mirrors it: the stream never waits on MongoDB
            self._wake.set()
            return not self.pending()
        return self.flush()

    def flush(self) -> bool:
        """Upsert pending outbox files oldest first; stop at the first failure (order matters).

        Files go ``FLUSH_FILES`` at a time, their documents merged per session before the
        upserts: a mirror that fell behind catches up, since a session scored in several
        of those batches costs one read and one replace instead of one per batch. A crash
        between the upserts and the unlinks replays the group, which leaves the same documents.
        """
        with self._lock:
            pending = self.pending()
            for start in range(0, len(pending), FLUSH_FILES):
                group = pending[start : start + FLUSH_FILES]
                try:
                    docs = self._writable([d for path in group for d in _read_outbox_file(path)])
                    upsert_documents(self.collection(), docs, self._histories)
                except Exception as exc:
                    if not self.reachable():
                        return self._unreachable(exc)
                    # The server answers: something in this group is refused. Find it, set it aside, write the rest.
                    if not all(self._drain_alone(path) for path in group):
                        return False
                    continue
                for path in group:
                    path.unlink()
            return True

    def _unreachable(self, exc: BaseException) -> bool:
        log.warning("MongoDB not reachable (%s); %d batch(es) wait in %s", type(exc).__name__, len(self.pending()), self.outbox)
        return False

    def _drain_alone(self, path: Path) -> bool:
        """Write one outbox file a document at a time, setting aside those the server keeps refusing; False if it went away."""
        try:
            docs = self._writable(_read_outbox_file(path))
        except Exception as exc:  # an unreadable file would block the outbox just the same
            self._set_aside(path, 0, None, exc)
            path.unlink()
            return True
        for index, doc in enumerate(docs):
            for attempt in range(1, REJECTED_AFTER + 1):
                try:
                    upsert_documents(self.collection(), [doc], self._histories)
                    break
                except Exception as exc:
                    if not self.reachable():
                        return self._unreachable(exc)
                    if attempt == REJECTED_AFTER:
                        self._set_aside(path, index, doc, exc)
                    else:
                        self._stop.wait(RETRY_PAUSE)
        path.unlink()
        return True

    def _set_aside(self, path: Path, index: int, doc: dict | None, exc: BaseException) -> None:
        """Keep a refused document (or an unreadable outbox file) with its error in the dead-letter folder."""
        folder = self.outbox / DEAD_LETTER
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}-{index:06d}.json"  # a replayed batch overwrites its own entry
        record = {
            "outbox_file": path.name,
            "index": index,
            "session_id": None if doc is None else doc.get("_id"),
            "error": _describe(exc),
            "set_aside_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "document": doc if doc is not None else {"unreadable_file_bytes": path.read_bytes().hex()},
        }
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json_util.dumps(record, json_options=json_util.RELAXED_JSON_OPTIONS, indent=1))
        tmp.replace(target)
        log.error("MongoDB refused session %s of %s (%s): set aside in %s", record["session_id"], path.name, record["error"], target)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self.pending() and not self.flush():
                self._stop.wait(self.flush_interval)  # MongoDB down: back off instead of spinning

    def start_background_flush(self) -> None:
        """Retry the outbox while the stream is idle, so the mirror catches up without new events."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="mongo-outbox", daemon=True)
            self._thread.start()

    def stop_background_flush(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def main() -> None:
    """Drain a scorer's outbox into MongoDB now: ``python -m streaming.session_store [TOPIC]``."""
    import sys

    cfg = config.load()
    mirror = SessionMirror.from_config(cfg, sys.argv[1] if len(sys.argv) > 1 else str(cfg["KAFKA_TOPIC"]))
    n = len(mirror.pending())
    ok = mirror.flush()
    print(f"{n} pending batch file(s); {'all mirrored' if ok else f'{len(mirror.pending())} still pending (MongoDB down?)'}")
    dead = mirror.dead_letters()
    if dead:
        print(f"{len(dead)} document(s) refused by MongoDB are set aside with their error in {dead[0].parent}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
