"""Simple baselines every learned model is compared with, on the same rows and metrics.

Purchase: "the session has a cart so far" and the constant training purchase rate.
Category: global popularity, and "the categories this user viewed last" (the
in-session counts so far, falling back to the user's prior shares, then to popularity
when the mart carries neither; the source used is reported so the fallback is visible).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.feature_contract import SESSION_COUNT_PREFIXES, USER_SHARE_PREFIXES, cart_feature, category_of_target


def purchase_baselines(train: pd.DataFrame, frame: pd.DataFrame, label: str) -> dict[str, np.ndarray]:
    """Scores in [0, 1] per baseline for the rows of ``frame``."""
    out = {"prior": np.full(len(frame), float(train[label].mean()))}
    cart = cart_feature(list(frame.columns))
    if cart is not None:
        out["has_cart"] = (frame[cart].to_numpy() > 0).astype(float)
    return out


def _family(columns: list[str], cats: list[str], prefixes: tuple[str, ...]) -> str | None:
    """The first prefix for which every category has a column, or None."""
    return next((p for p in prefixes if all(f"{p}{c}" in columns for c in cats)), None)


def last_viewed_source(columns: list[str], targets: list[str]) -> str:
    """Which feature family the "viewed last" baseline can use: session_counts, user_shares or popularity."""
    cats = [category_of_target(t) for t in targets]
    if _family(columns, cats, SESSION_COUNT_PREFIXES):
        return "session_counts"
    if _family(columns, cats, USER_SHARE_PREFIXES):
        return "user_shares"
    return "popularity"


def category_baselines(train: pd.DataFrame, frame: pd.DataFrame, targets: list[str]) -> dict[str, np.ndarray]:
    """Score matrices (rows x categories) for popularity and last-viewed baselines."""
    popularity = train[targets].to_numpy(dtype=float).mean(axis=0)
    pop = np.tile(popularity, (len(frame), 1))
    cats = [category_of_target(t) for t in targets]
    source = last_viewed_source(list(frame.columns), targets)
    columns = list(frame.columns)
    if source == "session_counts":
        prefix = _family(columns, cats, SESSION_COUNT_PREFIXES)
        counts = frame[[f"{prefix}{c}" for c in cats]].to_numpy(dtype=float)
        last = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0) + 1e-3 * pop
    elif source == "user_shares":
        prefix = _family(columns, cats, USER_SHARE_PREFIXES)
        last = frame[[f"{prefix}{c}" for c in cats]].to_numpy(dtype=float) + 1e-3 * pop
    else:
        last = pop.copy()
    return {"popularity": pop, "last_viewed": last}
