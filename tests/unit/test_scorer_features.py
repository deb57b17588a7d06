"""Pure logic of the scorer: live features, the prediction-point rule, sessionization, history lookups, documents, input checks."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from ml.feature_contract import prediction_points
from streaming.scorer import final_row, score_sessions
from streaming.session_admin import InputError, parse_user_id, session_filter
from streaming.session_features import PriorHistory, features_for_events, last_point, normalise, point_features, split_sessions
from streaming.session_store import merge_history


def ev(
    t: str,
    typ: str,
    product: int = 1,
    price: float = 10.0,
    session: str | None = "s1",
    user: int = 7,
    code: str | None = "electronics.phone",
):
    return {
        "event_time": datetime.fromisoformat(t),
        "event_type": typ,
        "product_id": product,
        "category_id": 100 + product,
        "category_code": code,
        "brand": None,
        "price": price,
        "user_id": user,
        "user_session": session,
    }


def test_in_session_features_follow_the_mart_rules() -> None:
    events = [
        ev("2019-11-03 10:00:00", "view", 1, 10.0),
        ev("2019-11-03 10:00:30", "view", 1, 10.0),
        ev("2019-11-03 10:01:00", "cart", 2, 30.0, code=None),
        ev("2019-11-03 10:02:00", "remove_from_cart", 2, 30.0, code=None),
        ev("2019-11-03 10:02:00", "cart", 3, 5.0),  # same second: funnel rank puts cart before remove
    ]
    s = split_sessions([normalise(e) for e in events])["s1"]
    assert [e["event_type"] for e in s] == ["view", "view", "cart", "cart", "remove_from_cart"]
    f = point_features(s, 5, PriorHistory())
    assert f["f_n_events"] == 5 and f["f_n_views"] == 2 and f["f_n_carts"] == 2 and f["f_n_removes"] == 1
    assert f["f_cart_value"] == 5.0  # 30 + 5 - 30
    assert f["f_repeat_product_views"] == 1
    assert f["f_seconds_in_session"] == 120 and f["f_seconds_since_prev_event"] == 0
    assert f["f_day_of_week"] == 1  # 2019-11-03 is a Sunday: Spark's dayofweek = 1
    assert f["f_so_far_electronics"] == 3 and f["f_so_far_unknown"] == 2
    assert f["f_last_is_cart"] == 0 and f["f_has_cart"] == 1
    assert "f_n_purchases" not in f  # always 0 at a point that exists
    assert f["f_price_vs_category"] == -1 and f["f_product_prior_cart_rate"] == 0 and f["f_user_prior_category_share"] == 0
    assert point_features(s, 1, PriorHistory())["f_seconds_since_prev_event"] == -1


def test_the_points_cap_is_the_dbt_var() -> None:
    import yaml

    from lakehouse.config import REPO_ROOT

    assert prediction_points() == yaml.safe_load((REPO_ROOT / "dbt_project.yml").read_text())["vars"]["intent_prediction_points"]
    assert prediction_points() >= 10  # live scoring must reach past the first few events of a session


def _session(*types: str, session: str = "s1") -> list[dict]:
    events = [ev(f"2019-11-03 10:{i:02d}:00", t, product=i + 1, session=session) for i, t in enumerate(types)]
    return split_sessions([normalise(e) for e in events])[session]


def test_points_stop_before_the_first_purchase_and_at_the_cap() -> None:
    assert last_point(_session("view", "cart", "purchase", "purchase", "view"), cap=20) == 2
    assert last_point(_session("purchase", "view"), cap=20) == 0
    assert last_point(_session(*["view"] * 25), cap=20) == 20
    assert last_point(_session("view", "view", "view", "purchase"), cap=2) == 2
    events = [ev("2019-11-03 10:00:00", "view"), ev("2019-11-03 10:01:00", "cart"), ev("2019-11-03 10:02:00", "purchase")]
    events += [ev(f"2019-11-03 11:{i:02d}:00", "view", session="long") for i in range(25)]
    rows = features_for_events(events, PriorHistory())
    assert rows.groupby("session_id").prediction_point.max().to_dict() == {"s1": 2, "long": prediction_points()}


def test_history_features_price_cart_rate_and_category_interest() -> None:
    day = pd.Timestamp("2019-11-02")
    h = PriorHistory(
        user=pd.DataFrame(
            {"user_id": [7], "event_date": [day], "sessions_started": [1], "events": [8], "purchases": [0], "spend": [0.0]}
            | {"last_event_time": [day], "events_electronics": [2], "events_unknown": [6]}
        ),
        product=pd.DataFrame({"product_id": [1], "event_date": [day], "views": [4], "carts": [3], "purchases": [1]}),
        category=pd.DataFrame(
            {
                "category_top": ["electronics"],
                "event_date": [day],
                "views": [5],
                "purchases": [1],
                "priced_views": [4],
                "view_price_sum": [20.0],
            }
        ),
    )
    f = point_features(_session("view"), 1, h)  # product 1, electronics, price 10, the day after
    assert f["f_price_vs_category"] == 2.0  # 10 over the mean viewed price 20 / 4
    assert f["f_product_prior_cart_rate"] == 0.75
    assert f["f_user_prior_category_events"] == 2 and f["f_user_prior_category_share"] == 0.25
    zero_price = [normalise(ev("2019-11-03 10:00:00", "view", price=0.0))]
    assert point_features(zero_price, 1, h)["f_price_vs_category"] == -1


class _Models:
    """Stands in for ChampionModels: a fixed probability for every row it is asked to score."""

    def __init__(self) -> None:
        self.scored = 0

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        self.scored += len(features)
        out = pd.DataFrame(index=features.index)
        out["purchase_probability"], out["purchase_label"] = 0.3, 0
        for col in ("top_1", "top_2", "top_3", "category_probabilities", "purchase_model_version", "category_model_version"):
            out[col] = None
        return out


def _score(sessions: dict[str, list[dict]], added: set[bytes] | None, cap: int = 3) -> tuple[pd.DataFrame, list[dict], int]:
    models = _Models()
    rows, docs = score_sessions(
        sessions, PriorHistory(), models, kafka_ts={}, batch_id=1, source="stream", history_cap=20, added=added, points_cap=cap
    )
    return rows, docs, models.scored


def _ids(events: list[dict]) -> set[bytes]:
    return {bytes.fromhex(e["event_id"]) for e in events}


def test_the_scorer_scores_open_sessions_and_records_a_conversion_once() -> None:
    s = _session("view", "cart", "purchase", "view")
    rows, docs, scored = _score({"s1": s[:2]}, _ids(s[:2]))
    assert scored == 1 and rows.prediction_point.tolist() == [2] and rows.converted.tolist() == [False]
    assert docs[0]["converted"] is False and docs[0]["scoring_stopped"] is None and docs[0]["points_cap"] == 3
    rows, docs, scored = _score({"s1": s[:3]}, _ids(s[2:3]))  # the batch brings the purchase
    assert scored == 0 and len(rows) == 1
    row = rows.iloc[0]
    assert row.converted and row.prediction_point == 3 and row.purchase_probability is None
    assert docs[0]["converted"] is True and docs[0]["first_purchase_time"] == s[2]["event_time"]
    assert docs[0]["scoring_stopped"] == "converted" and docs[0]["latest_prediction"]["converted"] is True
    rows, docs, scored = _score({"s1": s}, _ids(s[3:]))  # a later event of a converted session: its document counts it, no row
    assert (scored, len(rows), len(docs)) == (0, 0, 1)
    assert docs[0]["n_events"] == 4 and docs[0]["converted"] is True and docs[0]["predictions"] == []


def test_the_scorer_stops_at_the_cap_and_keeps_the_last_prediction() -> None:
    s = _session("view", "view", "view", "view", "view")
    rows, docs, _ = _score({"s1": s[:3]}, _ids(s[:3]))
    assert rows.prediction_point.tolist() == [3]
    rows, docs, scored = _score({"s1": s[:4]}, _ids(s[3:4]))  # past the cap: a document, no row
    assert (scored, len(rows)) == (0, 0)
    assert docs[0]["scoring_stopped"] == "points_cap" and docs[0]["points_cap"] == 3 and docs[0]["predictions"] == []
    rows, docs, scored = _score({"s1": s}, _ids(s[4:]))  # the document keeps counting, still without a prediction
    assert (scored, len(rows), docs[0]["n_events"], docs[0]["latest_prediction"]) == (0, 0, 5, None)
    rows, docs, _ = _score({"s1": _session("view", "view", "view", "view", "purchase")}, None)  # reprocess: all events new
    assert rows.converted.tolist() == [True] and rows.prediction_point.tolist() == [5]


def test_final_row_is_where_a_complete_session_ends() -> None:
    assert final_row(_session("view", "cart", "purchase", "view"), cap=3) == (3, True)
    assert final_row(_session("view", "cart"), cap=3) == (2, False)
    assert final_row(_session("view", "view", "view", "view"), cap=3) is None  # depends on the batches


def test_exact_duplicates_count_once_and_null_sessions_split_on_30_minute_gaps() -> None:
    events = [ev("2019-11-01 10:00:00", "view")] * 2 + [
        ev("2019-11-01 09:00:00", "view", session=None, user=5),
        ev("2019-11-01 09:29:00", "view", session=None, user=5),
        ev("2019-11-01 10:00:01", "view", session=None, user=5),
    ]
    sessions = split_sessions([normalise(e) for e in events])
    assert len(sessions["s1"]) == 1
    assert sorted(k for k in sessions if k.startswith("timeout")) == ["timeout-5-20191101090000", "timeout-5-20191101100001"]
    assert len(sessions["timeout-5-20191101090000"]) == 2


def test_history_uses_only_days_before() -> None:
    user = pd.DataFrame(
        {
            "user_id": [7, 7],
            "event_date": [pd.Timestamp("2019-11-01"), pd.Timestamp("2019-11-03")],
            "sessions_started": [2, 1],
            "events": [10, 4],
            "purchases": [1, 0],
            "spend": [50.0, 0.0],
            "last_event_time": [pd.Timestamp("2019-11-01 20:00"), pd.Timestamp("2019-11-03 08:00")],
            "events_electronics": [5, 4],
        }
    )
    h = PriorHistory(user=user)
    assert h.prior("user", 7, date(2019, 11, 1)) is None
    assert h.prior("user", 7, date(2019, 11, 3))["sessions_started"] == 2
    assert h.prior("user", 7, date(2019, 11, 4))["events"] == 14
    f = features_for_events([ev("2019-11-03 20:00:00", "view")], h)
    row = f.iloc[0]
    assert row.f_user_prior_sessions == 2 and row.f_user_prior_spend == 50.0
    assert row.f_user_days_since_last_session == pytest.approx(2.0)  # last event before the session day
    assert row.f_prior_share_electronics == pytest.approx(0.5)


def test_running_totals_answer_like_a_plain_sum_over_earlier_days() -> None:
    """``prior`` reads running totals; it must equal summing the key's rows before the day."""
    rng = np.random.default_rng(4)
    n = 400
    product = pd.DataFrame(
        {
            "product_id": rng.integers(1, 30, n),
            "event_date": pd.Timestamp("2019-11-01") + pd.to_timedelta(rng.integers(0, 20, n), unit="D"),
            "views": rng.integers(0, 50, n),
            "purchases": rng.integers(0, 5, n),
        }
    ).drop_duplicates(["product_id", "event_date"])
    h = PriorHistory(product=product)
    for pid in range(0, 31):
        for day in pd.date_range("2019-10-31", "2019-11-22"):
            rows = product[(product.product_id == pid) & (product.event_date < day)]
            got = h.prior("product", pid, day.date())
            if rows.empty:
                assert got is None
            else:
                assert got == {"views": float(rows.views.sum()), "purchases": float(rows.purchases.sum())}


def test_prediction_history_is_keyed_by_point_so_replays_do_not_duplicate() -> None:
    old = [{"point": 1, "v": "a"}, {"point": 2, "v": "a"}]
    merged = merge_history(old, [{"point": 2, "v": "b"}, {"point": 3, "v": "b"}], cap=10)
    assert [(e["point"], e["v"]) for e in merged] == [(1, "a"), (2, "b"), (3, "b")]
    assert merge_history(merged, [{"point": 3, "v": "b"}], cap=10) == merged
    assert [e["point"] for e in merge_history(merged, [], cap=2)] == [2, 3]


@pytest.mark.parametrize("bad", ['{"$ne": 0}', "1 or 1=1", "-5", "0", "12a", "", "99999999999999999999", "1.5"])
def test_bad_user_ids_are_rejected_with_a_clear_message(bad: str) -> None:
    with pytest.raises(InputError, match="user id must be a positive integer"):
        parse_user_id(bad)


def test_filters_hold_only_typed_values() -> None:
    assert parse_user_id(" 512 ") == 512
    flt = session_filter(512, datetime(2019, 11, 1), None)
    assert flt == {"user_id": 512, "last_event_time": {"$gte": datetime(2019, 11, 1)}}
    assert type(flt["user_id"]) is int


def test_user_product_views_and_sessions_earlier_today() -> None:
    """The user's views of the point's product on earlier days, and the user's sessions started earlier that day
    (bronze's starts and those the scorer met live; another day's or another user's do not count)."""
    user_product = pd.DataFrame(
        {
            "user_product": ["7-1", "7-1", "7-2", "8-1"],
            "event_date": pd.to_datetime(["2019-11-01", "2019-11-03", "2019-11-01", "2019-11-01"]),
            "views": [2, 5, 9, 4],
        }
    )
    starts = pd.DataFrame(
        {
            "user_id": [7, 7, 8],
            "session_id": ["a-morning", "b-yesterday", "c-other-user"],
            "session_start": pd.to_datetime(["2019-11-03 08:00", "2019-11-02 09:00", "2019-11-03 07:00"]),
        }
    )
    h = PriorHistory(user_product=user_product, starts=starts)
    noon = features_for_events([ev("2019-11-03 12:00:00", "view", product=1, session="m-noon")], h).iloc[0]
    assert noon.f_user_prior_product_views == 2  # the 3rd's own views are not earlier
    assert noon.f_user_sessions_earlier_today == 1  # a-morning
    # a later session of the day sees the noon one, which only the scorer knew (not in bronze's starts)
    late = features_for_events([ev("2019-11-03 18:00:00", "view", product=2, session="z-evening")], h).iloc[0]
    assert late.f_user_sessions_earlier_today == 2 and late.f_user_prior_product_views == 9
    # the same start time: the smaller session id counts first
    tie = features_for_events([ev("2019-11-03 12:00:00", "view", session="a-tie")], h).iloc[0]
    assert tie.f_user_sessions_earlier_today == 1
