"""Simple baselines every learned model is compared with, on the same rows and metrics.

Purchase: "the session has a cart so far" and the constant training purchase rate.
Category: global popularity, and "the categories this user viewed last" (the
in-session counts so far, falling back to the user's prior shares, then to popularity
when the mart carries neither; the source used is reported so the fallback is visible).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.feature_contract import SESSION_COUNT_PREFIXES, UNKNOWN_CATEGORY, USER_SHARE_PREFIXES, cart_feature, category_of_target


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
    """Score matrices (rows x categories) for popularity and last-viewed baselines.

    "Last viewed" ranks the categories of this session so far first, then those of the
    user's earlier days, then popular ones: for a target that leaves out the session's
    categories (train.py masks them for every scorer), it is "what this user looked at
    before", the rule a shop would write without a model.
    """
    popularity = train[targets].to_numpy(dtype=float).mean(axis=0)
    pop = np.tile(popularity, (len(frame), 1))
    cats = [category_of_target(t) for t in targets]
    columns = list(frame.columns)
    counts_prefix = _family(columns, cats, SESSION_COUNT_PREFIXES)
    share_prefix = _family(columns, cats, USER_SHARE_PREFIXES)
    if counts_prefix is None and share_prefix is None:
        return {"popularity": pop, "last_viewed": pop.copy()}
    last = 1e-4 * pop
    if counts_prefix:
        counts = frame[[f"{counts_prefix}{c}" for c in cats]].to_numpy(dtype=float)
        last = last + counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    if share_prefix:
        last = last + 1e-2 * frame[[f"{share_prefix}{c}" for c in cats]].to_numpy(dtype=float)
    return {"popularity": pop, "last_viewed": last}


def session_count_prefix(columns: list[str], cats: list[str]) -> str | None:
    """The prefix of the session's per-category counts so far in ``columns`` (None when absent)."""
    return _family(list(columns), cats, SESSION_COUNT_PREFIXES)


def seen_categories(frame: pd.DataFrame, targets: list[str]) -> np.ndarray | None:
    """Rows x categories: True where the session has touched the category up to the point (None without counts)."""
    cats = [category_of_target(t) for t in targets]
    prefix = _family(list(frame.columns), cats, SESSION_COUNT_PREFIXES)
    if prefix is None:
        return None
    return frame[[f"{prefix}{c}" for c in cats]].to_numpy(dtype=float) > 0


# What the scorer writes as the category model's version when no champion exists and it
# serves the baseline: the documents and the predictions table say it is not a model.
LIVE_BASELINE_VERSION = "baseline:last_viewed"


def live_last_viewed(features: pd.DataFrame, categories: list[str], exclude_seen: bool = True) -> pd.DataFrame:
    """The "last viewed" baseline for live rows: ``p_<category>`` and ``top_1..3``, as the category model answers.

    Served by the scorer when no category model has earned the champion alias (none
    beat the baselines by the margin). As in :func:`category_baselines`: the session's
    categories so far, then the user's earlier days', then the given order (the seed's,
    most popular first); with ``exclude_seen`` (the mart's target: categories not touched
    yet) the session's own are left out. ``unknown`` is never recommended. Scores are
    shares (a ranking, not a calibrated probability).
    """
    cats = [c for c in categories if c != UNKNOWN_CATEGORY]
    columns = list(features.columns)
    counts_prefix = _family(columns, cats, SESSION_COUNT_PREFIXES)
    share_prefix = _family(columns, cats, USER_SHARE_PREFIXES)
    n = len(features)
    counts = features[[f"{counts_prefix}{c}" for c in cats]].to_numpy(dtype=float) if counts_prefix else np.zeros((n, len(cats)))
    shares = features[[f"{share_prefix}{c}" for c in cats]].to_numpy(dtype=float) if share_prefix else np.zeros((n, len(cats)))
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0) + 1e-2 * shares
    rank = p - 1e-6 * np.arange(len(cats))  # ties: the seed's order
    if exclude_seen:  # never a slot for a category the session has touched
        p, rank = np.where(counts > 0, 0.0, p), np.where(counts > 0, -1.0, rank)
    out = pd.DataFrame(p, columns=[f"p_{c}" for c in cats], index=features.index)
    order = np.argsort(-rank, axis=1, kind="stable")[:, :3]
    names = np.asarray(cats, dtype=object)
    for i in range(min(3, len(cats))):
        out[f"top_{i + 1}"] = names[order[:, i]]
    return out
