"""Live purchase-intent and category features: the dbt feature marts' rules, for one session.

The dbt marts (``fct_purchase_intent_features``, ``fct_category_features``) are THE
definitions. The scorer cannot run dbt per micro-batch, so this module restates
them in Python for the events of one session, and ``tests/integration/
test_scorer_parity.py`` runs dbt and this module on the same bronze events and
requires every ``f_*`` value to be equal: a drift between the two is a failing
test, not a silent training/serving skew.

Rules copied from the SQL (keep them in step, the parity test will tell):

* staging: exact duplicates (all nine REES46 fields) count once; ``category_top`` is
  the first segment of ``category_code`` or ``unknown``; ``event_id`` is the sha256
  of the fields joined by ``|`` (used only to break ties in the order).
* ordering: ``event_time, funnel rank of event_type, product_id, event_id``.
* sessions: ``user_session``; null sessions split per user by a 30-minute gap into
  ``timeout-<user>-<yyyyMMddHHmmss of start>``.
* history ("prior") features come from days strictly before the session's start day
  (user) or before the point's event day (product, category): :class:`PriorHistory`,
  built from bronze with the same dedup and sessionization by :func:`build_history`.
* prediction points (``ordered_session_events`` in ``macros/session_events.sql``): the
  point after event k exists for k = 1..K (:func:`ml.feature_contract.prediction_points`,
  the dbt var) while the session has no purchase among events 1..k; :func:`last_point`.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from ml.feature_contract import CATEGORIES, prediction_points

EVENT_TYPE_RANK = {"view": 1, "cart": 2, "remove_from_cart": 3, "purchase": 4}
SESSION_TIMEOUT = timedelta(minutes=30)  # dbt var session_timeout_minutes
_SEC = 1_000_000_000  # ns


def _spark_double_str(x: float) -> str:
    """`cast(double as string)` in Spark for the price range the contract admits."""
    if x == int(x) and abs(x) < 1e7:
        return f"{float(x)!r}"
    return repr(float(x))


def _spark_ts_str(t: datetime) -> str:
    s = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        s += ("." + f"{t.microsecond:06d}").rstrip("0")
    return s


def event_id(e: dict) -> str:
    """The staging model's ``event_id`` (sha256 over the nine fields, ``\\N`` for nulls)."""
    parts = [
        _spark_ts_str(e["event_time"]),
        e["event_type"],
        str(e["product_id"]),
        str(e["category_id"]),
        "\\N" if e.get("category_code") is None else e["category_code"],
        "\\N" if e.get("brand") is None else e["brand"],
        _spark_double_str(e["price"]),
        str(e["user_id"]),
        "\\N" if e.get("user_session") is None else e["user_session"],
    ]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def event_digest_column():
    """The staging model's ``event_id`` as a Spark column of its 32 raw bytes (the expression of ``stg_bronze__events``).

    The scorer takes each event's id from here, computed in the JVM with the batch's
    validation, instead of :func:`event_id` per event in Python; both are the same
    sha256 over the same text (a unit of ``test_scorer_event_id`` holds them equal).
    """
    from pyspark.sql import functions as F

    def text(c: str):
        return F.col(c).cast("string")

    def nullable(c: str):
        return F.coalesce(F.col(c), F.lit("\\N"))

    joined = F.concat_ws(
        "|",
        text("event_time"),
        F.col("event_type"),
        text("product_id"),
        text("category_id"),
        nullable("category_code"),
        nullable("brand"),
        text("price"),
        text("user_id"),
        nullable("user_session"),
    )
    return F.unhex(F.sha2(joined, 256))


def category_top(code: str | None) -> str:
    if not code:
        return "unknown"
    first = code.split(".")[0]
    return first or "unknown"


def normalise(e: dict) -> dict:
    """One event as staging sees it: typed, with event_id and category_top."""
    out = dict(e)
    t = out["event_time"]
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace(" UTC", ""))
    elif isinstance(t, pd.Timestamp):
        t = t.to_pydatetime()
    out["event_time"] = t.replace(tzinfo=None)
    for k in ("category_code", "brand", "user_session"):
        v = out.get(k)
        out[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)
    out["product_id"], out["category_id"], out["user_id"] = int(out["product_id"]), int(out["category_id"]), int(out["user_id"])
    out["price"] = float(out["price"])
    out.setdefault("event_id", event_id(out))
    out["event_type"] = str(out["event_type"]).lower()
    out["category_top"] = category_top(out["category_code"])
    return out


def dedupe_and_order(events: Iterable[dict]) -> list[dict]:
    """Drop exact duplicates (same event_id), then order as ``ordered_session_events`` does."""
    seen: dict[str, dict] = {}
    for e in events:
        seen.setdefault(e["event_id"], e)
    return sorted(seen.values(), key=lambda e: (e["event_time"], EVENT_TYPE_RANK.get(e["event_type"], 9), e["product_id"], e["event_id"]))


def split_sessions(events: Sequence[dict]) -> dict[str, list[dict]]:
    """Group normalised events into dbt sessions (timeout rule for null user_session)."""
    out: dict[str, list[dict]] = {}
    by_user: dict[int, list[dict]] = {}
    for e in events:
        if e["user_session"] is not None:
            out.setdefault(e["user_session"], []).append(e)
        else:
            by_user.setdefault(e["user_id"], []).append(e)
    for user, evs in by_user.items():
        evs = sorted(evs, key=lambda e: (e["event_time"], e["event_id"]))
        start = prev = None
        for e in evs:
            if prev is None or (e["event_time"] - prev) > SESSION_TIMEOUT:
                start = e["event_time"]
            prev = e["event_time"]
            out.setdefault(timeout_session_id(user, start), []).append(e)
    return {sid: dedupe_and_order(evs) for sid, evs in out.items()}


def timeout_session_id(user: int, start: datetime) -> str:
    """int_events_sessionized's id of a session cut from null-``user_session`` events by the 30-minute gap."""
    return f"timeout-{user}-{start:%Y%m%d%H%M%S}"


def session_id_of(session: Sequence[dict]) -> str:
    """The dbt session id of a session's events (in order): its ``user_session``, or the timeout rule's id."""
    first = session[0]
    return first["user_session"] if first["user_session"] is not None else timeout_session_id(first["user_id"], first["event_time"])


def user_product_key(user_id: int, product_id: int) -> str:
    """The key of int_user_products_days_accumulated (dbt macro ``user_product_key``)."""
    return f"{user_id}-{product_id}"


def first_purchase(session: Sequence[dict]) -> int | None:
    """Position (1-based, in session order) of the session's first purchase; None when it has none."""
    return next((i for i, e in enumerate(session, start=1) if e["event_type"] == "purchase"), None)


def last_point(session: Sequence[dict], cap: int) -> int:
    """The session's last prediction point under the marts' rule; 0 when it has none.

    Points are k = 1..``cap`` while events 1..k hold no purchase: a point at or after the
    first purchase would ask whether a session that has bought will buy, which a
    multi-item order (several purchase rows in one second) answers for free.
    """
    bought = first_purchase(session)
    return min(len(session), cap, len(session) if bought is None else bought - 1)


def _epoch(t: datetime) -> int:
    """``unix_timestamp``: whole seconds."""
    return math.floor((t - datetime(1970, 1, 1)).total_seconds())


@dataclass
class PriorHistory:
    """Per-key daily totals, answering "what was known at the start of day D", and the day's session starts.

    ``user`` columns: user_id, event_date, sessions_started, events, purchases, spend,
    last_event_time, events_<category>...; ``product``: product_id, event_date, views,
    carts, purchases; ``category``: category_top, event_date, views, purchases,
    priced_views (views with a price above 0), view_price_sum (their prices);
    ``user_product``: user_product (:func:`user_product_key`), event_date, views;
    ``starts``: user_id, session_id, session_start of the sessions in bronze (recent days
    only, see :func:`build_history`); ``affinity``: category_top (viewed), event_date,
    viewers (user-days with a view in it), carted_<category>... (of those, the ones with a
    cart or purchase in that category). Sessions the scorer meets live are added by
    :meth:`note_session`, so a session of the same day counts before the next reload.
    """

    user: pd.DataFrame = field(default_factory=pd.DataFrame)
    product: pd.DataFrame = field(default_factory=pd.DataFrame)
    category: pd.DataFrame = field(default_factory=pd.DataFrame)
    user_product: pd.DataFrame = field(default_factory=pd.DataFrame)
    starts: pd.DataFrame = field(default_factory=pd.DataFrame)
    affinity: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        tables = ("user", "product", "category", "user_product", "affinity")
        self._index = {name: _index(getattr(self, name)) for name in tables}
        self._starts: dict[int, dict[str, datetime]] = {}
        if self.starts is not None and not self.starts.empty:
            for user, sid, start in zip(
                self.starts["user_id"].tolist(), self.starts["session_id"].tolist(), self.starts["session_start"].tolist(), strict=True
            ):
                self._starts.setdefault(int(user), {})[sid] = pd.Timestamp(start).to_pydatetime().replace(tzinfo=None)

    def prior(self, table: str, key: object, day: date) -> dict[str, float] | None:
        """Column sums over the key's days strictly before ``day`` (None when there are none).

        Answered from running totals (a binary search and one row read), because the
        scorer asks this four times for every session of every micro-batch.
        """
        index = self._index[table]
        bounds = index.keys.get(key) if index else None
        if bounds is None:
            return None
        lo, hi = bounds
        n = int(np.searchsorted(index.days[lo:hi], np.datetime64(day, "D"), side="left"))
        if n == 0:
            return None
        out = dict(zip(index.columns, index.totals[lo + n - 1].tolist(), strict=True))
        if index.last_seen is not None:
            seen = index.last_seen[lo + n - 1]
            out["last_event_time"] = None if np.isnat(seen) else pd.Timestamp(seen)
        return out

    def note_session(self, user_id: int, session_id: str, start: datetime) -> None:
        """Remember a session the scorer has seen (its start does not change as later events arrive)."""
        self._starts.setdefault(int(user_id), {}).setdefault(session_id, start)

    def sessions_earlier_today(self, user_id: int, session_id: str, start: datetime) -> int:
        """The user's known sessions that started earlier on ``start``'s day (same start: smaller id first)."""
        day = start.date()
        return sum(1 for sid, t in self._starts.get(int(user_id), {}).items() if t.date() == day and (t, sid) < (start, session_id))


@dataclass(frozen=True)
class _RunningTotals:
    """Every key's days in order, with the running column totals (and latest event time) up to each day.

    One set of arrays for all keys (``keys`` maps a key to its rows [lo, hi)): per-key
    arrays would cost a few hundred bytes of object overhead per key, and the user x
    product table has about one key per view.
    """

    keys: dict[object, tuple[int, int]]
    days: np.ndarray
    columns: tuple[str, ...]
    totals: np.ndarray
    last_seen: np.ndarray | None


def _index(frame: pd.DataFrame) -> _RunningTotals | None:
    if frame is None or frame.empty:
        return None
    key = frame.columns[0]
    frame = frame.sort_values([key, "event_date"], kind="stable").reset_index(drop=True)
    columns = tuple(c for c in frame.columns if c not in (key, "event_date", "last_event_time"))
    groups = frame.groupby(key, sort=False)
    totals = groups[list(columns)].cumsum().to_numpy(dtype="float64")  # per key: exact, no cross-key subtraction
    days = pd.to_datetime(frame["event_date"]).to_numpy().astype("datetime64[D]")
    last = None
    if "last_event_time" in frame:
        # cummax skips NaT: a day without events keeps the latest time before it
        seen = pd.to_datetime(frame["last_event_time"]).groupby(frame[key], sort=False).cummax()
        last = seen.groupby(frame[key], sort=False).ffill().to_numpy()
    keys = frame[key].to_numpy()
    cuts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    bounds = {(keys[lo].item() if hasattr(keys[lo], "item") else keys[lo]): (int(lo), int(hi)) for lo, hi in itertools.pairwise(cuts)}
    return _RunningTotals(bounds, days, columns, totals, last)


def _days(seconds: int) -> float:
    """``seconds / 86400.0`` as Spark SQL computes it: ``86400.0`` is a DECIMAL literal, so the
    quotient is a decimal rounded half-up to 7 places before the cast to double (the parity
    test caught the difference at the 8th decimal)."""
    return float((Decimal(seconds) / Decimal(86400)).quantize(Decimal("1e-7"), rounding=ROUND_HALF_UP))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def _price_vs_category(price: float, category: dict[str, float] | None) -> float:
    """The price over the category's mean viewed price on earlier days; -1 when either is unknown (0 or no priced view)."""
    mean = category["view_price_sum"] / category["priced_views"] if category and category["priced_views"] else 0.0
    return price / mean if price > 0 and mean > 0 else -1.0


def point_features(session: Sequence[dict], k: int, history: PriorHistory) -> dict[str, float]:
    """Every ``f_*`` of both marts for the point just after the session's k-th event (whether that point exists is
    :func:`last_point`'s business)."""
    evs = session[:k]
    last = evs[-1]
    start = session[0]["event_time"]
    types = [e["event_type"] for e in evs]
    prices = [e["price"] for e in evs]
    n_views, n_carts = types.count("view"), types.count("cart")
    cart_value = 0.0
    for e in evs:
        cart_value += e["price"] if e["event_type"] == "cart" else -e["price"] if e["event_type"] == "remove_from_cart" else 0.0
    f: dict[str, float] = {
        "f_n_events": k,
        "f_n_views": n_views,
        "f_n_carts": n_carts,
        "f_n_removes": types.count("remove_from_cart"),
        "f_n_distinct_products": len({e["product_id"] for e in evs}),
        "f_n_distinct_categories": len({e["category_id"] for e in evs}),
        "f_seconds_in_session": float(_epoch(last["event_time"]) - _epoch(start)),
        "f_seconds_since_prev_event": float(_epoch(last["event_time"]) - _epoch(evs[-2]["event_time"])) if k > 1 else -1.0,
        "f_mean_price": sum(prices) / k,
        "f_max_price": max(prices),
        "f_last_price": last["price"],
        "f_cart_value": max(cart_value, 0.0),
        "f_has_cart": int(n_carts > 0),
        "f_last_is_cart": int(last["event_type"] == "cart"),
        "f_repeat_product_views": n_views - len({e["product_id"] for e in evs if e["event_type"] == "view"}),
    }
    user = history.prior("user", session[0]["user_id"], start.date())
    f["f_user_prior_sessions"] = user["sessions_started"] if user else 0
    f["f_user_prior_purchases"] = user["purchases"] if user else 0
    f["f_user_prior_spend"] = user["spend"] if user else 0.0
    lt = user["last_event_time"] if user else None
    f["f_user_days_since_last_session"] = _days(_epoch(start) - _epoch(pd.Timestamp(lt).to_pydatetime())) if lt is not None else -1.0
    in_category = user.get(f"events_{last['category_top']}", 0.0) if user else 0.0  # 0 for a category the seed lacks
    f["f_user_prior_category_events"] = in_category
    f["f_user_prior_category_share"] = _ratio(in_category, user["events"]) if user else 0.0
    seen = history.prior("user_product", user_product_key(session[0]["user_id"], last["product_id"]), last["event_time"].date())
    f["f_user_prior_product_views"] = seen["views"] if seen else 0
    sid = session_id_of(session)
    history.note_session(session[0]["user_id"], sid, start)
    f["f_user_sessions_earlier_today"] = history.sessions_earlier_today(session[0]["user_id"], sid, start)
    prod = history.prior("product", last["product_id"], last["event_time"].date())
    f["f_product_prior_views"] = prod["views"] if prod else 0
    f["f_product_prior_conversion"] = _ratio(prod["purchases"], prod["views"]) if prod else 0.0
    f["f_product_prior_cart_rate"] = _ratio(prod["carts"], prod["views"]) if prod else 0.0
    cat = history.prior("category", last["category_top"], last["event_time"].date())
    f["f_category_prior_conversion"] = _ratio(cat["purchases"], cat["views"]) if cat else 0.0
    f["f_price_vs_category"] = _price_vs_category(last["price"], cat)
    f["f_hour_of_day"] = last["event_time"].hour
    f["f_day_of_week"] = (last["event_time"].weekday() + 1) % 7 + 1  # Spark dayofweek: 1 = Sunday
    prior_events = user["events"] if user else 0.0
    f["f_user_prior_events"] = prior_events
    for c in CATEGORIES:
        f[f"f_prior_share_{c}"] = _ratio(user.get(f"events_{c}", 0.0), prior_events) if user else 0.0
    for c in CATEGORIES:
        f[f"f_so_far_{c}"] = sum(1 for e in evs if e["category_top"] == c)
    affinity = history.prior("affinity", last["category_top"], last["event_time"].date())
    for c in CATEGORIES:
        f[f"f_affinity_{c}"] = _ratio(affinity[f"carted_{c}"], affinity["viewers"]) if affinity else 0.0
    return {k_: float(v) for k_, v in f.items()}


# ---------------------------------------------------------------- history from bronze (Spark)

_HISTORY_SQL = """
with raw as (select * from delta.`{bronze}` {where}),
ranked as (
  select *, row_number() over (
    partition by event_date, event_time, event_type, product_id, category_id, category_code, brand, price, user_id, user_session
    order by ingested_at, source_line, kafka_partition, kafka_offset) as rk
  from raw),
ev as (
  select event_time, cast(event_date as date) as event_date, lower(event_type) as event_type, product_id, user_id, price,
         coalesce(nullif(split(category_code, '\\\\.')[0], ''), 'unknown') as category_top,
         nullif(user_session, '') as user_session
  from ranked where rk = 1),
shop as (
  select user_session as sid, min_by(user_id, struct(event_time, event_type)) as user_id, min(event_time) as start
  from ev where user_session is not null group by user_session),
gaps as (
  select user_id, event_time, concat('timeout-', user_id, '-', date_format(event_time, 'yyyyMMddHHmmss')) as sid,
    case when lag(event_time) over w is null then 1
         when unix_timestamp(event_time) - unix_timestamp(lag(event_time) over w) > {timeout} then 1 else 0 end as is_start
  from ev where user_session is null window w as (partition by user_id order by event_time)),
starts as (
  select user_id, start, sid from shop
  union all select user_id, event_time as start, sid from gaps where is_start = 1)
select 'user' as t, cast(user_id as string) as k, event_date, count(*) as events,
  count_if(event_type = 'purchase') as purchases, coalesce(sum(case when event_type = 'purchase' then price end), 0) as spend,
  max(event_time) as last_event_time, 0L as views, 0L as carts, 0L as priced_views, cast(0 as double) as view_price_sum,
  cast(null as string) as sid, {cat_cols}
from ev group by user_id, event_date
union all
select 'started', cast(user_id as string), cast(start as date), count(*), 0, 0, null, 0L, 0L, 0L, 0D, null, {zero_cats}
from starts group by user_id, cast(start as date)
union all
select 'product', cast(product_id as string), event_date, 0, count_if(event_type = 'purchase'), 0, null,
  count_if(event_type = 'view'), count_if(event_type = 'cart'), 0L, 0D, null, {zero_cats}
from ev group by product_id, event_date
union all
select 'category', category_top, event_date, 0, count_if(event_type = 'purchase'), 0, null,
  count_if(event_type = 'view'), 0L, count_if(event_type = 'view' and price > 0),
  coalesce(sum(case when event_type = 'view' and price > 0 then price end), 0D), null, {zero_cats}
from ev group by category_top, event_date
union all
select 'user_product', concat(cast(user_id as string), '-', cast(product_id as string)), event_date, 0, 0, 0, null,
  count_if(event_type = 'view'), 0L, 0L, 0D, null, {zero_cats}
from ev group by user_id, product_id, event_date
union all
select 'session_start', cast(user_id as string), cast(start as date), 0, 0, 0, start, 0L, 0L, 0L, 0D, sid, {zero_cats}
from starts {starts_where}
union all
select 'affinity', viewed_category, event_date, 0, 0, 0, null, count_if(array_contains(viewed, viewed_category)), 0L, 0L, 0D, null,
  {affinity_cols}
from (
  select user_id, event_date, collect_set(category_top) as touched,
    collect_set(case when event_type = 'view' then category_top end) as viewed,
    collect_set(case when event_type in ('cart', 'purchase') then category_top end) as carted
  from ev group by user_id, event_date)
lateral view explode(touched) touched_categories as viewed_category
group by viewed_category, event_date
"""


def history_from_rows(rows: pd.DataFrame) -> PriorHistory:
    """Turn the long frame of :data:`_HISTORY_SQL` into a :class:`PriorHistory`."""
    rows = rows.copy()
    rows["event_date"] = pd.to_datetime(rows["event_date"])
    cats = [f"events_{c}" for c in CATEGORIES]
    u = rows[rows.t == "user"]
    s = rows[rows.t == "started"][["k", "event_date", "events"]].rename(columns={"events": "sessions_started"})
    user = u.merge(s, on=["k", "event_date"], how="outer").fillna({"sessions_started": 0, "events": 0, "purchases": 0, "spend": 0})
    user = user.fillna(dict.fromkeys(cats, 0))
    user["user_id"] = user["k"].astype("int64")
    user = user[["user_id", "event_date", "sessions_started", "events", "purchases", "spend", "last_event_time", *cats]]
    p = rows[rows.t == "product"].assign(product_id=lambda d: d["k"].astype("int64"))
    p = p[["product_id", "event_date", "views", "carts", "purchases"]]
    c = rows[rows.t == "category"].rename(columns={"k": "category_top"})
    c = c[["category_top", "event_date", "views", "purchases", "priced_views", "view_price_sum"]]
    a = rows[rows.t == "affinity"].rename(columns={"k": "category_top", "views": "viewers"})
    a = a.rename(columns={f"events_{c}": f"carted_{c}" for c in CATEGORIES})[
        ["category_top", "event_date", "viewers", *(f"carted_{c}" for c in CATEGORIES)]
    ]
    up = rows[rows.t == "user_product"].rename(columns={"k": "user_product"})[["user_product", "event_date", "views"]]
    st = rows[rows.t == "session_start"]
    starts = pd.DataFrame({"user_id": st["k"].astype("int64"), "session_id": st["sid"], "session_start": st["last_event_time"]})
    return PriorHistory(
        user.reset_index(drop=True),
        p.reset_index(drop=True),
        c.reset_index(drop=True),
        up.reset_index(drop=True),
        starts.reset_index(drop=True),
        a.reset_index(drop=True),
    )


# Days of session starts the live history keeps (the newest bronze day and the one before):
# f_user_sessions_earlier_today needs the current day's only, and a scorer keeping every
# session ever started would grow with the shop's history.
RECENT_START_DAYS = 2


def build_history(spark, bronze_path: Path, before: date | None = None, start_days: int | None = RECENT_START_DAYS) -> PriorHistory:
    """Daily history totals from the bronze Delta table (by path), days before ``before`` only.

    Session starts (for the count of the user's sessions earlier the same day) are kept
    for the newest ``start_days`` days of bronze; None keeps them all.

    Reads bronze rather than the dbt intermediate relations because those are views
    in the Derby catalog, which the long-running scorer must not hold.
    """
    from lakehouse.spark import read_delta

    if read_delta(spark, bronze_path) is None:
        return PriorHistory()
    where = f"where event_date < date'{before.isoformat()}'" if before else ""
    cat_cols = ", ".join(f"count_if(category_top = '{c}') as events_{c}" for c in CATEGORIES)
    zero_cats = ", ".join("0L" for _ in CATEGORIES)
    # the affinity rows carry carted_<category> in the events_<category> columns
    affinity_cols = ", ".join(f"count_if(array_contains(viewed, viewed_category) and array_contains(carted, '{c}'))" for c in CATEGORIES)
    starts_where = (
        "" if start_days is None else f"where cast(start as date) > (select date_sub(max(event_date), {int(start_days)}) from ev)"
    )
    sql = _HISTORY_SQL.format(
        bronze=bronze_path,
        where=where,
        timeout=int(SESSION_TIMEOUT.total_seconds()),
        cat_cols=cat_cols,
        zero_cats=zero_cats,
        starts_where=starts_where,
        affinity_cols=affinity_cols,
    )
    return history_from_rows(spark.sql(sql).toPandas())


def features_for_events(events: Iterable[dict], history: PriorHistory, points: int | None = None) -> pd.DataFrame:
    """Rows (session_id, user_id, prediction_point, f_*...) for raw events: every point the marts' rule gives,
    with K = ``points`` (default: the dbt var, :func:`ml.feature_contract.prediction_points`)."""
    cap = prediction_points() if points is None else points
    sessions = split_sessions([normalise(e) for e in events])
    rows = []
    for sid, evs in sessions.items():
        for k in range(1, last_point(evs, cap) + 1):
            rows.append({"session_id": sid, "user_id": evs[0]["user_id"], "prediction_point": k, **point_features(evs, k, history)})
    return pd.DataFrame(rows)


def main() -> None:
    """Print the live features of a header-less REES46 CSV's sessions (no history): a quick look for humans.

    Usage: ``python -m streaming.session_features FILE.csv [K]`` (K defaults to the dbt var).
    """
    import sys

    from streaming.events import CSV_COLUMNS

    frame = pd.read_csv(sys.argv[1], header=None, names=list(CSV_COLUMNS), keep_default_na=False, dtype=str)
    frame = frame.replace("", None)
    points = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(features_for_events(frame.to_dict("records"), PriorHistory(), points=points).to_string())


if __name__ == "__main__":
    main()
