"""Model families, the hyper-parameter grid, baselines and the MLflow pyfunc wrappers.

Two families, both already pinned in requirements.txt and well suited to a few
million rows of a few dozen numeric columns on 2 cores:

* scikit-learn ``LogisticRegression`` on standardised features: fast (lbfgs),
  regularised by ``C``, near-calibrated probabilities, coefficients as importance;
  the strong simple model any boosted model must beat.
* LightGBM (``LGBMClassifier``): histogram gradient-boosted trees, multithreaded,
  fits 1 M rows in seconds, catches interactions (cart x price x intent) and
  gives gain importance. Deterministic mode makes runs with one seed repeatable.

The pyfunc wrappers carry the column order (from the ``f_*`` discovery at training
time) and, for purchase intent, the decision threshold, so the live scorer gets a
model that answers the same way training evaluated it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow.pyfunc
import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

N_JOBS = 2
# Below this many training rows LightGBM runs single-threaded: on a small frame two
# OpenMP threads mostly spin-wait, and on a shared 2-core box that is 10x slower.
MULTITHREAD_MIN_ROWS = 200_000


def auto_n_jobs(n_rows: int) -> int:
    return N_JOBS if n_rows >= MULTITHREAD_MIN_ROWS else 1


@dataclass(frozen=True)
class ModelConfig:
    """One point of the grid: a family and its hyper-parameters."""

    family: str
    params: dict[str, float | int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.family + "-" + "-".join(f"{k}={v}" for k, v in self.params.items())


def default_grid(task: str) -> list[ModelConfig]:
    """The manual grid: 3 logistic regressions and 6 (purchase) / 5 (category) LightGBMs.

    The category task fits one model per category (14), so its boosted configs are
    smaller to keep the whole grid within the same time budget.
    """
    logreg = [ModelConfig("logreg", {"C": c}) for c in (0.01, 0.1, 1.0)]
    if task == "purchase":
        boosted = [
            (15, 0.1, 100),
            (31, 0.1, 100),
            (31, 0.05, 200),
            (63, 0.05, 200),
            (63, 0.1, 300),
            (127, 0.05, 300),
        ]
    else:
        boosted = [(15, 0.1, 50), (31, 0.1, 50), (31, 0.05, 100), (63, 0.1, 100), (15, 0.05, 150)]
    lgbm = [ModelConfig("lightgbm", {"num_leaves": nl, "learning_rate": lr, "n_estimators": ne}) for nl, lr, ne in boosted]
    return logreg + lgbm


def make_estimator(config: ModelConfig, seed: int, n_jobs: int = 1):
    """A fresh, unfitted scikit-learn-compatible binary classifier for ``config``."""
    if config.family == "logreg":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("model", LogisticRegression(C=float(config.params["C"]), max_iter=1000, random_state=seed)),
            ]
        )
    if config.family == "lightgbm":
        return LGBMClassifier(
            num_leaves=int(config.params["num_leaves"]),
            learning_rate=float(config.params["learning_rate"]),
            n_estimators=int(config.params["n_estimators"]),
            min_child_samples=50,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.9,
            random_state=seed,
            n_jobs=n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
    raise ValueError(f"unknown model family {config.family!r}")


def importance(estimator, n_features: int) -> np.ndarray:
    """Feature importance normalised to sum 1: |standardised coefficient| or LightGBM gain."""
    if isinstance(estimator, PerLabelClassifier):
        parts = [importance(e, n_features) for e in estimator.estimators_ if e is not None]
        return np.mean(parts, axis=0) if parts else np.zeros(n_features)
    if isinstance(estimator, Pipeline):
        raw = np.abs(estimator.named_steps["model"].coef_[0])
    else:
        raw = np.asarray(estimator.booster_.feature_importance(importance_type="gain"), dtype=float)
    total = raw.sum()
    return raw / total if total > 0 else raw


class PerLabelClassifier:
    """One binary classifier per category; a category never seen positive gets its constant rate.

    Chosen over sklearn's OneVsRest/MultiOutput so that a category absent from the
    training window (common for rare ones in a short time window) does not fail the fit.
    """

    def __init__(self, config: ModelConfig, seed: int, n_jobs: int = 1) -> None:
        self.config = config
        self.seed = seed
        self.n_jobs = n_jobs
        self.estimators_: list = []
        self.priors_: np.ndarray = np.array([])

    def fit(self, X: np.ndarray, Y: np.ndarray) -> PerLabelClassifier:
        self.priors_ = Y.mean(axis=0)
        self.estimators_ = []
        for j in range(Y.shape[1]):
            if len(np.unique(Y[:, j])) < 2:
                self.estimators_.append(None)
                continue
            self.estimators_.append(make_estimator(self.config, self.seed, self.n_jobs).fit(X, Y[:, j]))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), len(self.estimators_)))
        for j, est in enumerate(self.estimators_):
            out[:, j] = self.priors_[j] if est is None else est.predict_proba(X)[:, 1]
        return out


def fit_model(task: str, config: ModelConfig, X: np.ndarray, y: np.ndarray, seed: int, n_jobs: int | None = None):
    """Fit one configuration; ``n_jobs=None`` picks threads from the number of rows."""
    n_jobs = auto_n_jobs(len(X)) if n_jobs is None else n_jobs
    if task == "purchase":
        return make_estimator(config, seed, n_jobs).fit(X, y)
    return PerLabelClassifier(config, seed, n_jobs).fit(X, y)


def predict_scores(task: str, model, X: np.ndarray) -> np.ndarray:
    """P(purchase) as a vector, or per-category probabilities as a matrix."""
    return model.predict_proba(X)[:, 1] if task == "purchase" else model.predict_proba(X)


def _as_matrix(model_input: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    missing = [c for c in feature_names if c not in model_input.columns]
    if missing:
        raise ValueError(f"input lacks feature column(s) {missing}")
    return model_input[feature_names].to_numpy(dtype=float)


class PurchaseIntentModel(mlflow.pyfunc.PythonModel):
    """P(the session buys after this point) and the 0/1 label at the stored threshold."""

    def __init__(self, estimator, feature_names: list[str], threshold: float) -> None:
        self.estimator = estimator
        self.feature_names = list(feature_names)
        self.threshold = float(threshold)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        p = self.estimator.predict_proba(_as_matrix(model_input, self.feature_names))[:, 1]
        return pd.DataFrame({"probability": p, "label": (p >= self.threshold).astype("int64")})


class CategoryTop3Model(mlflow.pyfunc.PythonModel):
    """A probability per top-level category (``p_<category>``) and the three most likely ones.

    ``seen_columns`` (one per category, the session's events so far): for a target of
    categories not touched yet, a category the session has touched gets probability 0
    and no top-3 slot, as training evaluated it.
    """

    def __init__(
        self, estimator: PerLabelClassifier, feature_names: list[str], categories: list[str], seen_columns: list[str] | None = None
    ) -> None:
        self.estimator = estimator
        self.feature_names = list(feature_names)
        self.categories = list(categories)
        self.seen_columns = list(seen_columns) if seen_columns else None

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        scores = self.estimator.predict_proba(_as_matrix(model_input, self.feature_names))
        seen = getattr(self, "seen_columns", None)  # absent from models pickled before it existed
        if seen:
            scores = np.where(model_input[seen].to_numpy(dtype=float) > 0, 0.0, scores)
        out = pd.DataFrame(scores, columns=[f"p_{c}" for c in self.categories])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :3]
        names = np.asarray(self.categories, dtype=object)
        for i in range(min(3, len(self.categories))):
            out[f"top_{i + 1}"] = names[order[:, i]]
        return out
