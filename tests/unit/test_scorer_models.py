"""The scorer keeps scoring when a new champion cannot be loaded or fails on a batch."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from ml.baselines import LIVE_BASELINE_VERSION
from ml.feature_contract import CATEGORIES
from streaming.scorer import ChampionModels, LoadedModel


class _Purchase:
    def __init__(self, p: float) -> None:
        self.p = p

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"probability": [self.p] * len(features), "label": [int(self.p >= 0.5)] * len(features)})


class _Broken:
    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        raise ValueError("feature f_new is missing")


def test_a_champion_that_fails_on_a_batch_gives_way_to_the_previous_version() -> None:
    models = ChampionModels("unused", 30)
    models.previous["purchase"] = LoadedModel("1", _Purchase(0.7))
    models.models["purchase"] = LoadedModel("2", _Broken())
    out = models.score(pd.DataFrame({"f_a": [1.0, 2.0]}))
    assert out["purchase_probability"].tolist() == [0.7, 0.7] and out["purchase_model_version"].tolist() == ["1", "1"]
    assert "v2 failed on a batch" in models.status()["problems"]["purchase"]
    assert models.status()["models"]["purchase"] == "1" and models.refused["purchase"] == "2"


def test_with_nothing_to_fall_back_on_predictions_stay_null_and_the_stream_goes_on() -> None:
    models = ChampionModels("unused", 30)
    models.models["purchase"] = LoadedModel("2", _Broken())
    out = models.score(pd.DataFrame({"f_a": [1.0]}))
    assert out["purchase_probability"].isna().all()
    assert "no model to fall back on" in models.status()["problems"]["purchase"]


def test_a_champion_that_cannot_be_loaded_is_refused_once_and_the_loaded_one_kept(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    loads = []

    def load_model(uri: str):
        loads.append(uri)
        raise OSError("artifact store unreachable")

    import importlib

    # The module itself: the attribute `mlflow.pyfunc` is a lazy loader that setattr would not reach through.
    monkeypatch.setattr(importlib.import_module("mlflow.pyfunc"), "load_model", load_model)
    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", lambda self, name, alias: SimpleNamespace(version="5"))
    models = ChampionModels(f"sqlite:///{tmp_path / 'mlflow.db'}", 0)
    models.models["purchase"] = LoadedModel("4", _Purchase(0.2))
    models.refresh(force=True)
    models.refresh(force=True)  # the refused version is not tried again
    assert models.models["purchase"].version == "4"
    assert loads.count("models:/purchase_intent/5") == 1, loads
    assert "v5 could not be loaded" in models.problems["purchase"] and "still scoring with v4" in models.problems["purchase"]


class _WrongShape:
    """A model whose predict runs but whose output the scorer cannot use."""

    def __init__(self, output: pd.DataFrame) -> None:
        self.output = output

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        return self.output


@pytest.mark.parametrize(
    ("output", "why"),
    [
        (pd.DataFrame({"score": [0.9, 0.9]}), "probability"),  # a column missing
        (pd.DataFrame({"probability": [0.9], "label": [1]}), "returned 1 rows for 2"),  # a row short
    ],
)
def test_a_champion_whose_output_cannot_be_read_gives_way_like_one_that_raises(output: pd.DataFrame, why: str) -> None:
    models = ChampionModels("unused", 30)
    models.previous["purchase"] = LoadedModel("1", _Purchase(0.3))
    models.models["purchase"] = LoadedModel("2", _WrongShape(output))
    out = models.score(pd.DataFrame({"f_a": [1.0, 2.0]}))
    assert out["purchase_probability"].tolist() == [0.3, 0.3] and out["purchase_model_version"].tolist() == ["1", "1"]
    assert why in models.status()["problems"]["purchase"]


def test_a_category_champion_without_probabilities_gives_way_to_the_labelled_baseline() -> None:
    models = ChampionModels("unused", 30)
    models.models["category"] = LoadedModel("3", _WrongShape(pd.DataFrame({"top_1": ["a"]})))
    out = models.score(pd.DataFrame({"f_a": [1.0]}))
    assert out["category_model_version"].tolist() == [LIVE_BASELINE_VERSION] and out["top_1"].notna().all()
    assert "no p_<category> column" in models.status()["problems"]["category"]


def test_without_a_category_champion_the_scorer_serves_the_last_viewed_baseline_labelled() -> None:
    """No model beat the baselines: the documents get the baseline's top 3, never a category the session has touched."""
    models = ChampionModels("unused", 30)
    features = pd.DataFrame(
        {
            **{f"f_so_far_{c}": [0.0] for c in CATEGORIES},
            **{f"f_prior_share_{c}": [0.0] for c in CATEGORIES},
        }
    )
    features["f_so_far_electronics"], features["f_so_far_apparel"] = 3.0, 1.0
    features["f_prior_share_kids"], features["f_prior_share_electronics"], features["f_prior_share_sport"] = 0.5, 0.3, 0.2
    out = models.score(features).iloc[0]
    assert out["category_model_version"] == LIVE_BASELINE_VERSION and out["purchase_probability"] is None
    assert [out["top_1"], out["top_2"]] == ["kids", "sport"]  # the user's earlier categories not touched yet
    assert out["top_3"] not in ("electronics", "apparel", "unknown")


def test_a_registry_that_cannot_be_opened_keeps_the_loaded_models() -> None:
    models = ChampionModels("no-such-scheme://registry", 0)
    models.models["purchase"] = LoadedModel("4", _Purchase(0.2))
    models.refresh(force=True)
    assert models.status()["models"]["purchase"] == "4"
