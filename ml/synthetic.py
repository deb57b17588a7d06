"""Synthetic feature-mart frames with a real, tunable signal, for tests and benchmarks.

Training must be provable without the dbt marts (built in parallel) and without
gigabytes of REES46: this simulates sessions of events, then derives the same
columns the marts promise (``ml.feature_contract``), using only events up to each
prediction point for features and only later events for labels. ``signal`` scales
how much a latent per-session intent and per-user taste drive both. ``signal=0``
removes that signal but not the session structure (a point after the purchase is
never followed by one, later points have less future left), which honestly stays
predictive; the no-skill control is a shuffled label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer

from ml.feature_contract import CATEGORIES, PURCHASE_LABEL, SESSION_COUNT_PREFIX, TARGET_PREFIX, USER_SHARE_PREFIX

# Shares of top-level categories, roughly the REES46 ones (see tests/data/README.md).
_POPULARITY = np.array([36, 12, 6, 3, 3, 3, 1.5, 1.2, 1.0, 0.8, 0.4, 0.3, 0.3, 33], dtype=float)
_POPULARITY = _POPULARITY / _POPULARITY.sum()
_MEAN_EVENTS = 4.0
_START = np.datetime64("2019-11-01T00:00:00")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _within_session_cumsum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sum that restarts at each session (rows are grouped by session, in order)."""
    total = np.cumsum(values, axis=0)
    before = total[starts] - values[starts]
    return total - np.repeat(before, lengths, axis=0)


def simulate(n_rows: int, *, days: int = 14, signal: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Simulate sessions until about ``n_rows`` prediction points exist; return per-row arrays."""
    rng = np.random.default_rng(seed)
    n_sessions = max(4, int(n_rows / _MEAN_EVENTS))
    n_users = max(2, n_sessions // 2)
    n_cat = len(CATEGORIES)

    user_intent = rng.normal(size=n_users)
    user_fav = np.stack([rng.choice(n_cat, size=n_users, p=_POPULARITY), rng.integers(0, n_cat, size=n_users)], axis=1)
    user_prior_sessions = rng.poisson(2.0, size=n_users)
    user_prior_purchases = rng.binomial(user_prior_sessions, _sigmoid(-1.5 + signal * user_intent))
    fav_onehot = np.zeros((n_users, n_cat))
    fav_onehot[np.arange(n_users), user_fav[:, 0]] += 0.5
    fav_onehot[np.arange(n_users), user_fav[:, 1]] += 0.5
    w = min(0.9, 0.8 * signal)
    share_mean = (1 - w) * _POPULARITY + w * fav_onehot
    user_share = rng.gamma(share_mean * 20 + 1e-3)
    user_share /= user_share.sum(axis=1, keepdims=True)

    s_user = rng.integers(0, n_users, size=n_sessions)
    s_intent = 0.7 * user_intent[s_user] + 0.7 * rng.normal(size=n_sessions)
    lengths = np.minimum(1 + rng.geometric(1 / _MEAN_EVENTS, size=n_sessions) - 1, 30).clip(1)
    s_start = rng.uniform(0, days * 86400.0, size=n_sessions)
    order = np.argsort(s_start, kind="stable")
    s_user, s_intent, lengths, s_start = s_user[order], s_intent[order], lengths[order], s_start[order]
    s_buys = rng.random(n_sessions) < _sigmoid(-2.0 + signal * 1.5 * s_intent)
    s_buy_after = (rng.random(n_sessions) * lengths).astype(int) + 1  # purchase follows event number b

    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sess = np.repeat(np.arange(n_sessions), lengths)
    k = np.arange(len(sess)) - np.repeat(starts, lengths) + 1
    r_user = s_user[sess]
    r_intent = s_intent[sess]

    is_cart = (rng.random(len(sess)) < _sigmoid(-2.5 + signal * 1.2 * r_intent)).astype(float)
    price = np.exp(rng.normal(5.0 + 0.15 * signal * r_intent, 0.9))
    gaps = rng.exponential(40.0 * np.exp(0.2 * signal * r_intent))
    gaps[starts] = 0.0
    from_taste = rng.random(len(sess)) < (0.25 + 0.6 * min(signal, 1.0))
    taste_pick = user_fav[r_user, rng.integers(0, 2, size=len(sess))]
    cat = np.where(from_taste, taste_pick, rng.choice(n_cat, size=len(sess), p=_POPULARITY))
    cat_onehot = np.zeros((len(sess), n_cat), dtype=np.int32)
    cat_onehot[np.arange(len(sess)), cat] = 1

    seconds = _within_session_cumsum(gaps, starts, lengths)
    n_carts = _within_session_cumsum(is_cart, starts, lengths)
    price_sum = _within_session_cumsum(price, starts, lengths)
    cat_cnt = _within_session_cumsum(cat_onehot, starts, lengths)
    cat_total = np.repeat(cat_cnt[starts + lengths - 1], lengths, axis=0)
    max_price = pd.Series(price).groupby(sess).cummax().to_numpy()
    time_s = s_start[sess] + seconds
    pred_time = _START + (time_s * 1e6).astype("timedelta64[us]")
    buys = s_buys[sess]
    b = s_buy_after[sess]
    return {
        "session_id": np.char.add("s", sess.astype(str)),
        "user_id": r_user.astype(np.int64) + 1000,
        "prediction_point": k.astype(np.int64),
        "prediction_time": pred_time,
        "n_events": k.astype(float),
        "n_carts": n_carts,
        "seconds": seconds,
        "mean_price": price_sum / k,
        "max_price": max_price,
        "last_price": price,
        "hour": ((time_s % 86400) // 3600).astype(float),
        "user_prior_sessions": user_prior_sessions[r_user].astype(float),
        "user_prior_purchases": user_prior_purchases[r_user].astype(float),
        "purchased_so_far": (buys & (k > b)).astype(float),
        "label": (buys & (k <= b)).astype(np.int64),
        "cat_cnt": cat_cnt,
        "cat_future": ((cat_total - cat_cnt) > 0).astype(np.int64),
        "user_share": user_share[r_user],
    }


def _keys(sim: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame({c: sim[c] for c in ("session_id", "user_id", "prediction_point", "prediction_time")})
    frame["event_date"] = frame["prediction_time"].dt.date
    return frame


def purchase_frame(n_rows: int, *, days: int = 14, signal: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A frame shaped like ``analytics.fct_purchase_intent_features``."""
    sim = simulate(n_rows, days=days, signal=signal, seed=seed)
    frame = _keys(sim)
    frame["f_n_events"] = sim["n_events"]
    frame["f_n_views"] = sim["n_events"] - sim["n_carts"]
    frame["f_n_carts"] = sim["n_carts"]
    frame["f_session_seconds"] = sim["seconds"]
    frame["f_mean_price"] = sim["mean_price"]
    frame["f_max_price"] = sim["max_price"]
    frame["f_last_price"] = sim["last_price"]
    frame["f_hour"] = sim["hour"]
    frame["f_user_prior_sessions"] = sim["user_prior_sessions"]
    frame["f_user_prior_purchases"] = sim["user_prior_purchases"]
    frame["f_session_purchases_so_far"] = sim["purchased_so_far"]
    frame[PURCHASE_LABEL] = sim["label"]
    return frame


def category_frame(n_rows: int, *, days: int = 14, signal: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A frame shaped like ``analytics.fct_category_features``."""
    sim = simulate(n_rows, days=days, signal=signal, seed=seed)
    frame = _keys(sim)
    cols: dict[str, np.ndarray] = {"f_n_events": sim["n_events"], "f_session_seconds": sim["seconds"]}
    for i, c in enumerate(CATEGORIES):
        cols[f"{SESSION_COUNT_PREFIX}{c}"] = sim["cat_cnt"][:, i].astype(float)
    for i, c in enumerate(CATEGORIES):
        cols[f"{USER_SHARE_PREFIX}{c}"] = sim["user_share"][:, i]
    for i, c in enumerate(CATEGORIES):
        cols[f"{TARGET_PREFIX}{c}"] = sim["cat_future"][:, i]
    return pd.concat([frame, pd.DataFrame(cols)], axis=1)


def generate(task: str, n_rows: int, *, days: int = 14, signal: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """The synthetic frame for ``task`` (purchase or category)."""
    if task == "purchase":
        return purchase_frame(n_rows, days=days, signal=signal, seed=seed)
    if task == "category":
        return category_frame(n_rows, days=days, signal=signal, seed=seed)
    raise ValueError(f"unknown task {task!r}; expected purchase or category")


def main(
    task: str = typer.Option("purchase", help="purchase or category"),
    rows: int = typer.Option(100_000, help="About this many prediction rows."),
    days: int = typer.Option(14, help="Days the sessions are spread over (the time split needs several)."),
    signal: float = typer.Option(1.0, help="Strength of the intent/taste signal (0 = only session structure is informative)."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("output/synthetic.parquet"), help="Parquet file to write."),
) -> None:
    """Write a synthetic feature frame (parquet) that `python -m ml.train --input` can train on."""
    frame = generate(task, rows, days=days, signal=signal, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    typer.echo(f"wrote {len(frame):,} rows x {frame.shape[1]} columns to {out}")


if __name__ == "__main__":
    typer.run(main)
