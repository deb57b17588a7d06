"""Logging the chosen model to the MLflow registry and the `champion` alias rule.

A new version is always registered (it is the winner of its grid), but it only
takes the ``champion`` alias, which the live scorer loads, when it passes the
:class:`Gate` (beats the best baseline by a stated margin, trained on the mart
contract's features) and is no worse than the current champion *on the same test
window*: both models are evaluated on the rows of this run's held-out window, so the
comparison is apples to apples even when the two were trained on different data.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
_PIP_PACKAGES = ("mlflow", "scikit-learn", "lightgbm", "pandas", "numpy", "cloudpickle")


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    is_champion: bool
    reason: str
    previous_champion: str | None
    previous_score: float | None


def pip_requirements() -> list[str]:
    """Exact pins of what the pyfunc needs, so loading never re-resolves packages."""
    return [f"{p}=={importlib.metadata.version(p)}" for p in _PIP_PACKAGES]


def log_model(python_model, example: pd.DataFrame, registered_name: str, metadata: dict[str, object]):
    """Log the pyfunc in the active run with signature + input example and register it; return the ModelVersion."""
    output = python_model.predict(None, example)
    signature = infer_signature(example, output)
    code_dir = Path(__file__).resolve().parent  # the `ml` package, so the model loads without this checkout
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        signature=signature,
        input_example=example,
        registered_model_name=registered_name,
        pip_requirements=pip_requirements(),
        code_paths=[str(code_dir)],
        metadata=metadata,
    )
    return MlflowClient().get_model_version(registered_name, str(info.registered_model_version))


def current_champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Gate:
    """What a new version must show, on this run's test window, to take the ``champion`` alias.

    It must beat the best baseline by ``margin`` on ``metric`` (a model no better than
    "has a cart" or "what they viewed last" adds nothing a rule would not), be no worse
    than the current champion on the same rows, and have been trained on exactly the
    mart contract's features (``contract``; None: the run says it is not for production).
    """

    metric: str
    score: float
    best_baseline: str
    baseline_score: float
    margin: float
    features: tuple[str, ...]
    contract: tuple[str, ...] | None

    def refusal(self) -> str | None:
        """Why the version may not be champion whatever the champion does, or None."""
        if self.contract is not None and self.features != self.contract:
            missing = [f for f in self.contract if f not in self.features]
            extra = [f for f in self.features if f not in self.contract]
            return f"its features differ from the mart contract (missing {missing}, extra {extra}, or another order); not promoted"
        if not (np.isfinite(self.score) and self.score >= self.baseline_score + self.margin):
            return (
                f"test {self.metric}={self.score:.4f} does not beat the best baseline {self.best_baseline} "
                f"({self.baseline_score:.4f}) by the margin {self.margin}; not promoted"
            )
        return None


# Above the best baseline's selection metric on the test window, in absolute terms.
PROMOTION_MARGIN = 0.01


def promote_if_better(
    name: str,
    version: str,
    gate: Gate,
    score_champion: Callable[[mlflow.pyfunc.PyFuncModel], float],
) -> Registration:
    """Give ``version`` the champion alias only if it passes ``gate`` and is no worse than the current champion.

    ``score_champion`` evaluates a loaded model on this run's test window. A champion
    that cannot score the current rows (its features no longer exist) cannot defend
    its title; the new version still has to pass the gate.
    """
    client = MlflowClient()
    champ = current_champion(client, name)
    prev_score: float | None = None
    refusal = gate.refusal()
    metric, new_score = gate.metric, gate.score
    if refusal:
        win, reason = False, f"v{version}: {refusal}"
    elif champ is None:
        win, reason = True, f"no current champion; version {version} becomes champion (test {metric}={new_score:.4f}, {_over(gate)})"
    elif str(champ.version) == str(version):
        win, reason = True, "already champion"
    else:
        try:
            prev_score = float(score_champion(mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")))
        except Exception as exc:  # a champion with an incompatible schema cannot defend its title
            prev_score = None
            win = True
            reason = f"champion v{champ.version} cannot score the current test window ({type(exc).__name__}: {exc}); v{version} passes the gate ({_over(gate)}) and replaces it"
        else:
            win = bool(not np.isfinite(prev_score) or new_score >= prev_score)
            verb = "is no worse than" if win else "is worse than"
            reason = (
                f"v{version} test {metric}={new_score:.4f} {verb} champion v{champ.version} ({prev_score:.4f}) "
                f"on the same test window; {_over(gate)}"
            )
    if win:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "champion_decision", reason)
    client.set_model_version_tag(name, version, "beat_champion", str(win).lower())
    return Registration(name, str(version), win, reason, None if champ is None else str(champ.version), prev_score)


def _over(gate: Gate) -> str:
    return f"{gate.score - gate.baseline_score:+.4f} over the best baseline {gate.best_baseline} (margin {gate.margin})"
