"""Helpers shared by the scorer tests and bench (no tests here): events, JSON payloads, models, waits.

The models are registered in the real MLflow registry, fitted on features computed by
``streaming.session_features`` from synthetic sessions, so their signatures carry the
exact ``f_*`` names the live scorer sends (the dbt marts' names).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException

from streaming.events import EVENT_TIME_FORMAT


def payloads(events: pd.DataFrame) -> list[tuple[bytes, bytes]]:
    """(key, JSON value) pairs exactly as ``streaming.producer`` sends them (key = session or user)."""
    out = []
    for rec in events.to_dict("records"):
        msg = {
            "event_time": pd.Timestamp(rec["event_time"]).strftime(EVENT_TIME_FORMAT),
            "event_type": rec["event_type"],
            "product_id": int(rec["product_id"]),
            "category_id": int(rec["category_id"]),
            "category_code": None if pd.isna(rec["category_code"]) else rec["category_code"],
            "brand": None if pd.isna(rec["brand"]) else rec["brand"],
            "price": float(rec["price"]),
            "user_id": int(rec["user_id"]),
            "user_session": None if pd.isna(rec["user_session"]) else rec["user_session"],
        }
        key = msg["user_session"] or str(msg["user_id"])
        out.append((key.encode(), json.dumps(msg).encode()))
    return out


def register_models(tracking_uri: str, events: pd.DataFrame, *, seed: int = 0, promote: bool = True) -> dict[str, str]:
    """Fit small purchase/category models on live features of ``events`` and register them; returns versions."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from ml import registry
    from ml.feature_contract import CATEGORIES, UNKNOWN_CATEGORY
    from ml.models import CategoryTop3Model, ModelConfig, PerLabelClassifier, PurchaseIntentModel
    from streaming.session_features import PriorHistory, features_for_events

    feats = features_for_events(events.to_dict("records"), PriorHistory())
    names = [c for c in feats.columns if c.startswith("f_")]
    rng = np.random.default_rng(seed)
    X = feats[names].to_numpy(float)
    y = ((feats["f_has_cart"] > 0) | (rng.random(len(feats)) < 0.2)).astype(int).to_numpy()
    labels = [c for c in CATEGORIES if c != UNKNOWN_CATEGORY]  # as training does: unknown is never a target
    Y = (rng.random((len(feats), len(labels))) < 0.3).astype(int)
    Y[:, 0] = 1
    Y[0, 0] = 0
    purchase = PurchaseIntentModel(LogisticRegression(max_iter=500, C=0.5 + seed).fit(X, y), names, 0.5)
    category = CategoryTop3Model(PerLabelClassifier(ModelConfig("logreg", {"C": 1.0}), seed).fit(X, Y), names, labels)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("scorer-tests")
    client = MlflowClient(tracking_uri)
    versions = {}
    for task, model, name in (("purchase", purchase, "purchase_intent"), ("category", category, "category_top3")):
        with mlflow.start_run():
            mv = registry.log_model(model, feats[names].head(5), name, {"test": "scorer"})
        versions[task] = str(mv.version)
        if promote:
            client.set_registered_model_alias(name, registry.CHAMPION, str(mv.version))
    return versions


def wait_for(check: Callable[[], object], timeout: float, what: str, every: float = 1.0):
    """Poll ``check`` until truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AnalysisException as exc:  # e.g. a Delta log folder that has no first commit yet
            last = exc
            time.sleep(every)
            continue
        if last is not None and not (isinstance(last, bool | int | list) and not last):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
