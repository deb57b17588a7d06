"""Incremental dbt runs over three loads give exactly the marts of a full refresh over all.

Load 1 is ten days of synthetic events minus the last three days and minus some events
held back (late arrivals). Load 2 is only a few events of the FIRST day, arriving a
week late: no lookback would reach them; the arrival watermark does. Load 3 brings the
last days plus the other late events. After each `dbt run` (incremental), and after a
fourth run with nothing new, every incremental mart must equal, row for row, what
`dbt run --full-refresh` builds over all three loads.

Load 3's earliest event is on 2019-11-05, so its window starts there and events are
read from 2019-11-04. Hand-made sessions sit on those edges, so a window one day too
short, or a read that does not reach `max_session_days` back, gives a different mart:
a shop session and a null-session chain crossing midnight into the window's first
day, whose in-window half arrives late. And a late null-session event that bridges two
inactivity sessions: the later one no longer exists after load 3, so its rows must go
from every mart (a merge alone only inserts and updates); a product viewed in one of the
two and carted in the other, not named by the late event, then counts one session, not
two, in fct_product_funnel. The late halves end in a purchase, so the feature marts'
points and labels of the earlier halves change too.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from tests.integration.dbt_support import dbt, ensure_quarantine, synthetic_events, write_bronze

pytestmark = pytest.mark.integration

INCREMENTAL_MODELS = {
    "int_events_sessionized": ["event_id"],
    "int_users_days_accumulated": ["user_id", "event_date"],
    "int_products_days_accumulated": ["product_id", "event_date"],
    "int_categories_days_accumulated": ["category_top", "event_date"],
    "int_user_products_days_accumulated": ["user_product", "event_date"],
    "int_category_affinity_days_accumulated": ["category_top", "event_date"],
    "int_product_funnel_days": ["product_id", "session_date"],
    "fct_sessions": ["session_id"],
    "fct_funnel_daily": ["session_date"],
    "fct_funnel_category_daily": ["session_date", "category_top"],
    "fct_funnel_brand_daily": ["session_date", "brand"],
    "dim_users": ["user_id"],
    "fct_product_funnel": ["product_id"],
    "fct_purchase_intent_features": ["session_id", "prediction_point"],
    "fct_category_features": ["session_id", "prediction_point"],
}

# products no synthetic event has (those are 1_000_000 + 100 * category + 0..4)
JOINED_PRODUCT = 9_000_002
LATE_PRODUCT = 9_000_003


def _edge_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(load 1 rows, late load 3 rows): sessions crossing midnight into the window's first day,
    and two inactivity sessions that a late event joins into one."""

    def event(time: str, event_type: str, user: int, session: str | None, product: int = 1_000_001) -> dict:
        return {
            "event_time": pd.Timestamp(time),
            "event_type": event_type,
            "product_id": product,
            "category_id": 2_053_013_555_631_882_000,
            "category_code": "electronics.smartphone",
            "brand": "samsung",
            "price": 250.0,
            "user_id": user,
            "user_session": session,
        }

    first = [
        event("2019-11-04 23:50:00", "view", 900_000_001, "midnight-shop"),
        event("2019-11-04 23:55:00", "view", 900_000_002, None),
        # a product only these two sessions have: viewed in one, carted 45 minutes later in a new one
        event("2019-11-06 10:00:00", "view", 900_000_003, None, JOINED_PRODUCT),
        event("2019-11-06 10:45:00", "cart", 900_000_003, None, JOINED_PRODUCT),
    ]
    late = [
        # 5 minutes after midnight: the same shop session, bought on the window's first day
        event("2019-11-05 00:05:00", "cart", 900_000_001, "midnight-shop"),
        event("2019-11-05 00:06:00", "purchase", 900_000_001, "midnight-shop"),
        # 20 minutes after the user's previous null-session event, the day before: same session
        event("2019-11-05 00:15:00", "purchase", 900_000_002, None),
        # fills the 45-minute gap: one session of three events from 10:00. Of another product,
        # so the joined sessions' product changes though no arrived event names it
        event("2019-11-06 10:20:00", "view", 900_000_003, None, LATE_PRODUCT),
    ]
    extra = pd.DataFrame(first + late)
    extra["source_file"] = "edges"
    extra["source_line"] = range(1, len(extra) + 1)
    return extra.iloc[: len(first)], extra.iloc[len(first) :]


# a model of each look-up that broadcast_if_small hints, and the alias it broadcasts
BROADCAST_KEYS = {
    "fct_sessions": "touched_sessions",
    "fct_purchase_intent_features": "touched_sessions",
    "dim_users": "touched_users",
    "fct_product_funnel": "touched_products",
    "int_users_days_accumulated": "window_keys",
}


def _compiled(result) -> dict[str, str]:
    """The compiled SQL of each model a `dbt run` ran."""
    return {r.node.name: r.node.compiled_code for r in result.result if r.node.resource_type == "model"}


def _snapshot(spark) -> dict[str, pd.DataFrame]:
    out = {}
    for name, key in INCREMENTAL_MODELS.items():
        df = spark.table(f"analytics.{name}").toPandas()
        out[name] = df.sort_values(key).reset_index(drop=True).astype(str)
    return out


def test_incremental_runs_equal_full_refresh(spark, cfg):
    events = synthetic_events(n_users=80, days=10, seed=11)
    cutoff = pd.Timestamp("2019-11-08")
    late = (events.event_time >= pd.Timestamp("2019-11-07")) & (events.event_time < cutoff) & (events.index % 5 == 0)
    week_late = (events.event_time < pd.Timestamp("2019-11-02")) & (events.index % 7 == 3)
    edges_first, edges_late = _edge_events()
    load1 = pd.concat([events[(events.event_time < cutoff) & ~late & ~week_late], edges_first], ignore_index=True)
    load2 = events[week_late]
    load3 = pd.concat([events[(events.event_time >= cutoff) | late], edges_late], ignore_index=True)
    assert late.sum() > 0 and week_late.sum() > 0 and len(load3) > late.sum()

    write_bronze(spark, load1, mode="overwrite", cfg=cfg, ingested_at=datetime(2019, 11, 8))
    ensure_quarantine(spark, cfg)
    dbt("seed")
    dbt("run", "--full-refresh")
    first = spark.table("analytics.fct_sessions").count()

    write_bronze(spark, load2, mode="append", cfg=cfg, ingested_at=datetime(2019, 11, 9))
    # both ways of looking the run's keys up in the history (macros/incremental.sql,
    # broadcast_if_small): shuffled by key here, broadcast in the next run
    shuffled = _compiled(dbt("run", "--vars", "{broadcast_window_events: 0}"))
    write_bronze(spark, load3, mode="append", cfg=cfg, ingested_at=datetime(2019, 11, 11))
    broadcast = _compiled(dbt("run"))
    for model, alias in BROADCAST_KEYS.items():
        hint = f"BROADCAST({alias})"
        assert hint not in shuffled[model] and hint in broadcast[model], model
    incremental = _snapshot(spark)
    assert len(incremental["fct_sessions"]) > first  # the third load did add sessions
    # the feature marts cache their run's rows for two writes, and free them (release_cached_rows)
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()
    dbt("run")  # nothing arrived: nothing may change
    unchanged = _snapshot(spark)

    dbt("run", "--full-refresh")
    full = _snapshot(spark)
    for name in INCREMENTAL_MODELS:
        pd.testing.assert_frame_equal(incremental[name], full[name], obj=name)
        pd.testing.assert_frame_equal(unchanged[name], full[name], obj=name)

    # the edge sessions were really joined across midnight (not only equal in both runs)
    sessions = full["fct_sessions"].set_index("session_id")
    assert sessions.loc["midnight-shop", "n_events"] == "3" and sessions.loc["midnight-shop", "funnel_stage"] == "purchase"
    assert sessions.loc["timeout-900000002-20191104235500", "n_events"] == "2"
    assert sessions.loc["timeout-900000003-20191106100000", "n_events"] == "3"
    assert "timeout-900000003-20191106104500" not in sessions.index
    # viewed and carted in one session now, no longer a view session and a cart session
    joined = full["fct_product_funnel"].set_index("product_id").loc[str(JOINED_PRODUCT)]
    assert (joined.view_sessions, joined.cart_sessions) == ("1", "1")
    # the late purchases: points before them only, labelled as converting (load 1 alone had no purchase)
    intent = full["fct_purchase_intent_features"]
    for sid, points in (("midnight-shop", ["1", "2"]), ("timeout-900000002-20191104235500", ["1"])):
        rows = intent[intent.session_id == sid]
        assert rows.prediction_point.tolist() == points and set(rows.label_will_purchase) == {"1"}, sid

    # and the marts still reconcile with staging after the merge
    dbt("test", "--select", "test_type:singular")
