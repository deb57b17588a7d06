"""Training/serving parity: dbt's feature marts and the scorer agree on which points exist and on every f_* value.

The same bronze events (several days, null sessions split by the timeout rule,
exact duplicates, zero prices, buy-now purchases, a multi-item order, a session
longer than K) go through dbt (staging -> intermediate -> fct_purchase_intent_features
/ fct_category_features) and through ``streaming.session_features`` with history built
from bronze; every feature column of both marts must be equal at every prediction
point. Then the scorer's own decisions (``streaming.scorer.score_sessions``), fed each
session one event per batch, must score exactly the marts' points: none at or after a
session's first purchase (that session is recorded converted, once), none past K.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.feature_contract import CATEGORY_TABLE, PURCHASE_TABLE, feature_columns, prediction_points
from streaming.scorer import score_sessions
from streaming.session_features import PriorHistory, build_history, features_for_events, normalise, split_sessions
from tests.integration.dbt_support import dbt, ensure_quarantine, synthetic_events, write_bronze

pytestmark = pytest.mark.integration

BUYS_AT_3 = "parity-buys-at-3"
LONG = "parity-longer-than-k"


def _rule_sessions(k: int) -> pd.DataFrame:
    """A multi-item order (two purchase rows in one second) at event 3, and a session of K + 3 views."""

    def event(session: str, user: int, minute: int, event_type: str, product: int) -> dict:
        return {
            "event_time": datetime(2019, 11, 3, 9, 0) + timedelta(minutes=minute),
            "event_type": event_type,
            "product_id": 1_000_000 + product,
            "category_id": 2_053_013_555_631_882_000,
            "category_code": "electronics.smartphone",
            "brand": "samsung",
            "price": 100.0 + product,
            "user_id": user,
            "user_session": session,
        }

    order = [(0, "view", 1), (1, "cart", 1), (2, "purchase", 1), (2, "purchase", 2), (3, "view", 3)]
    rows = [event(BUYS_AT_3, 900_000_101, minute, t, p) for minute, t, p in order]
    rows += [event(LONG, 900_000_102, i, "view", i % 4) for i in range(k + 3)]
    out = pd.DataFrame(rows)
    out["source_file"], out["source_line"] = "parity", range(1, len(out) + 1)
    return out


class _ConstantModels:
    """Stands in for the champions: the rule, not the model, decides what is scored."""

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=features.index)
        out["purchase_probability"], out["purchase_label"] = 0.5, 1
        for col in ("top_1", "top_2", "top_3", "category_probabilities", "purchase_model_version", "category_model_version"):
            out[col] = None
        return out


def _scorer_rows(sessions: dict[str, list[dict]]) -> pd.DataFrame:
    """Every row the scorer writes when each session's events arrive one per batch, in session order."""
    rows = []
    for sid, evs in sessions.items():
        for n in range(1, len(evs) + 1):
            batch, _ = score_sessions(
                {sid: evs[:n]},
                PriorHistory(),
                _ConstantModels(),
                kafka_ts={},
                batch_id=n,
                source="stream",
                history_cap=20,
                added={bytes.fromhex(evs[n - 1]["event_id"])},
            )
            rows.append(batch)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def marts(spark, cfg) -> pd.DataFrame:
    """Bronze = synthetic events plus the rule's sessions; both marts built. Returns the events."""
    events = pd.concat([synthetic_events(n_users=60, days=4, seed=11), _rule_sessions(prediction_points())], ignore_index=True)
    assert events["user_session"].isna().any() and events.duplicated(subset=list(events.columns[:9])).any()
    write_bronze(spark, events, mode="overwrite", cfg=cfg)
    ensure_quarantine(spark, cfg)
    dbt("seed")
    dbt("run", "--full-refresh", "--select", "+fct_purchase_intent_features", "+fct_category_features")
    return events


def test_every_mart_feature_equals_the_live_feature_on_the_same_events(spark, cfg, marts) -> None:
    history = build_history(spark, cfg.table_path("bronze", "events"), start_days=None)
    live = features_for_events(marts.drop(columns=["source_file", "source_line"]).to_dict("records"), history)
    for table in (PURCHASE_TABLE, CATEGORY_TABLE):
        mart = spark.table(table).toPandas()
        feats = feature_columns(list(mart.columns))
        assert len(feats) >= 10
        assert set(feats) <= set(live.columns), f"{table} has features the scorer does not compute: {set(feats) - set(live.columns)}"
        merged = mart.merge(live, on=["session_id", "prediction_point"], how="outer", suffixes=("_dbt", "_live"), indicator=True)
        assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", ["session_id", "prediction_point", "_merge"]]
        assert (merged["user_id_dbt"] == merged["user_id_live"]).all()
        for f in feats:
            a, b = merged[f"{f}_dbt"].astype(float).to_numpy(), merged[f"{f}_live"].astype(float).to_numpy()
            bad = ~np.isclose(a, b, rtol=1e-9, atol=1e-9)
            assert not bad.any(), f"{table}.{f} differs on {bad.sum()} rows: " + str(
                pd.DataFrame({"session": merged.session_id[bad], "k": merged.prediction_point[bad], "dbt": a[bad], "live": b[bad]}).head()
            )
    # the history features the synthetic days must reach for their equality to mean something
    for f in ("f_user_prior_product_views", "f_user_sessions_earlier_today", "f_affinity_electronics", "f_price_vs_category"):
        assert (live[f] > 0).any(), f"no point has {f} > 0: the parity data does not exercise it"
    both = {f for table in (PURCHASE_TABLE, CATEGORY_TABLE) for f in feature_columns(spark.table(table).columns)}
    assert both == set(feature_columns(list(live.columns))), "point_features computes exactly the marts' features"


def test_the_scorer_scores_exactly_the_marts_points(spark, marts) -> None:
    k = prediction_points()
    mart = spark.table(PURCHASE_TABLE).toPandas()
    points = mart.groupby("session_id").prediction_point.apply(sorted).to_dict()
    assert points[BUYS_AT_3] == [1, 2], "a session that buys at event 3 has points 1 and 2 only"
    assert points[LONG] == list(range(1, k + 1)), "a session longer than K has points 1..K"
    assert mart.loc[mart.session_id == BUYS_AT_3, "label_will_purchase"].tolist() == [1, 1]
    assert spark.table(CATEGORY_TABLE).toPandas().groupby("session_id").prediction_point.apply(sorted).to_dict() == points

    sessions = split_sessions([normalise(e) for e in marts.drop(columns=["source_file", "source_line"]).to_dict("records")])
    rows = _scorer_rows(sessions)
    is_converted = rows.converted.astype(bool)
    scored = rows[~is_converted].groupby("session_id").prediction_point.apply(sorted).to_dict()
    assert scored == points, "the scorer scores a session at exactly the points the marts train on"
    assert rows[~is_converted].purchase_probability.notna().all()
    converted = rows[is_converted]
    assert converted.purchase_probability.isna().all() and not converted.session_id.duplicated().any()
    buyers = {sid for sid, evs in sessions.items() if any(e["event_type"] == "purchase" for e in evs)}
    assert set(converted.session_id) == buyers, "every session that buys is recorded converted, once"
    assert converted.set_index("session_id").loc[BUYS_AT_3, "prediction_point"] == 3
    assert LONG not in set(converted.session_id) and max(scored[LONG]) == k
