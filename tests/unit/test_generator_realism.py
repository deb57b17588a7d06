"""Generated events are statistically like REES46, and no deterministic rule gives the purchase away.

A seeded file of 200,000 events over 2019-11-05..11 (Singles' Day included) is compared with the published
figures of the full data set (tests/data/README.md) and with the real 683-row sample, each within a tolerance
stated next to it. Figures that nothing published fixes (sessions per user over days, items per order, the
duplicate rate) are the generator's stated assumptions and are checked against those.

The sample covers only the first 278 seconds of 1 November, so it cuts sessions off at both ends: it is compared
with the generated file cut into 278-second windows in the same way, never with whole generated sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streaming.generate import ORDER_ITEMS_MEAN, ORDER_ONE_ITEM, generate
from streaming.rees46 import read_events

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "rees46-2019-Nov-first-682.csv"
SAMPLE_SECONDS = 278  # 2019-11-01 00:00:00 to 00:04:38 UTC
SAMPLE_ROWS = 683

# Published figures (tests/data/README.md).
NOVEMBER_MIX = {"view": 0.9415, "cart": 0.0449, "purchase": 0.0136}
EVENTS_PER_SESSION = 3.4
EMPTY_CODE, EMPTY_BRAND = 0.33, 0.14
PRICE_QUANTILES = {0.5: 164.61, 0.9: 758.24, 0.99: 1681.90}
PRICE_AT_MOST_ZERO = 188_088 / 67_501_979
NOVEMBER_ROWS_PER_HOUR = 67_501_979 / (30 * 24)
# Top-level categories whose median price is compared with the sample's: those with at least this many rows there.
SAMPLE_MEDIAN_PRICE_MIN_ROWS = 20


@dataclass(frozen=True)
class Cut:
    """Statistics of sessions cut by fixed windows, as the sample cuts them."""

    events_per_session: pd.Series  # events per (window, session)
    sessions_per_user: float  # sessions / users, summed over windows
    gaps: pd.Series  # seconds between consecutive events of a session within a window
    repeat_product: float  # share of a session's non-first events in a window that repeat the previous product


def cut(frame: pd.DataFrame, seconds: int) -> Cut:
    """Cut ``frame`` into windows of ``seconds`` from its first second and measure each (window, session)."""
    f = frame.dropna(subset=["user_session"]).sort_values(["user_session", "source_line"])
    t = f["event_time"].astype("int64") // 10**9
    window = (t - t.min()) // seconds
    group = [window, f["user_session"]]
    per = f.groupby(group).size()
    users = f.groupby(window)["user_id"].nunique().sum()
    gaps = t.groupby(group).diff().dropna()
    same = f["product_id"].groupby(group).shift() == f["product_id"]
    later = f.groupby(group).cumcount() > 0
    return Cut(per, len(per) / users, gaps, float(same[later].mean()))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("realism") / "events.csv"
    generate(path, 200_000, date(2019, 11, 5), 7, 7, progress=False)
    return read_events(path)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    frame = read_events(SAMPLE)
    assert len(frame) == SAMPLE_ROWS
    return frame


@pytest.fixture(scope="module")
def sessions(generated: pd.DataFrame) -> pd.DataFrame:
    """One row per generated session: its events in file order, and what they hold."""
    f = generated.dropna(subset=["user_session"]).sort_values(["user_session", "source_line"])
    ev = f["event_type"].astype(str)
    by = f.groupby("user_session")
    return pd.DataFrame(
        {
            "events": by.size(),
            "user": by["user_id"].first(),
            "carts": (ev == "cart").groupby(f["user_session"]).sum(),
            "purchases": (ev == "purchase").groupby(f["user_session"]).sum(),
        }
    )


def test_event_mix_matches_november_without_removals(generated: pd.DataFrame) -> None:
    share = generated["event_type"].astype(str).value_counts(normalize=True)
    assert share["view"] == pytest.approx(NOVEMBER_MIX["view"], abs=0.01)  # ±1 point
    assert share["cart"] == pytest.approx(NOVEMBER_MIX["cart"], abs=0.005)  # ±0.5 point
    assert share["purchase"] == pytest.approx(NOVEMBER_MIX["purchase"], abs=0.002)  # ±0.2 point
    assert "remove_from_cart" not in share.index, "the multi-category store has none in October and November"


def test_sessions_match_published_length_and_the_generator_assumptions(sessions: pd.DataFrame) -> None:
    # Published: 3.4 events per session (±0.3). Median and 90th percentile are not published: the real sample's
    # cut sessions (p50 2, p90 6) bound them from below, and the generator's negative binomial gives 2 and 7-8.
    assert sessions["events"].mean() == pytest.approx(EVENTS_PER_SESSION, abs=0.3)
    assert sessions["events"].median() == 2
    assert 6 <= sessions["events"].quantile(0.9) <= 9
    # Sessions per user over a week: no published figure; the generator's user pool (kept from its first version,
    # an assumption) gives about 2.1, with a few heavy users far above it.
    per_user = sessions.groupby("user").size()
    assert 1.6 <= per_user.mean() <= 2.6
    assert per_user.max() > 20 * per_user.median()


def test_sessions_that_cart_and_buy(sessions: pd.DataFrame) -> None:
    # Derived from the published mix: 1.36 % purchase rows x 3.4 events per session = 0.046 purchase rows per
    # session; at the assumed 1.54 items per order, 3.0 % of sessions buy (±0.6 point).
    buying = (sessions["purchases"] > 0).mean()
    assert buying == pytest.approx(NOVEMBER_MIX["purchase"] * EVENTS_PER_SESSION / ORDER_ITEMS_MEAN, abs=0.006)
    # 4.49 % cart rows = 0.153 per session; carts come in bursts (re-adds), so fewer sessions cart: 6-14 %.
    carting = (sessions["carts"] > 0).mean()
    assert 0.06 <= carting <= 0.14
    assert carting > 2 * buying


def _orders(generated: pd.DataFrame) -> pd.Series:
    """Purchase rows per order: one session's purchases in one second."""
    buys = generated[generated["event_type"] == "purchase"].dropna(subset=["user_session"])
    return buys.groupby(["user_session", "event_time"]).size()


def test_orders_often_hold_several_items_in_one_second(generated: pd.DataFrame) -> None:
    items = _orders(generated)
    # Assumed: geometric items per order, P(1) = 0.65, mean 1.54 (duplicated rows add a little).
    assert (items == 1).mean() == pytest.approx(ORDER_ONE_ITEM, abs=0.04)
    assert items.mean() == pytest.approx(ORDER_ITEMS_MEAN, abs=0.1)
    assert (items >= 2).mean() >= 0.25, "multi-item orders, all in the same second"


def test_null_shares_match_published_and_sample(generated: pd.DataFrame, sample: pd.DataFrame) -> None:
    code, brand = generated["category_code"].isna().mean(), generated["brand"].isna().mean()
    assert code == pytest.approx(EMPTY_CODE, abs=0.03)  # published ±3 points
    assert brand == pytest.approx(EMPTY_BRAND, abs=0.03)
    # The sample (39 % and 18 %) is the first five minutes of one night: 683 rows give a standard error near
    # 2 points, and it sits 6-7 points above the month's published 32-33 % itself; so ±8 points for the code
    # and ±5 for the brand.
    assert code == pytest.approx(sample["category_code"].isna().mean(), abs=0.08)
    assert brand == pytest.approx(sample["brand"].isna().mean(), abs=0.05)


def test_prices_match_published_quantiles_and_sample_by_category(generated: pd.DataFrame, sample: pd.DataFrame) -> None:
    # Published ±15 %: a few popular products carry many rows, so these quantiles of a 200,000-event file move
    # by up to 12 % from seed to seed.
    price = generated["price"].astype(float)
    for q, published in PRICE_QUANTILES.items():
        assert price.quantile(q) == pytest.approx(published, rel=0.15), f"p{q * 100:.0f}"
    # The sample's median and 90th percentile (139.58, 690.48) sit 15 % and 9 % below the month's, and its 683
    # rows come from a few hundred products: ±35 %.
    real = sample["price"].astype(float)
    for q in (0.5, 0.9):
        assert price.quantile(q) == pytest.approx(real.quantile(q), rel=0.35), f"sample p{q * 100:.0f}"
    # Median price by top level, for those with 20+ rows in the sample. They come from a few products each, so
    # within a factor 1.6 where the sample has 50+ rows and a factor 2.2 below that.
    top = _top_level(generated)
    real_top = _top_level(sample)
    counts = real_top.value_counts()
    for name, rows in counts[counts >= SAMPLE_MEDIAN_PRICE_MIN_ROWS].items():
        ours = price[top == name].median()
        theirs = real[real_top == name].median()
        factor = 1.6 if rows >= 50 else 2.2
        assert theirs / factor <= ours <= theirs * factor, f"{name}: median {ours:.2f} vs sample {theirs:.2f} ({rows} rows)"


def _top_level(frame: pd.DataFrame) -> pd.Series:
    return frame["category_code"].astype(str).str.split(".").str[0].where(frame["category_code"].notna(), "(empty)")


def test_zero_prices_duplicates_and_night_traffic(generated: pd.DataFrame, sample: pd.DataFrame) -> None:
    # Published: 188,088 of 67.5 M rows (0.28 %) at a price of zero or less; within a factor 1.6.
    at_most_zero = (generated["price"].astype(float) <= 0).mean()
    assert PRICE_AT_MOST_ZERO / 1.6 <= at_most_zero <= PRICE_AT_MOST_ZERO * 1.6
    # Duplicates: published only as "exist"; the generator's 0.2 % keeps the sample's none in 683 rows likely.
    duplicates = generated.drop(columns="source_line").duplicated().mean()
    assert 0.001 <= duplicates <= 0.0035
    assert (1 - duplicates) ** SAMPLE_ROWS > 0.1
    # Midnight UTC: the sample's 683 rows in 278 s against November's mean hour give 0.094 of the mean rate.
    # Generated: the hour around each midnight (23:30-00:30; five minutes hold too few events to measure, and
    # the curve is nearly straight there) against the file's mean rate, within ±0.03.
    t = generated["event_time"]
    real_ratio = SAMPLE_ROWS / SAMPLE_SECONDS * 3600 / NOVEMBER_ROWS_PER_HOUR
    around_midnight = ((t.dt.hour == 23) & (t.dt.minute >= 30)) | ((t.dt.hour == 0) & (t.dt.minute < 30))
    days = t.dt.normalize().nunique()
    assert around_midnight.sum() / days / (len(t) / (days * 24)) == pytest.approx(real_ratio, abs=0.03)
    # And the busiest hours are in the (UTC+3) afternoon, not at night.
    per_hour = t.dt.hour.value_counts()
    assert per_hour.idxmax() in range(11, 18)
    assert per_hour.loc[[1, 2, 3]].mean() < 0.1 * per_hour.max()


def test_cut_sessions_match_the_sample(generated: pd.DataFrame, sample: pd.DataFrame) -> None:
    """The sample's cut sessions against generated ones cut the same way (its 240 sessions bound the tolerances)."""
    ours, real = cut(generated, SAMPLE_SECONDS), cut(sample, SAMPLE_SECONDS)
    # Mean events per cut session: 2.85 in the sample, standard error 0.16; ±0.5 (the generator gives about 2.5:
    # at 3.4 events per whole session, as published, its sessions are a little shorter than the sample suggests).
    assert ours.events_per_session.mean() == pytest.approx(real.events_per_session.mean(), abs=0.5)
    assert ours.events_per_session.median() == real.events_per_session.median()
    # Sessions per user within five minutes: 240 / 233 = 1.03 in the sample; ±0.03.
    assert ours.sessions_per_user == pytest.approx(real.sessions_per_user, abs=0.03)
    # Seconds between events: sample quartiles 16.5, 29, 52; within 30 % (the generator's run about 20 % shorter).
    for q in (0.25, 0.5, 0.75):
        assert ours.gaps.quantile(q) == pytest.approx(real.gaps.quantile(q), rel=0.3), f"gap q{q}"
    # The previous event's product again: 29 % in the sample (±6 points: 443 events, standard error 2 points).
    assert ours.repeat_product == pytest.approx(real.repeat_product, abs=0.06)


# --- no planted rule --------------------------------------------------------------------------------


def _buying_sessions(generated: pd.DataFrame) -> pd.DataFrame:
    """Per buying session: the first purchased product, the view just before it, the most viewed products,
    whether that product was viewed or carted earlier in the session."""
    f = generated.dropna(subset=["user_session"]).sort_values(["user_session", "source_line"])
    f = f.assign(event_type=f["event_type"].astype(str), step=f.groupby("user_session").cumcount())
    buys = f[f["event_type"] == "purchase"].groupby("user_session").first()
    views = f[f["event_type"] == "view"]
    counts = views.groupby(["user_session", "product_id"]).size().rename("n").reset_index()
    top = counts[counts["n"] == counts.groupby("user_session")["n"].transform("max")]
    before = views.merge(buys[["step"]].rename(columns={"step": "buy_step"}), left_on="user_session", right_index=True)
    last_view = before[before["step"] < before["buy_step"]].groupby("user_session")["product_id"].last()
    carts = f[f["event_type"] == "cart"].merge(buys[["step", "product_id"]].add_prefix("buy_"), left_on="user_session", right_index=True)
    carted_first = carts[(carts["step"] < carts["buy_step"]) & (carts["product_id"] == carts["buy_product_id"])]
    seen = views.merge(buys[["step", "product_id"]].add_prefix("buy_"), left_on="user_session", right_index=True)
    seen_first = seen[(seen["step"] < seen["buy_step"]) & (seen["product_id"] == seen["buy_product_id"])]
    # -1: no view before the purchase (the session opens with it).
    out = pd.DataFrame({"bought": buys["product_id"], "last_view": last_view.reindex(buys.index).fillna(-1).astype("int64")})
    out["most_viewed"] = [set() for _ in range(len(out))]
    for session, products in top.groupby("user_session")["product_id"]:
        if session in out.index:
            out.at[session, "most_viewed"] = set(products.tolist())
    out["carted_before"] = out.index.isin(carted_first["user_session"].unique())
    out["viewed_before"] = out.index.isin(seen_first["user_session"].unique())
    return out


def test_no_rule_places_the_purchase(generated: pd.DataFrame) -> None:
    b = _buying_sessions(generated)
    assert len(b) > 1_000
    # The old rule: the purchase came right after the last view of the most repeated product (0.97 of buying
    # sessions on this measure). Now it happens when the shopper's pick and the order's moment fall that way,
    # which short sessions make common: under 0.6.
    after_top = [bought == last and last in top for bought, last, top in zip(b["bought"], b["last_view"], b["most_viewed"], strict=True)]
    assert np.mean(after_top) < 0.6
    # The bought product is often, not always, a most viewed one, and sometimes not viewed before in the session.
    is_top = np.array([bought in top for bought, top in zip(b["bought"], b["most_viewed"], strict=True)])
    assert 0.3 < is_top.mean() < 0.85
    assert 0.05 < 1 - b["viewed_before"].mean() < 0.4
    # A cart of the product before its purchase is likely, not certain.
    assert 0.35 < b["carted_before"].mean() < 0.75


def test_no_rule_decides_from_carts(sessions: pd.DataFrame) -> None:
    carted = sessions["carts"] > 0
    bought = sessions["purchases"] > 0
    assert 0.05 < bought[carted].mean() < 0.5, "a cart raises the odds of buying but does not decide it"
    assert bought[~carted].mean() > 0.005, "purchases without a cart in the session exist"


def test_cosmetics_profile_has_removals_in_buying_and_other_sessions(tmp_path: Path) -> None:
    path = tmp_path / "cosmetics.csv"
    generate(path, 60_000, date(2019, 11, 5), 2, 3, progress=False, profile="cosmetics")
    frame = read_events(path).dropna(subset=["user_session"])
    ev = frame["event_type"].astype(str)
    assert 0.005 < (ev == "remove_from_cart").mean() < 0.05
    removed = ev.eq("remove_from_cart").groupby(frame["user_session"]).any()
    bought = ev.eq("purchase").groupby(frame["user_session"]).any()
    assert (removed & bought).sum() > 0, "a removal does not mean 'no purchase'"
    with pytest.raises(ValueError, match="unknown profile"):
        generate(tmp_path / "x.csv", 10, date(2019, 11, 5), 1, 3, progress=False, profile="groceries")
