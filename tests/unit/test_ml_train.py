"""Training behaviour on synthetic feature frames, with a real (local, SQLite-backed) MLflow store.

No server and no JVM: MLflow's own SQLite store gives tracking and the registry, so
these tests prove skill, no-skill, reproducibility, leakage guards and the champion
rule quickly. ``tests/integration/test_ml_train.py`` repeats the core path against
the embedded MLflow server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import typer
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from ml import registry, synthetic
from ml import train as train_mod
from ml.feature_contract import PURCHASE_LABEL
from ml.models import ModelConfig

SMALL_GRID = [ModelConfig("logreg", {"C": 1.0}), ModelConfig("lightgbm", {"num_leaves": 15, "learning_rate": 0.1, "n_estimators": 60})]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("mlflow")
    return {"uri": f"sqlite:///{root / 'mlflow.db'}", "root": root}


def _run(
    store: dict[str, object], task: str, frame: pd.DataFrame, *, name: str, grid=SMALL_GRID, seed: int = 7, **kw
) -> train_mod.TrainResult:
    """Train into a fresh experiment whose artifacts stay in the test's temp folder."""
    uri = str(store["uri"])
    mlflow.set_tracking_uri(uri)
    experiment = f"{name}-{uuid.uuid4().hex[:6]}"
    mlflow.create_experiment(experiment, artifact_location=str(Path(store["root"]) / experiment))
    return train_mod.train(
        task,
        frame,
        seed=seed,
        output_dir=Path(store["root"]) / experiment / "output",
        tracking_uri=uri,
        experiment=experiment,
        registered_model=kw.pop("registered_model", f"m-{experiment}"),
        grid=grid,
        show_progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def purchase_frame() -> pd.DataFrame:
    return synthetic.purchase_frame(12_000, seed=11)


def test_purchase_model_beats_both_baselines_on_data_with_signal(store, purchase_frame) -> None:
    result = _run(store, "purchase", purchase_frame, name="skill")
    for baseline in ("prior", "has_cart"):
        assert result.test_metrics["roc_auc"] > result.test_baselines[baseline]["roc_auc"] + 0.05
        assert result.test_metrics["pr_auc"] > result.test_baselines[baseline]["pr_auc"] + 0.03
    predictions = pd.read_csv(result.output_files[0])
    assert list(predictions.columns[:4]) == ["session_id", "user_id", "prediction_point", "prediction_time"]
    assert {"probability", "predicted_label", "label", "model_name", "model_version"} <= set(predictions.columns)
    assert predictions["model_version"].eq(int(result.registration.version)).all()


def test_category_model_beats_popularity_and_last_viewed(store) -> None:
    result = _run(store, "category", synthetic.category_frame(8_000, seed=5), name="cat-skill")
    for baseline in ("popularity", "last_viewed"):
        assert result.test_metrics["recall_at_3"] > result.test_baselines[baseline]["recall_at_3"]
        assert result.test_metrics["mean_category_auc"] > result.test_baselines[baseline]["mean_category_auc"]
    top = pd.read_csv(next(f for f in result.output_files if f.name == "session_top3.csv"))
    assert top["session_id"].is_unique
    assert (top["probability_1"] >= top["probability_2"]).all() and (top["probability_2"] >= top["probability_3"]).all()
    assert (result.summary_dir / "summary.md").read_text().count("baseline") >= 2


def test_shuffled_label_shows_no_skill(store) -> None:
    frame = synthetic.purchase_frame(20_000, seed=12)
    frame[PURCHASE_LABEL] = np.random.default_rng(0).permutation(frame[PURCHASE_LABEL].to_numpy())
    result = _run(store, "purchase", frame, name="shuffled")
    assert abs(result.test_metrics["roc_auc"] - 0.5) < 0.05
    assert result.test_metrics["pr_auc"] < result.test_metrics["positive_rate"] + 0.03


def test_same_seed_reproduces_the_same_metrics(store, purchase_frame) -> None:
    first = _run(store, "purchase", purchase_frame, name="repro-a", seed=3)
    second = _run(store, "purchase", purchase_frame, name="repro-b", seed=3)
    assert first.val_metrics == second.val_metrics
    assert first.test_metrics == second.test_metrics
    assert first.winner == second.winner


def test_label_revealing_columns_outside_the_contract_are_not_used(store, purchase_frame) -> None:
    """Leakage guard for the pipeline: only ``f_*`` columns reach the model, so leaky extras change nothing."""
    leaky = purchase_frame.assign(
        will_purchase_copy=purchase_frame[PURCHASE_LABEL],
        session_purchase_total=purchase_frame[PURCHASE_LABEL] * 2 + purchase_frame["f_session_purchases_so_far"],
    )
    clean = _run(store, "purchase", purchase_frame, name="clean", seed=5)
    with_leaks = _run(store, "purchase", leaky, name="leaky", seed=5)
    assert with_leaks.test_metrics == clean.test_metrics
    assert with_leaks.test_metrics["roc_auc"] < 0.95  # a model that used the copy would be perfect
    assert clean.suspicious == [] and with_leaks.suspicious == []


def test_a_label_revealing_feature_inside_the_contract_is_flagged(store, purchase_frame) -> None:
    leaky = purchase_frame.assign(f_future_purchase=purchase_frame[PURCHASE_LABEL].astype(float))
    result = _run(store, "purchase", leaky, name="flag", grid=SMALL_GRID[:1])
    assert result.suspicious == ["f_future_purchase"]
    assert MlflowClient().get_run(result.parent_run_id).data.tags["suspect_leakage"] == "f_future_purchase"


def test_the_champion_alias_must_be_earned_against_the_baselines_and_the_champion(store, purchase_frame) -> None:
    name = f"champ-{uuid.uuid4().hex[:6]}"
    shuffled = purchase_frame.copy()
    shuffled[PURCHASE_LABEL] = np.random.default_rng(1).permutation(shuffled[PURCHASE_LABEL].to_numpy())
    weak = _run(store, "purchase", shuffled, name="weak", registered_model=name)
    assert not weak.registration.is_champion  # no better than "has a cart": a first model is not promoted for being first
    client = MlflowClient()
    assert "does not beat the best baseline" in client.get_model_version(name, weak.registration.version).tags["champion_decision"]
    strong = _run(store, "purchase", purchase_frame, name="strong", registered_model=name)
    assert strong.registration.is_champion and strong.registration.previous_champion is None
    again = _run(store, "purchase", purchase_frame, name="again", registered_model=name)  # equal: no worse, newest wins
    assert again.registration.is_champion and "is no worse than champion" in again.registration.reason
    assert float(client.get_model_version(name, again.registration.version).tags["threshold"]) == pytest.approx(
        float(client.get_model_version(name, strong.registration.version).tags["threshold"])
    )
    # A version that passes the gate but scores below the champion on the same rows keeps its hands off the alias.
    passing = registry.Gate("pr_auc", 0.5, "has_cart", 0.3, registry.PROMOTION_MARGIN, ("f_a",), None)
    worse = registry.promote_if_better(name, strong.registration.version, passing, lambda champion: 0.6)
    assert not worse.is_champion and "is worse than champion" in worse.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == again.registration.version


def test_a_model_off_the_mart_contract_never_takes_the_production_alias(store, purchase_frame) -> None:
    from ml.feature_contract import TASK_SPECS

    result = _run(store, "purchase", purchase_frame, name="off-contract", registered_model=TASK_SPECS["purchase"].registered_model)
    assert not result.registration.is_champion
    assert "features differ from the mart contract" in result.registration.reason


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(train_mod.main)
    return app


def test_cli_help_and_clear_error_on_an_empty_mart(tmp_path: Path, purchase_frame) -> None:
    runner = CliRunner()
    help_text = runner.invoke(_cli(), ["--help"]).output
    assert "--task" in help_text and "--seed" in help_text
    empty = tmp_path / "empty.parquet"
    purchase_frame.iloc[0:0].to_parquet(empty)
    result = runner.invoke(_cli(), ["--task", "purchase", "--input", str(empty), "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2
    assert "is empty" in result.output and "dbt run --select +fct_purchase_intent_features" in result.output
    assert "Traceback" not in result.output


def test_a_category_model_that_only_ties_is_refused_and_the_outputs_show_the_baseline(store) -> None:
    """Targets of categories not touched yet (the mart's rule), shuffled across rows: no model beats the
    baselines by the margin, nothing becomes champion, and output/category/ holds the served baseline's top 3."""
    frame = synthetic.category_frame(8_000, seed=6)
    targets = [c for c in frame.columns if c.startswith("y_")]
    rng = np.random.default_rng(1)
    frame[targets] = frame[targets].to_numpy()[rng.permutation(len(frame))]
    counts = ["f_session_cnt_" + c[len("y_") :] for c in targets]
    frame[targets] = np.where(frame[counts].to_numpy() > 0, 0, frame[targets].to_numpy())  # never a touched one
    result = _run(store, "category", frame, name="cat-ties", grid=[ModelConfig("logreg", {"C": 1.0})])
    assert not result.registration.is_champion and result.registration.previous_champion is None
    assert "does not beat the best baseline" in result.registration.reason
    assert {"ndcg_at_3", "coverage_at_3"} <= set(result.test_metrics)
    top = pd.read_csv(next(f for f in result.output_files if f.name == "session_top3.csv"))
    assert set(top["model_name"]) == {"baseline"} and set(top["model_version"]) == {"last_viewed"}
