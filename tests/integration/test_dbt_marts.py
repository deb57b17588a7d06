"""The dbt marts on the real REES46 sample agree exactly with an independent pandas computation.

The sample (683 real rows, 240 sessions) goes into bronze with the bronze contract's
schema, dbt builds everything in-process on the test SparkSession, and the session,
daily funnel and category funnel marts are recomputed here with pandas from the CSV
alone. Then every dbt data test, unit test and singular reconciliation test must pass.
"""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from ml.feature_contract import prediction_points
from tests.integration.dbt_support import REPO_ROOT, dbt, ensure_quarantine, read_rees46_csv, write_bronze

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sample_marts(spark, sample_csv, cfg) -> pd.DataFrame:
    """Bronze = the real sample; marts built from scratch. Returns the sample as pandas."""
    events = read_rees46_csv(sample_csv)
    write_bronze(spark, events, mode="overwrite", cfg=cfg)
    ensure_quarantine(spark, cfg)
    dbt("seed")
    dbt("run", "--full-refresh")
    return events


def _mart(spark, name: str) -> pd.DataFrame:
    return spark.table(f"analytics.{name}").toPandas()


def _assert_columns_equal(got: pd.DataFrame, expected: pd.DataFrame, mart: str) -> None:
    """Every column of `expected` equals the mart's, value by value as text (so 1 and 1.0 differ)."""
    for col in expected.columns:
        assert got[col].astype(str).tolist() == expected[col].astype(str).tolist(), f"{mart}.{col} differs from pandas"


def _distinct(events: pd.DataFrame) -> pd.DataFrame:
    """The sample's events without exact duplicates (the staging view keeps one of each)."""
    return events.drop_duplicates(subset=[c for c in events.columns if c not in ("source_line", "source_file")])


def _with_category_top(events: pd.DataFrame) -> pd.DataFrame:
    """category_top as staging derives it: the first level of category_code, `unknown` when empty."""
    return events.assign(category_top=events["category_code"].fillna("").str.split(".").str[0].replace("", "unknown"))


def _expected_sessions(events: pd.DataFrame) -> pd.DataFrame:
    """Sessions computed from the CSV rows with pandas only (the sample has no null sessions)."""
    e = _distinct(events)
    assert e["user_session"].notna().all()
    g = e.groupby("user_session")
    out = pd.DataFrame(
        {
            "session_start": g["event_time"].min(),
            "session_end": g["event_time"].max(),
            "n_events": g.size(),
            "n_views": g["event_type"].apply(lambda s: (s == "view").sum()),
            "n_carts": g["event_type"].apply(lambda s: (s == "cart").sum()),
            "n_purchases": g["event_type"].apply(lambda s: (s == "purchase").sum()),
            "n_distinct_products": g["product_id"].nunique(),
            "n_distinct_categories": g["category_id"].nunique(),
            "revenue": g.apply(lambda d: round(d.loc[d.event_type == "purchase", "price"].sum(), 2), include_groups=False),
        }
    )
    out["duration_seconds"] = (out.session_end - out.session_start).dt.total_seconds().astype("int64")
    out["funnel_stage"] = np.select([out.n_purchases > 0, out.n_carts > 0, out.n_views > 0], ["purchase", "cart", "view"], "none")
    out["is_bounce"] = (out.n_events == 1).astype(int)
    out["session_date"] = out.session_start.dt.date
    return out.rename_axis("session_id").sort_index()


def test_sessions_mart_equals_pandas(spark, sample_marts):
    expected = _expected_sessions(sample_marts)
    got = _mart(spark, "fct_sessions").set_index("session_id").sort_index()
    assert len(got) == 240  # the data README's count for this sample
    assert list(got.index) == list(expected.index)
    got["revenue"] = got["revenue"].map(lambda d: float(Decimal(d)))
    _assert_columns_equal(got, expected, "fct_sessions")
    assert got["session_rule"].eq("user_session").all()


def test_daily_funnel_equals_pandas(spark, sample_marts):
    s = _expected_sessions(sample_marts)
    reached_cart = (s.n_carts + s.n_purchases > 0).sum()
    purchase = (s.n_purchases > 0).sum()
    got = _mart(spark, "fct_funnel_daily")
    assert len(got) == 1
    row = got.iloc[0]
    assert row.sessions == len(s) == 240
    assert row.view_sessions == (s.n_views + s.n_carts + s.n_purchases > 0).sum()
    assert row.cart_sessions == reached_cart
    assert row.purchase_sessions == purchase
    assert row.purchase_sessions_without_cart == ((s.n_purchases > 0) & (s.n_carts == 0)).sum()
    assert row.cart_abandoned_sessions == ((s.n_carts > 0) & (s.n_purchases == 0)).sum()
    assert row.purchases == 2 and float(row.revenue) == round(s.revenue.sum(), 2)
    assert row.view_to_cart_rate == reached_cart / row.view_sessions
    assert row.cart_to_purchase_rate == purchase / reached_cart
    assert row.bounce_sessions == (s.n_events == 1).sum()


def test_category_funnel_equals_pandas(spark, sample_marts):
    e = _with_category_top(sample_marts)
    per = e.groupby(["category_top", "user_session"])["event_type"].agg(
        reached_view=lambda s: s.isin(["view", "cart", "purchase"]).any(),
        reached_cart=lambda s: s.isin(["cart", "purchase"]).any(),
        reached_purchase=lambda s: (s == "purchase").any(),
    )
    expected = per.groupby("category_top").agg(
        sessions=("reached_view", "size"),
        view_sessions=("reached_view", "sum"),
        cart_sessions=("reached_cart", "sum"),
        purchase_sessions=("reached_purchase", "sum"),
    )
    got = _mart(spark, "fct_funnel_category_daily").set_index("category_top").sort_index()
    assert list(got.index) == list(expected.index)
    for col in expected.columns:
        assert got[col].tolist() == expected[col].astype(int).tolist(), col
    assert got.loc["unknown", "sessions"] > 0  # 269 rows of the sample have no category_code


def _expected_users(events: pd.DataFrame) -> pd.DataFrame:
    """Per user, with pandas: history totals and the three categories with most events (ties by name)."""
    e = _with_category_top(_distinct(events))
    bought = e[e.event_type == "purchase"]
    g = e.groupby("user_id")
    out = pd.DataFrame(
        {
            "sessions": g["user_session"].nunique(),
            "purchase_sessions": bought.groupby("user_id")["user_session"].nunique(),
            "purchases": bought.groupby("user_id").size(),
            "total_spend": bought.groupby("user_id")["price"].sum().round(2),
            "events": g.size(),
            "first_seen": g["event_time"].min(),
            "last_seen": g["event_time"].max(),
        }
    )
    out = out.fillna({"purchase_sessions": 0, "purchases": 0, "total_spend": 0.0}).astype({"purchase_sessions": int, "purchases": int})
    counts = e.groupby(["user_id", "category_top"]).size().rename("n").reset_index()
    ranked = counts.sort_values(["user_id", "n", "category_top"], ascending=[True, False, True])
    favourites = ranked.groupby("user_id")["category_top"].agg(list)
    for rank in (1, 2, 3):
        out[f"favourite_category_{rank}"] = favourites.map(lambda cats, r=rank: cats[r - 1] if len(cats) >= r else None)
    out["n_distinct_top_categories"] = favourites.map(len)
    return out.sort_index()


def test_users_mart_equals_pandas(spark, sample_marts):
    expected = _expected_users(sample_marts)
    got = _mart(spark, "dim_users").set_index("user_id").sort_index()
    assert list(got.index) == list(expected.index)
    got["total_spend"] = got["total_spend"].map(lambda d: float(Decimal(d)))
    _assert_columns_equal(got, expected, "dim_users")
    # the sample holds users with three categories and with fewer, and ties for first place (broken by name)
    assert got["favourite_category_3"].isna().any() and got["favourite_category_3"].notna().any()
    counts = _with_category_top(_distinct(sample_marts)).groupby(["user_id", "category_top"]).size()
    counts = counts.groupby("user_id").agg(lambda n: sorted(n, reverse=True)[:2])
    assert counts.map(lambda n: len(n) == 2 and n[0] == n[1]).any()


def _expected_points(events: pd.DataFrame) -> pd.DataFrame:
    """Per session, with pandas: its last prediction point by the marts' rule (k <= K, before the first
    purchase) and whether it buys. Events in the marts' order: time, then view < cart < remove < purchase."""
    e = _distinct(events)
    rank = e.event_type.map({"view": 1, "cart": 2, "remove_from_cart": 3, "purchase": 4})
    e = e.assign(rank=rank).sort_values(["user_session", "event_time", "rank", "product_id"])
    g = e.groupby("user_session").event_type
    before_purchase = g.apply(lambda t: int((t == "purchase").cumsum().eq(0).sum()))
    out = pd.DataFrame({"n_events": g.size(), "before_purchase": before_purchase, "buys": g.apply(lambda t: (t == "purchase").any())})
    out["last_point"] = out[["n_events", "before_purchase"]].min(axis=1).clip(upper=prediction_points())
    return out


def test_feature_marts_follow_the_ml_contract(spark, sample_marts):
    intent = _mart(spark, "fct_purchase_intent_features")
    expected = _expected_points(sample_marts)
    # one row per (session, k) for k = 1..min(K, session length, events before the first purchase)
    assert len(intent) == int(expected.last_point.sum())
    got = intent.groupby("session_id").prediction_point.max()
    assert got.to_dict() == expected.last_point[expected.last_point > 0].to_dict()
    assert sorted(expected.last_point[expected.buys]) == [0, 1]  # of the two buyers one buys first: it has no point
    features = [c for c in intent.columns if c.startswith("f_")]
    assert len(features) >= 20 and "f_n_purchases" not in features
    assert {"f_price_vs_category", "f_product_prior_cart_rate", "f_user_prior_category_share"} <= set(features)
    assert intent[features].notna().all().all()
    assert set(intent.label_will_purchase) <= {0, 1}
    # label: the session buys later; the sample's one buyer with an event before its purchase makes the 1
    labels = intent.set_index("session_id").label_will_purchase
    assert labels.sum() == 1 and (labels.groupby(level=0).max() == expected.buys.reindex(labels.index.unique()).astype(int)).all()
    assert (intent.f_n_events == intent.prediction_point).all()
    categories = _mart(spark, "fct_category_features")
    assert len(categories) == len(intent)
    seed = pd.read_csv(REPO_ROOT / "dbt_project" / "seeds" / "top_level_categories.csv").category_top
    assert [c for c in categories.columns if c.startswith("y_")] == [f"y_{c}" for c in seed]


def test_dbt_leaves_the_session_overwriting_whole_tables(spark, sample_marts):
    """dbt-spark turns dynamic partition overwrite on for the insert_overwrite models and leaves it;
    the project's post-hook turns it back, or this session's own overwrite writes would keep old partitions."""
    assert spark.conf.get("spark.sql.sources.partitionOverwriteMode").upper() == "STATIC"


def test_all_dbt_tests_pass(spark, sample_marts):
    """Generic, custom generic, singular (reconciliation) and unit tests, plus docs generation."""
    result = dbt("test")
    names = {r.node.name for r in result.result}
    assert any("assert_every_staged_event_in_exactly_one_session" in n for n in names)
    assert any("intent_features_see_only_events_up_to_the_point" in n for n in names)
    assert any("intent_points_stop_at_the_first_purchase_and_at_k" in n for n in names)
    assert any("category_targets_are_categories_not_touched_yet" in n for n in names)
    assert any("assert_feature_marts_share_point_features" in n for n in names)
    dbt("docs", "generate")


# Rows of a scratch table, each breaking the rules named beside it (none: it breaks none;
# a null passes every rule but not_null and binary).
RULE_CASES = {
    1: (1, 1, 0, 0.5, 1, 2, "'view'", 1.0, ""),
    2: ("null", 1, 0, 0.5, 1, 2, "'view'", 1.0, "id is null"),
    3: (3, 2, 0, 0.5, 1, 2, "'view'", 1.0, "flag is not 0 or 1"),
    4: (4, "null", 0, 0.5, 1, 2, "'view'", 1.0, "flag is not 0 or 1"),
    5: (5, 0, -1, 0.5, 1, 2, "'cart'", 1.0, "n < 0"),
    6: (6, 0, 0, 1.5, 1, 2, "'cart'", 1.0, "rate outside [0, 1]"),
    7: (7, 0, 0, 0.5, 3, 2, "'cart'", 1.0, "step > previous_step"),
    8: (8, 0, 0, 0.5, 1, 2, "'oops'", 1.0, "kind not accepted"),
    9: (9, 0, 0, 0.5, 1, 2, "'view'", "null", "f_b is null"),
    10: (10, 1, -2, 0.5, 1, 2, "'x'", 1.0, "n < 0; kind not accepted"),
    11: (11, 0, "null", "null", "null", 2, "null", 1.0, ""),
}


def test_column_rules_find_and_name_every_broken_rule(spark, sample_marts):
    """The one-scan rule test (macros/tests/generic_tests.sql): each offending row names the rules it breaks."""
    values = ", ".join(
        f"({i}, {flag}, cast({n} as bigint), cast({rate} as double), {step}, {prev}, {kind}, 1.0, cast({f_b} as double))"
        for i, flag, n, rate, step, prev, kind, f_b, _ in RULE_CASES.values()
    )
    spark.sql(
        "create or replace table analytics.column_rules_cases using delta as select * from values "
        f"{values} as t(id, flag, n, rate, step, previous_step, kind, f_a, f_b)"
    )
    rules = (
        "not_null=['id', 'f_*'], binary=['flag'], non_negative=['n'], between_zero_and_one=['rate'], "
        "not_greater_than={'step': 'previous_step'}, accepted_values={'kind': ['view', 'cart']}"
    )
    relation = "api.Relation.create(schema='analytics', identifier='column_rules_cases')"
    try:
        [compiled] = dbt("compile", "--inline", f"{{{{ test_column_rules({relation}, {rules}) }}}}").result
        rows = spark.sql(compiled.node.compiled_code).collect()
        with pytest.raises(AssertionError, match="no column matches g_"):
            dbt("compile", "--inline", f"{{{{ test_column_rules({relation}, not_null=['g_*']) }}}}")
    finally:
        spark.sql("drop table if exists analytics.column_rules_cases")
    expected = {(case[0] if case[0] != "null" else None): case[-1] for case in RULE_CASES.values() if case[-1]}
    assert {r.id: r.broken_rules for r in rows} == expected


def test_delta_statistics_cover_only_the_filtered_columns(spark, sample_marts):
    """Files of the sessionized events carry min/max of ingested_at and event_time only
    (macros/delta_stats.sql): the arrival window still skips old files by ingested_at."""
    detail = spark.sql("describe detail analytics.int_events_sessionized").first()
    assert detail.properties["delta.dataSkippingStatsColumns"] == "ingested_at, event_time"
    stats = spark.sql(f"select add.stats from json.`{detail.location}/_delta_log/*.json` where add is not null").collect()
    assert stats
    for row in stats:
        assert set(json.loads(row.stats)["minValues"]) == {"ingested_at", "event_time"}
