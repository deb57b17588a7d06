"""Logging the chosen model to the MLflow registry and the `champion` alias rule.

A new version is always registered (it is the winner of its grid), but it only
takes the ``champion`` alias, which the live scorer loads, when it scores better
than the current champion *on the same test window*: both models are evaluated on
the rows of this run's held-out window, so the comparison is apples to apples even
when the two were trained on different data.
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


def promote_if_better(
    name: str,
    version: str,
    new_score: float,
    score_champion: Callable[[mlflow.pyfunc.PyFuncModel], float],
    metric_name: str,
) -> Registration:
    """Give ``version`` the champion alias only if it beats the current champion on ``metric_name``.

    ``score_champion`` evaluates a loaded model on this run's test window. A champion
    that cannot score the current rows (its features no longer exist) is replaced,
    and the reason says so.
    """
    client = MlflowClient()
    champ = current_champion(client, name)
    prev_score: float | None = None
    if champ is None:
        win, reason = True, f"no current champion; version {version} becomes champion (test {metric_name}={new_score:.4f})"
    elif str(champ.version) == str(version):
        win, reason = True, "already champion"
    else:
        try:
            prev_score = float(score_champion(mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")))
        except Exception as exc:  # a champion with an incompatible schema cannot defend its title
            prev_score = None
            win, reason = True, f"champion v{champ.version} cannot score the current test window ({type(exc).__name__}: {exc}); replaced"
        else:
            win = bool(np.isfinite(new_score) and (not np.isfinite(prev_score) or new_score > prev_score))
            verb = "beats" if win else "does not beat"
            reason = (
                f"v{version} test {metric_name}={new_score:.4f} {verb} champion v{champ.version} ({prev_score:.4f}) on the same test window"
            )
    if win:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "champion_decision", reason)
    client.set_model_version_tag(name, version, "beat_champion", str(win).lower())
    return Registration(name, str(version), win, reason, None if champ is None else str(champ.version), prev_score)
