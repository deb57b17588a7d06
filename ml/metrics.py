"""Evaluation metrics for both tasks, kept free of MLflow and plotting so they are unit-testable.

Scores of a model and of the simple baselines go through the same functions, which
is what makes "the model beats the baseline" a fair comparison.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

_EPS = 1e-6


def _safe(fn, y: np.ndarray, p: np.ndarray) -> float:
    """A ranking metric, or NaN when only one class is present (it is undefined then)."""
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(fn(y, p))


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut that maximises F1 on validation (the label rule stored with the model).

    Computed from one precision-recall curve (every distinct score is a candidate), so it
    costs one sort even on millions of rows.
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, np.asarray(p, dtype=float))
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, and F1 / precision / recall at ``threshold``."""
    y = np.asarray(y).astype(int)
    raw = np.asarray(p, dtype=float)
    pred = raw >= threshold  # on the raw scores: clipping must not move a score across the cut
    p = np.clip(raw, _EPS, 1 - _EPS)
    return {
        "roc_auc": _safe(roc_auc_score, y, p),
        "pr_auc": _safe(average_precision_score, y, p),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "positive_rate": float(y.mean()),
        "brier": float(np.mean((raw - y) ** 2)),
        "ece": expected_calibration_error(y, raw),
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted and observed purchase rates over equal-width probability bins, weighted by rows.

    A probability the scorer writes is only usable as a probability (a shop may act
    on "30 % likely to buy") when this is small; ROC AUC says nothing about it.
    """
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    if len(y) == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(gap / len(y))


def per_point(points: np.ndarray, evaluate, last: int = 10) -> dict[str, dict[str, float]]:
    """``evaluate(mask)`` plus the row count for each prediction point k = 1..last-1 and for ``last+`` together.

    Early points (one or two events seen) are the hard, useful ones; a pooled figure
    is dominated by whichever points are most numerous.
    """
    points = np.asarray(points)
    out = {}
    for k in range(1, last):
        mask = points == k
        if mask.any():
            out[str(k)] = {**evaluate(mask), "rows": int(mask.sum())}
    mask = points >= last
    if mask.any():
        out[f"{last}+"] = {**evaluate(mask), "rows": int(mask.sum())}
    return out


def top_k(scores: np.ndarray, k: int = 3) -> np.ndarray:
    """Indices of the k highest scores per row, best first (ties broken by column order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def topk_metrics(y: np.ndarray, scores: np.ndarray, k: int = 3) -> dict[str, float]:
    """Hit@k, Precision@k, Recall@k and NDCG@k over rows with at least one positive, coverage, per-category ROC AUC.

    Rows whose future has no category at all say nothing about ranking and are left out
    of the @k metrics (their share is reported as ``rows_with_target``).
    """
    y = np.asarray(y).astype(int)
    picks = top_k(scores, k)
    hits = np.take_along_axis(y, picks, axis=1).sum(axis=1)
    positives = y.sum(axis=1)
    has = positives > 0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(y, picks, axis=1) * discount[: picks.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(positives, k) - 1] if has.any() else np.ones(len(y))
    out = {
        f"hit_at_{k}": float((hits[has] > 0).mean()) if has.any() else float("nan"),
        f"precision_at_{k}": float((hits[has] / k).mean()) if has.any() else float("nan"),
        f"recall_at_{k}": float((hits[has] / positives[has]).mean()) if has.any() else float("nan"),
        f"ndcg_at_{k}": float((dcg[has] / ideal[has]).mean()) if has.any() else float("nan"),
        # how many distinct categories the scorer ever puts in a top-k (over every row): a
        # recommender that always names the same three has coverage k
        f"coverage_at_{k}": float(len(np.unique(picks))) if len(picks) else 0.0,
        "rows_with_target": float(has.mean()),
    }
    aucs = per_category_auc(y, scores)
    valid = [a for a in aucs if not np.isnan(a)]
    out["mean_category_auc"] = float(np.mean(valid)) if valid else float("nan")
    return out


def per_category_auc(y: np.ndarray, scores: np.ndarray) -> list[float]:
    return [_safe(roc_auc_score, y[:, j], scores[:, j]) for j in range(y.shape[1])]


def suspicious_features(X: np.ndarray, y: np.ndarray, names: list[str], limit: float = 0.995) -> list[str]:
    """Features that alone separate the label almost perfectly: a symptom of label leakage in the mart.

    A real pre-point feature never predicts a *future* purchase this well; training
    reports these loudly (tag + console) instead of happily registering a cheat.
    """
    if len(np.unique(y)) < 2:
        return []
    out = []
    for j, name in enumerate(names):
        auc = roc_auc_score(y, X[:, j])
        if max(auc, 1 - auc) >= limit:
            out.append(name)
    return out
