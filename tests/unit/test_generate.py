"""The synthetic generator is reproducible, REES46-shaped and carries a learnable signal."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streaming.events import CSV_COLUMNS
from streaming.generate import generate
from streaming.rees46 import read_events


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "c.csv.gz"
    for path, seed in ((a, 3), (b, 3), (c, 4)):
        assert generate(path, 20_000, date(2019, 11, 1), 2, seed, progress=False) == 20_000
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert a.read_bytes()[:2] == b"\x1f\x8b"


def test_small_file_with_header_loads_with_exact_count(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    generate(path, 1_000, date(2019, 11, 10), 1, 5, header=True, progress=False)
    assert path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    frame = read_events(path)
    assert len(frame) == 1_000
    assert frame["event_time"].is_monotonic_increasing
    assert frame["user_session"].isna().sum() >= 1, "a few null sessions even in small files"


@pytest.mark.parametrize("events", [1, 5, 200])
def test_a_file_of_a_few_events_has_exactly_that_many(tmp_path: Path, events: int) -> None:
    """So few events that some of the day's windows get none: those windows are empty, not an error."""
    path = tmp_path / "few.csv"
    assert generate(path, events, date(2019, 11, 8), 1, 8, header=True, progress=False) == events
    assert len(read_events(path)) == events


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """1 M events over 2019-11-05..11 (includes Singles' Day). About 15 s to generate and load."""
    path = tmp_path_factory.mktemp("gen") / "million.csv"
    generate(path, 1_000_000, date(2019, 11, 5), 7, 42, progress=False)
    return read_events(path)


def test_event_mix_is_close_to_november(million: pd.DataFrame) -> None:
    assert len(million) == 1_000_000
    share = million["event_type"].value_counts(normalize=True)
    # Published November: view 94.15 %, cart 4.49 %, purchase 1.36 %; no remove_from_cart in that store's file.
    assert share["view"] == pytest.approx(0.9415, abs=0.01)
    assert share["cart"] == pytest.approx(0.0449, abs=0.008)
    assert share["purchase"] == pytest.approx(0.0136, abs=0.004)
    assert "remove_from_cart" not in share.index


def test_null_rates_duplicates_and_ids(million: pd.DataFrame) -> None:
    assert million["category_code"].isna().mean() == pytest.approx(0.32, abs=0.03)
    assert million["brand"].isna().mean() == pytest.approx(0.14, abs=0.03)
    assert 3 <= million["user_session"].isna().sum() <= 10
    assert million.drop(columns="source_line").duplicated().mean() == pytest.approx(0.002, abs=0.0008)
    assert million["category_id"].astype("int64").between(10**18, 10**19 - 1).all(), "19-digit category ids"
    assert million["user_id"].astype("int64").between(500_000_000, 599_999_999).all()
    sessions = million["user_session"].dropna()
    assert sessions.str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}").all()
    known = million.dropna(subset=["category_code"])
    assert known.groupby("category_id")["category_code"].nunique().max() == 1
    assert known.groupby("category_code")["category_id"].nunique().max() == 1


def test_sessions_prices_and_categories_look_like_rees46(million: pd.DataFrame) -> None:
    per_session = million.groupby("user_session").size()
    assert per_session.mean() == pytest.approx(3.4, abs=0.4)
    assert per_session.median() == 2
    assert 6 <= per_session.quantile(0.9) <= 10
    price = million["price"].astype(float)
    # Published: p50 164.61, p90 758.24, p99 1681.90; a few rows at 0 or below.
    assert 120 <= price.quantile(0.5) <= 220
    assert 550 <= price.quantile(0.9) <= 1000
    assert 1300 <= price.quantile(0.99) <= 2300
    assert 0.0005 <= (price <= 0).mean() <= 0.01
    top = million["category_code"].str.split(".").str[0].value_counts(normalize=True, dropna=False)
    assert top["electronics"] == pytest.approx(0.36, abs=0.04)
    assert top["appliances"] == pytest.approx(0.12, abs=0.03)
    assert top["computers"] == pytest.approx(0.06, abs=0.02)
    purchases = million[million["event_type"] == "purchase"]
    assert (purchases["category_code"] == "electronics.smartphone").mean() == pytest.approx(0.45, abs=0.12)
    assert set(purchases["brand"].value_counts().index[:3]) == {"samsung", "apple", "xiaomi"}


def test_time_order_and_singles_day_spike(million: pd.DataFrame) -> None:
    assert million["event_time"].is_monotonic_increasing
    per_day = million["event_time"].dt.strftime("%Y-%m-%d").value_counts()
    others = per_day.drop("2019-11-11")[per_day.drop("2019-11-11") > 1000]
    assert per_day["2019-11-11"] / others.mean() == pytest.approx(2.0, abs=0.2)


def test_purchase_paths(million: pd.DataFrame) -> None:
    """Purchases with and without a cart before them; sessions that go on after a purchase."""
    ordered = million.dropna(subset=["user_session"]).sort_values(["user_session", "source_line"])
    ev = ordered["event_type"].astype(str)
    session = ordered["user_session"].astype(str)
    purchase = ev == "purchase"
    carted = (ev == "cart").astype(int).groupby(session).cummax().astype(bool)
    with_cart = (purchase & carted).sum() / purchase.sum()
    assert 0.3 <= with_cart <= 0.85
    bought = purchase.astype(int).groupby(session).cummax().astype(bool)
    after = (ev == "view") & bought
    assert session[after].nunique() / session[purchase].nunique() > 0.2


def _sessions(million: pd.DataFrame) -> pd.DataFrame:
    """One row per session: user, start, whether it bought, main category, views of its top product."""
    frame = million.dropna(subset=["user_session"]).astype({"user_session": str, "event_type": str})
    by_session = frame.groupby("user_session")
    top_category = frame.groupby(["user_session", "category_id"]).size().sort_values(kind="stable").groupby(level=0).tail(1)
    return pd.DataFrame(
        {
            "user": by_session["user_id"].first(),
            "start": by_session["event_time"].min(),
            "bought": (frame["event_type"] == "purchase").groupby(frame["user_session"]).any(),
            "category": top_category.reset_index(level=1)["category_id"],
            "max_same": frame.groupby(["user_session", "product_id"]).size().groupby(level=0).max(),
        }
    ).sort_values(["user", "start"])


def test_signal_user_history_and_dwelling_predict_purchase(million: pd.DataFrame) -> None:
    sessions = _sessions(million)
    bought = sessions["bought"].astype(int)
    prior = (bought.groupby(sessions["user"]).cumsum() - bought) > 0
    later = sessions.groupby("user").cumcount() > 0
    rate_after_buyer = sessions.loc[later & prior, "bought"].mean()
    rate_after_non_buyer = sessions.loc[later & ~prior, "bought"].mean()
    assert rate_after_buyer > 2 * rate_after_non_buyer
    dwell = sessions["max_same"] >= 3
    assert sessions.loc[dwell, "bought"].mean() > 2 * sessions.loc[~dwell, "bought"].mean()


def _seen_before_rate(users: list[int], categories: list[int]) -> float:
    """Share of non-first sessions whose main category the same user had in an earlier session."""
    hits, total = 0, 0
    history: dict[int, set[int]] = {}
    for user, category in zip(users, categories, strict=True):
        seen = history.setdefault(user, set())
        if seen:
            hits += category in seen
            total += 1
        seen.add(category)
    return hits / total


def test_signal_categories_follow_earlier_sessions(million: pd.DataFrame) -> None:
    sessions = _sessions(million)
    users = sessions["user"].tolist()
    actual = _seen_before_rate(users, sessions["category"].tolist())
    # Baseline: the same users and session counts, categories shuffled across all sessions.
    shuffled = np.random.default_rng(0).permutation(sessions["category"].to_numpy()).tolist()
    baseline = _seen_before_rate(users, shuffled)
    assert actual > 0.4
    assert actual > 2 * baseline
