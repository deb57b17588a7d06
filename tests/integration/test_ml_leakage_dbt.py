"""Leakage guard on the dbt feature SQL: events after a prediction point cannot change its features.

Bronze rows are written, ``dbt run --select +fct_purchase_intent_features +fct_category_features`` builds both feature
marts in-process (reusing the test Spark session), then every event after a cut-off
time is removed or rewritten (more purchases, other prices) and the marts are rebuilt.
Features of every prediction point at or before the cut-off must be identical in both
marts (history, affinity and price features included), while some labels and category
targets must change (so the rewrite did reach the future the labels look at). No
point may have a purchase among its first k events: the label would then be about
a session that has already bought. Finally the pipeline trains on the real mart read
from the Spark catalog.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import train as train_mod
from ml.feature_contract import PURCHASE_LABEL, PURCHASE_TABLE, feature_columns, read_mart, target_columns
from ml.models import ModelConfig
from streaming.session_features import first_purchase, normalise, split_sessions

pytestmark = pytest.mark.integration

MART = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts" / "fct_purchase_intent_features.sql"


def _build(spark, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both feature marts (purchase, category) built from ``events`` alone."""
    from tests.integration.dbt_support import dbt, ensure_quarantine, write_bronze

    write_bronze(spark, events, mode="overwrite")
    ensure_quarantine(spark)
    dbt("seed")  # the mart's category list comes from a seed, which `dbt run` does not load
    dbt("run", "--select", "+fct_purchase_intent_features", "+fct_category_features", "--full-refresh")
    return read_mart("purchase", spark=spark), read_mart("category", spark=spark)


@pytest.mark.skipif(not MART.exists(), reason="the dbt mart fct_purchase_intent_features is not built in this checkout yet")
def test_features_at_a_point_ignore_later_events_and_the_mart_trains(spark, mlflow_uri: str, tmp_path: Path) -> None:
    from tests.integration.dbt_support import synthetic_events

    events = synthetic_events(n_users=80, days=5, seed=11)
    # whole days: a null session running past the last midnight would be a test day of one session
    events = events[events["event_time"] < pd.Timestamp("2019-11-06")].reset_index(drop=True)
    keep = np.random.default_rng(0).random(len(events)) < 0.6  # of the later events, ~60% stay
    cutoff = _cutoff_inside_a_session(events, keep)

    later = events["event_time"] > cutoff
    changed = events[~later | keep].copy()  # drop ~40% of later events
    rewrite = changed["event_time"] > cutoff
    changed.loc[rewrite, "event_type"] = "purchase"
    changed.loc[rewrite, "price"] = changed.loc[rewrite, "price"] * 3 + 1
    # and into a category no session has touched before (the category target: one not touched yet, reached later)
    changed.loc[rewrite, "category_code"] = "stationery.cartrige"
    after, after_category = _build(spark, changed)
    # built last, so that training reads it: after the rewrite, sessions past the cut-off
    # buy at their first event and have no point, too few for the test window
    before, before_category = _build(spark, events)

    keys = ["session_id", "prediction_point"]
    for old, new, labels in (
        (before, after, [PURCHASE_LABEL]),
        (before_category, after_category, target_columns(list(before_category.columns))),
    ):
        features = feature_columns(list(old.columns))
        early = old[old["prediction_time"] <= cutoff].set_index(keys).sort_index()
        same = new.set_index(keys).reindex(early.index)
        assert len(early) > 20 and not same[features].isna().any().any(), "points before the cut-off must all still exist"
        pd.testing.assert_frame_equal(early[features], same[features], check_exact=False, rtol=1e-9)
        assert (early[labels] != same[labels]).any().any(), "the rewrite should have changed some future labels"
    for mart, source in ((before, events), (after, changed)):
        _assert_points_precede_the_first_purchase(mart, source)

    # The real mart, read from the catalog via Arrow, trains and no single feature reveals the label.
    result = train_mod.train(
        "purchase",
        spark=spark,
        seed=1,
        val_frac=0.2,
        test_frac=0.2,
        output_dir=tmp_path,
        tracking_uri=mlflow_uri,
        experiment="it-dbt-mart",
        registered_model="purchase_intent_it_dbt",
        grid=[ModelConfig("logreg", {"C": 1.0})],
        show_progress=False,
    )
    assert result.suspicious == []
    assert spark.catalog.tableExists(PURCHASE_TABLE)


def _cutoff_inside_a_session(events: pd.DataFrame, keep: np.ndarray) -> pd.Timestamp:
    """The first event time, from the 60 % quantile of event times on, of a shop session that does not
    buy and keeps a later event: rewritten into a purchase, that event must flip the label of point 1."""
    sessions = split_sessions([normalise(e) for e in events.drop(columns=["source_file", "source_line"]).to_dict("records")])
    for start in sorted(evs[0]["event_time"] for evs in sessions.values() if first_purchase(evs) is None):
        if start < events["event_time"].quantile(0.6):
            continue
        sid = next(s for s, evs in sessions.items() if evs[0]["event_time"] == start)
        if (keep & (events["user_session"] == sid) & (events["event_time"] > start)).any():
            return pd.Timestamp(start)
    raise AssertionError("no session to cut inside")


def _assert_points_precede_the_first_purchase(mart: pd.DataFrame, events: pd.DataFrame) -> None:
    """Every row's first k events hold no purchase, and its label says whether the session buys."""
    sessions = split_sessions([normalise(e) for e in events.drop(columns=["source_file", "source_line"]).to_dict("records")])
    bought = {sid: first_purchase(evs) for sid, evs in sessions.items()}
    for sid, k, label in mart[["session_id", "prediction_point", PURCHASE_LABEL]].itertuples(index=False):
        assert bought[sid] is None or k < bought[sid], f"{sid} has a point at or after its first purchase"
        assert label == int(bought[sid] is not None), sid
    assert mart[PURCHASE_LABEL].sum() > 0
