"""Pure logic of the ML pipeline: the feature contract, the time split, the metrics and baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ml import baselines, metrics, synthetic
from ml.feature_contract import PURCHASE_LABEL, MartError, cart_feature, feature_columns, read_mart, target_columns, validate
from ml.splits import SplitError, time_split


@pytest.fixture(scope="module")
def purchase() -> pd.DataFrame:
    return synthetic.purchase_frame(6000, seed=3)


def test_features_are_discovered_by_prefix_so_the_mart_can_grow(purchase: pd.DataFrame) -> None:
    grown = purchase.assign(f_new_feature=1.0, note="not a feature")
    cols = feature_columns(list(grown.columns))
    assert cols[-1] == "f_new_feature"
    assert "note" not in cols and PURCHASE_LABEL not in cols and "prediction_point" not in cols
    assert cart_feature(cols) == "f_n_carts"


def test_category_targets_are_the_y_columns_not_features_ending_in_y() -> None:
    frame = synthetic.category_frame(500, seed=1)
    targets = target_columns(list(frame.columns))
    assert len(targets) == 14 and all(t.startswith("y_") for t in targets)
    assert "f_session_cnt_country_yard" not in targets


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.iloc[0:0], "is empty"),
        (lambda f: f.drop(columns=[PURCHASE_LABEL]), "no label column"),
        (lambda f: f.drop(columns=["session_id"]), "lacks key column"),
        (lambda f: f.assign(f_n_carts=np.nan), "contain nulls"),
        (lambda f: f.assign(f_text="x"), "not numeric"),
        (lambda f: f.drop(columns=feature_columns(list(f.columns))), "no feature columns"),
    ],
)
def test_contract_violations_give_a_clear_error(purchase: pd.DataFrame, mutate, message: str) -> None:
    with pytest.raises(MartError, match=message):
        read_mart("purchase", mutate(purchase))


def test_validate_normalises_types(purchase: pd.DataFrame) -> None:
    frame = validate(purchase.assign(f_n_carts=purchase["f_n_carts"].astype(int)), "purchase", "x")
    assert frame["f_n_carts"].dtype == np.float64
    assert frame[PURCHASE_LABEL].dtype == np.int64


def test_time_split_keeps_sessions_whole_and_orders_windows(purchase: pd.DataFrame) -> None:
    split = time_split(purchase, 0.2, 0.2)
    sessions = [set(part["session_id"]) for part in (split.train, split.val, split.test)]
    assert not (sessions[0] & sessions[1]) and not (sessions[1] & sessions[2]) and not (sessions[0] & sessions[2])
    assert len(split.train) + len(split.val) + len(split.test) == len(purchase)
    starts = [part.groupby("session_id")["prediction_time"].min() for part in (split.train, split.val, split.test)]
    assert starts[0].max() < starts[1].min() and starts[1].max() < starts[2].min()
    assert split.mode == "days"
    # 14 days: ceil(20%) = 3 test days and 3 validation days.
    assert pd.Timestamp(split.boundaries[1]) - pd.Timestamp(split.boundaries[0]) == pd.Timedelta(days=3)


def test_time_split_falls_back_to_time_quantiles_with_few_days() -> None:
    frame = synthetic.purchase_frame(2000, days=1, seed=2)
    split = time_split(frame, 0.25, 0.25)
    assert split.mode == "time"
    assert split.train["prediction_time"].min() < split.test["prediction_time"].min()


def test_time_split_rejects_impossible_fractions(purchase: pd.DataFrame) -> None:
    with pytest.raises(SplitError):
        time_split(purchase, 0.6, 0.5)
    with pytest.raises(SplitError, match="days"):
        time_split(synthetic.purchase_frame(2000, days=3, seed=2), 0.4, 0.4)


def test_threshold_maximises_f1_like_brute_force() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    p = np.clip(0.3 * y + rng.random(3000) * 0.8, 0, 1)
    t = metrics.choose_threshold(y, p)
    brute = max(f1_score(y, p >= c) for c in np.unique(p))
    assert f1_score(y, p >= t) == pytest.approx(brute)


def test_threshold_applies_to_raw_scores_not_clipped_ones() -> None:
    y = np.array([0, 0, 1, 1])
    m = metrics.binary_metrics(y, np.array([0.0, 0.0, 1.0, 1.0]), threshold=1.0)
    assert m["f1"] == 1.0 and m["roc_auc"] == 1.0


def test_topk_metrics_on_a_hand_made_example() -> None:
    y = np.array([[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]])
    s = np.array([[0.9, 0.8, 0.7, 0.1, 0.0], [0.5, 0.4, 0.3, 0.2, 0.1], [0.9, 0.1, 0.8, 0.7, 0.0]])
    m = metrics.topk_metrics(y, s, k=3)
    # row 0: top3 = {0,1,2}, hits 1 of 2 positives; row 1 has no target (left out); row 2: top3 = {0,2,3}, no hit.
    assert m["hit_at_3"] == pytest.approx(0.5)
    assert m["precision_at_3"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["recall_at_3"] == pytest.approx((0.5 + 0) / 2)
    assert m["rows_with_target"] == pytest.approx(2 / 3)


def test_last_viewed_baseline_falls_back_when_the_mart_lacks_counts() -> None:
    frame = synthetic.category_frame(800, seed=4)
    targets = target_columns(list(frame.columns))
    assert baselines.last_viewed_source(list(frame.columns), targets) == "session_counts"
    no_counts = frame.drop(columns=[c for c in frame.columns if c.startswith("f_session_cnt_")])
    assert baselines.last_viewed_source(list(no_counts.columns), targets) == "user_shares"
    bare = no_counts.drop(columns=[c for c in no_counts.columns if c.startswith("f_user_share_")])
    assert baselines.last_viewed_source(list(bare.columns), targets) == "popularity"
    scores = baselines.category_baselines(bare, bare, targets)
    np.testing.assert_allclose(scores["last_viewed"], scores["popularity"])
    # The dbt mart's spelling (f_so_far_<c>) is recognised too.
    renamed = frame.rename(columns=lambda c: c.replace("f_session_cnt_", "f_so_far_"))
    assert baselines.last_viewed_source(list(renamed.columns), targets) == "session_counts"
    np.testing.assert_allclose(
        baselines.category_baselines(renamed, renamed, targets)["last_viewed"],
        baselines.category_baselines(frame, frame, targets)["last_viewed"],
    )


def test_last_viewed_baseline_ranks_the_categories_seen_in_the_session_first() -> None:
    frame = synthetic.category_frame(800, seed=4)
    targets = target_columns(list(frame.columns))
    row = frame.iloc[[0]].copy()
    for t in targets:
        row[f"f_session_cnt_{t[2:]}"] = 0.0
    row["f_session_cnt_stationery"] = 2.0
    top = metrics.top_k(baselines.category_baselines(frame, row, targets)["last_viewed"], 1)[0, 0]
    assert targets[top] == "y_stationery"


def test_a_feature_that_reveals_the_label_is_flagged(purchase: pd.DataFrame) -> None:
    X = purchase[["f_n_carts"]].assign(f_leak=purchase[PURCHASE_LABEL] * 3.0).to_numpy()
    assert metrics.suspicious_features(X, purchase[PURCHASE_LABEL].to_numpy(), ["f_n_carts", "f_leak"]) == ["f_leak"]
