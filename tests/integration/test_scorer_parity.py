"""Training/serving parity: dbt's feature marts and the scorer's Python features agree on every f_* value.

The same bronze events (several days, null sessions split by the timeout rule,
exact duplicates, zero prices, buy-now purchases) go through dbt (staging ->
intermediate -> fct_purchase_intent_features / fct_category_features) and through
``streaming.session_features`` with history built from bronze; every feature
column of both marts must be equal at every prediction point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.feature_contract import CATEGORY_TABLE, PURCHASE_TABLE, feature_columns
from streaming.session_features import build_history, features_for_events
from tests.integration.dbt_support import dbt, ensure_quarantine, synthetic_events, write_bronze

pytestmark = pytest.mark.integration


def test_every_mart_feature_equals_the_live_feature_on_the_same_events(spark, cfg) -> None:
    events = synthetic_events(n_users=60, days=4, seed=11)
    assert events["user_session"].isna().any() and events.duplicated(subset=list(events.columns[:9])).any()
    write_bronze(spark, events, mode="overwrite", cfg=cfg)
    ensure_quarantine(spark, cfg)
    dbt("seed")
    dbt("run", "--full-refresh", "--select", "+fct_purchase_intent_features", "+fct_category_features")
    history = build_history(spark, cfg.table_path("bronze", "events"))
    live = features_for_events(events.drop(columns=["source_file", "source_line"]).to_dict("records"), history, points=5)
    for table in (PURCHASE_TABLE, CATEGORY_TABLE):
        mart = spark.table(table).toPandas()
        feats = feature_columns(list(mart.columns))
        assert len(feats) >= 10
        merged = mart.merge(live, on=["session_id", "prediction_point"], how="outer", suffixes=("_dbt", "_live"), indicator=True)
        assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", ["session_id", "prediction_point", "_merge"]]
        assert (merged["user_id_dbt"] == merged["user_id_live"]).all()
        for f in feats:
            a, b = merged[f"{f}_dbt"].astype(float).to_numpy(), merged[f"{f}_live"].astype(float).to_numpy()
            bad = ~np.isclose(a, b, rtol=1e-9, atol=1e-9)
            assert not bad.any(), f"{table}.{f} differs on {bad.sum()} rows: " + str(
                pd.DataFrame({"session": merged.session_id[bad], "k": merged.prediction_point[bad], "dbt": a[bad], "live": b[bad]}).head()
            )
