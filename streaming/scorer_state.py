"""The streaming scorer's per-session state: held in the driver, rebuilt from Kafka after a restart.

Why in the driver: the scorer's ``foreachBatch`` function already collects every typed
event of a micro-batch into the driver to score it, so merging them into a Python dict
there costs microseconds per event. Spark's ``applyInPandasWithState`` cost about 2.5 ms
per touched session per batch (a pandas frame per group, the session's events
serialised into the state store and back), which is what kept the scorer from
sustaining 2,000 events/s.

Why a rebuild is enough for exactly-once: the state is a function of the events read,
and Kafka keeps them. The query's checkpoint says which batch comes next; on start the
scorer reads, as one Spark batch job, the events of the last ``timeout`` before its last
committed batch up to that batch's end offsets (:func:`last_committed_batch`) and
:meth:`SessionStateStore.restore` replays them here without scoring anything. A batch
that had started but not committed is then replayed by Spark against exactly the state
it saw the first time (its Delta append is skipped by the transaction id if it had
landed; MongoDB upserts are idempotent).

Limits, by design: a key idle longer than the timeout is forgotten (as before); after a
restart a key that was active without a pause longer than the timeout since before that
window comes back with only the window's events (its prediction points then restart
lower than before the restart).
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from streaming.events import CSV_COLUMNS
from streaming.session_features import category_top, normalise, split_sessions

# One event as kept in memory: the nine REES46 fields in CSV_COLUMNS order, as a plain tuple
# (no per-event dict: at 2,000 events/s and a 30-minute timeout the store holds up to 3.6 M).
CompactEvent = tuple[datetime, str, int, int, str | None, str | None, float, int, str | None]

# Per touched key: the batch's event ids (sha256 digests) -> newest Kafka timestamp (ns since the epoch).
Touches = dict[str, dict[bytes, int]]

_NAT = np.iinfo("int64").min  # what a NaT becomes as int64 nanoseconds


@dataclass(slots=True)
class _KeyState:
    """One state key's events by id (so a re-read event counts once) and its last touch (epoch seconds)."""

    events: dict[bytes, CompactEvent]
    last_touch: float


@dataclass(frozen=True)
class CommittedBatch:
    """The last micro-batch the query committed: its id, when it ran, and where it ended in Kafka."""

    batch_id: int
    timestamp_ms: int
    end_offsets: dict[str, dict[int, int]]  # topic -> partition -> next offset


def frame_events(frame: pd.DataFrame) -> Iterator[tuple[str, bytes, CompactEvent, int]]:
    """(state key, event id, compact event, Kafka timestamp in ns) for each row of ``typed_events``.

    The state key is the frame's ``state_key`` (the session, or ``nosession-<user>`` for
    events without one: those are split into dbt sessions by the 30-minute gap later).

    The event id is the staging model's, kept as its 32-byte digest: half the memory of
    the hex string, and the same order. ``typed_events`` computes it in the JVM
    (``event_digest``), where the rows are also already typed and cleaned by the
    ingest's validation, so each row becomes its tuple directly; a frame without that
    column (built by hand) goes through :func:`streaming.session_features.normalise`.
    """
    if frame.empty:
        return
    keys = frame["state_key"].tolist()
    kafka_ns = frame["kafka_timestamp"].to_numpy(dtype="datetime64[ns]").astype("int64").tolist()
    if "event_digest" in frame.columns:
        yield from zip(keys, frame["event_digest"].tolist(), _compact_columns(frame), kafka_ns, strict=True)
        return
    columns = [frame[c] for c in CSV_COLUMNS]
    columns[0] = frame["event_time"].to_numpy(dtype="datetime64[us]").tolist()  # datetime.datetime objects
    lists = [c if isinstance(c, list) else c.tolist() for c in columns]
    for key, values, kts in zip(keys, zip(*lists, strict=True), kafka_ns, strict=True):
        e = normalise(dict(zip(CSV_COLUMNS, values, strict=True)))
        yield key, bytes.fromhex(e["event_id"]), _compact(e), kts


def _interned(values: list) -> list:
    """Strings shared, not copied: a catalogue's worth of distinct codes, brands and types across millions of events."""
    intern = sys.intern
    return [None if v is None else intern(v) for v in values]


def _compact_columns(frame: pd.DataFrame) -> Iterator[CompactEvent]:
    """The nine fields of each row of a validated frame (typed, blanks already null) as compact tuples."""
    times = frame["event_time"].to_numpy(dtype="datetime64[us]").tolist()  # datetime.datetime objects
    strings = {c: _interned(frame[c].tolist()) for c in ("event_type", "category_code", "brand")}
    return zip(
        times,
        strings["event_type"],
        frame["product_id"].tolist(),
        frame["category_id"].tolist(),
        strings["category_code"],
        strings["brand"],
        frame["price"].astype(float).tolist(),
        frame["user_id"].tolist(),
        frame["user_session"].tolist(),
        strict=True,
    )


def _compact(e: dict) -> CompactEvent:
    intern = sys.intern
    code, brand = e["category_code"], e["brand"]
    return (
        e["event_time"],
        intern(e["event_type"]),
        e["product_id"],
        e["category_id"],
        None if code is None else intern(code),
        None if brand is None else intern(brand),
        e["price"],
        e["user_id"],
        e["user_session"],
    )


def event_dict(eid: bytes, ev: CompactEvent) -> dict:
    """The event as ``normalise`` returns it (what the feature and document code reads)."""
    out = dict(zip(CSV_COLUMNS, ev, strict=True))
    out["event_id"] = eid.hex()
    out["category_top"] = category_top(ev[4])
    return out


class SessionStateStore:
    """Open sessions' events per state key, evicted after ``timeout_seconds`` without an event.

    Keys are kept in the order of their last touch, so eviction pops from the front and
    costs nothing for the keys that stay. The clock is passed in: processing time (wall
    seconds) for live batches, each event's Kafka timestamp during :meth:`restore`.
    """

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = float(timeout_seconds)
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self._n_events = 0
        self.last_added: set[bytes] = set()  # ids the last merge added (not re-sent, not already held)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    @property
    def n_events(self) -> int:
        return self._n_events

    def events(self, key: str) -> list[dict]:
        """A key's events as dicts (empty when unknown)."""
        st = self._keys.get(key)
        return [] if st is None else [event_dict(eid, ev) for eid, ev in st.events.items()]

    def add(self, key: str, eid: bytes, event: CompactEvent, now: float) -> bool:
        """Add one event (a known id is ignored); a key idle past the timeout starts afresh. True when it was new."""
        st = self._keys.get(key)
        if st is None or now - st.last_touch > self.timeout_seconds:
            if st is not None:
                self._n_events -= len(st.events)
            st = self._keys[key] = _KeyState({}, now)
        new = eid not in st.events
        if new:
            if event[8] == key:  # the session id string is shared with the key, not stored per event
                event = (*event[:8], key)
            st.events[eid] = event
            self._n_events += 1
        st.last_touch = max(st.last_touch, now)
        self._keys.move_to_end(key)
        return new

    def evict(self, now: float) -> int:
        """Drop the keys idle longer than the timeout at ``now``; returns how many."""
        dropped = 0
        limit = now - self.timeout_seconds
        while self._keys:
            key, st = next(iter(self._keys.items()))
            if st.last_touch >= limit:
                break
            del self._keys[key]
            self._n_events -= len(st.events)
            dropped += 1
        return dropped

    def forget(self, erased: dict[int, datetime]) -> int:
        """Drop the events of erased users dated up to their erasure (``streaming.erasure``); how many went."""
        dropped = 0
        for key in list(self._keys):
            st = self._keys[key]
            gone = [eid for eid, ev in st.events.items() if ev[7] in erased and ev[0] <= erased[ev[7]]]
            for eid in gone:
                del st.events[eid]
            dropped += len(gone)
            if not st.events:
                del self._keys[key]
        self._n_events -= dropped
        return dropped

    def merge(self, frame: pd.DataFrame, now: float) -> Touches:
        """Add a micro-batch's typed events at processing time ``now``; returns what it touched.

        A re-sent event (same id) adds nothing but still touches its session, as it did
        with the Spark state operator: the session is scored again at the same point.
        """
        touches: Touches = {}
        self.last_added = set()
        for key, eid, ev, kts in frame_events(frame):
            if self.add(key, eid, ev, now):
                self.last_added.add(eid)
            hits = touches.setdefault(key, {})
            hits[eid] = max(hits.get(eid, _NAT), kts)
        return touches

    def touched_sessions(self, touches: Touches) -> tuple[dict[str, list[dict]], dict[str, pd.Timestamp | None]]:
        """The dbt sessions holding a touched event (all their events, in order) and each one's newest Kafka timestamp."""
        sessions: dict[str, list[dict]] = {}
        kafka_ts: dict[str, pd.Timestamp | None] = {}
        for key, hits in touches.items():
            by_hex = {eid.hex(): kts for eid, kts in hits.items()}
            for sid, evs in split_sessions(self.events(key)).items():
                newest = max((by_hex[e["event_id"]] for e in evs if e["event_id"] in by_hex), default=None)
                if newest is None:
                    continue
                sessions[sid] = evs
                kafka_ts[sid] = None if newest == _NAT else pd.Timestamp(newest, unit="ns")
        return sessions, kafka_ts

    def new_sessions(self, sessions: dict[str, list[dict]]) -> set[str]:
        """The sessions all of whose events the last merge added: no earlier batch scored them.

        Since ``restore`` rebuilds the state up to the last committed batch, that holds
        across restarts too; only a session idle past the timeout (its events evicted)
        that then resumes is taken for new.
        """
        return {sid for sid, evs in sessions.items() if all(bytes.fromhex(e["event_id"]) in self.last_added for e in evs)}

    def restore(self, frame: pd.DataFrame, until: float | None = None) -> int:
        """Replay events read back from Kafka, in produce order, each at its own Kafka timestamp; nothing is scored.

        ``until`` (epoch seconds, the last committed batch's time) evicts what had timed
        out by then, so the store is what the last committed batch left behind. Returns
        the number of rows read.
        """
        if frame.empty:
            return 0
        frame = frame.sort_values("kafka_timestamp", kind="stable")
        n = 0
        for key, eid, ev, kts in frame_events(frame):
            now = kts / 1e9 if kts != _NAT else (until or 0.0)
            self.add(key, eid, ev, now)
            n += 1
            if n % 100_000 == 0:
                self.evict(now)
        if until is not None:
            self.evict(until)
        return n


def _log_entries(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def latest_planned_batch(checkpoint: Path) -> int | None:
    """The newest batch id in ``<checkpoint>/offsets`` (planned, maybe not committed); None for a fresh checkpoint.

    A batch whose writes landed but whose commit did not is planned: its replay is the
    one Delta's transaction ids skip on purpose.
    """
    planned = _log_entries(checkpoint / "offsets")
    return planned[-1] if planned else None


def last_committed_batch(checkpoint: Path) -> CommittedBatch | None:
    """The newest batch in ``<checkpoint>/commits`` with its ``offsets`` entry; None for a fresh checkpoint.

    An offsets file is ``v1``, a metadata line (``batchTimestampMs``), then one JSON line
    per source: ``{"topic": {"partition": next offset}}``.
    """
    commits = _log_entries(checkpoint / "commits")
    if not commits:
        return None
    batch = commits[-1]
    lines = (checkpoint / "offsets" / str(batch)).read_text().splitlines()
    meta = json.loads(lines[1])
    ends: dict[str, dict[int, int]] = {}
    for line in lines[2:]:
        for topic, parts in json.loads(line).items():
            ends[topic] = {int(p): int(o) for p, o in parts.items()}
    return CommittedBatch(batch, int(meta["batchTimestampMs"]), ends)


def initial_offsets(checkpoint: Path) -> dict[str, dict[int, int]]:
    """Where the query's first batch started (``sources/0/0``); empty when unknown.

    Events before it were never in the state (a query started at ``latest``), so the
    rebuild must not read them either. Negative values (-2 earliest, -1 latest) bound nothing.
    """
    path = checkpoint / "sources" / "0" / "0"
    if not path.exists():
        return {}
    text = path.read_bytes().lstrip(b"\0").decode()
    out: dict[str, dict[int, int]] = {}
    for topic, parts in json.loads(text.splitlines()[-1]).items():
        out[topic] = {int(p): int(o) for p, o in parts.items() if int(o) >= 0}
    return out


def rebuild_ranges(ends: dict[int, int], since: dict[int, int | None], lower: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Per partition, the offsets [start, end) to read back: from ``since`` (the first offset at or
    after the window start; None when no event is that new) but not before the query's first
    offset, up to the committed end. Partitions with nothing to read are left out."""
    out = {}
    for p, end in ends.items():
        start = since.get(p)
        start = end if start is None else max(start, lower.get(p, 0))
        if start < end:
            out[p] = (start, end)
    return out
