"""Training end to end against the real embedded MLflow server: full grids, registry, champion by alias."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ml import synthetic
from ml import train as train_mod
from ml.feature_contract import CATEGORIES, feature_columns

pytestmark = pytest.mark.integration

BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "f1", "precision", "recall")
PURCHASE_PLOTS = {"val_roc_curve.png", "val_pr_curve.png", "val_calibration.png", "val_feature_importance.png", "val_confusion_matrix.png"}


def _children(client: MlflowClient, result: train_mod.TrainResult):
    parent = client.get_run(result.parent_run_id)
    return client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")


def _train_on_server(task: str, frame, name: str, mlflow_uri: str, tmp_path: Path):
    """The real grid search against the MLflow server; returns the result, a client and the child runs."""
    result = train_mod.train(
        task,
        frame,
        seed=1,
        output_dir=tmp_path,
        tracking_uri=mlflow_uri,
        experiment=f"it-{name}",
        registered_model=name,
        show_progress=False,
    )
    client = MlflowClient(mlflow_uri)
    return result, client, _children(client, result)


def test_purchase_grid_is_logged_registered_and_the_champion_scores_new_rows(mlflow_uri: str, tmp_path: Path) -> None:
    name = f"purchase_intent_it_{uuid.uuid4().hex[:6]}"
    frame = synthetic.purchase_frame(6_000, seed=21)
    result, client, children = _train_on_server("purchase", frame, name, mlflow_uri, tmp_path)
    assert len(children) >= 8
    assert {r.data.params["family"] for r in children} == {"logreg", "lightgbm"}
    for run in children:
        for m in BINARY_METRICS:
            assert f"val_{m}" in run.data.metrics
            assert f"val_baseline_has_cart_{m}" in run.data.metrics
        plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
        assert plots >= PURCHASE_PLOTS
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["winner"] == result.winner and "highest validation pr_auc" in parent.data.tags["winner_reason"]
    assert "test_pr_auc" in parent.data.metrics and "test_baseline_has_cart_pr_auc" in parent.data.metrics
    assert {Path(a.path).name for a in client.list_artifacts(result.parent_run_id, "summary")} >= {"summary.md", "grid_validation.png"}

    version = client.get_model_version_by_alias(name, "champion")
    assert str(version.version) == result.registration.version
    threshold = float(version.tags["threshold"])
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert model.metadata.get_input_schema().input_names() == feature_columns(list(frame.columns))
    assert model.metadata.metadata["threshold"] == pytest.approx(threshold)

    new_rows = synthetic.purchase_frame(500, seed=99)  # same schema, rows never seen
    out = model.predict(new_rows[feature_columns(list(new_rows.columns))])
    assert len(out) == len(new_rows)
    assert out["probability"].between(0, 1).all()
    np.testing.assert_array_equal(out["label"].to_numpy(), (out["probability"].to_numpy() >= threshold).astype(int))


def test_category_grid_registers_a_model_that_returns_probabilities_and_top3(mlflow_uri: str, tmp_path: Path) -> None:
    name = f"category_top3_it_{uuid.uuid4().hex[:6]}"
    frame = synthetic.category_frame(4_000, seed=22)
    _, _, children = _train_on_server("category", frame, name, mlflow_uri, tmp_path)
    assert len(children) >= 8
    for run in children:
        assert {
            "val_hit_at_3",
            "val_precision_at_3",
            "val_recall_at_3",
            "val_mean_category_auc",
            "val_baseline_last_viewed_recall_at_3",
        } <= set(run.data.metrics)
    assert (tmp_path / "category" / "session_top3.csv").exists() and (tmp_path / "category" / "user_top3.csv").exists()

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    new_rows = synthetic.category_frame(300, seed=98)
    out = model.predict(new_rows[feature_columns(list(new_rows.columns))])
    probs = out[[c for c in out.columns if c.startswith("p_")]]
    assert probs.shape[1] == len(CATEGORIES) - 1 and "p_unknown" not in probs  # no top-3 slot for an empty category_code
    assert probs.stack().between(0, 1).all()
    best = probs.to_numpy().argmax(axis=1)
    assert (out["top_1"].to_numpy() == np.array([c[2:] for c in probs.columns])[best]).all()
