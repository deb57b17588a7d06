"""Files a training run leaves for people and downstream jobs under ``output/``.

* ``predictions.csv``: purchase probability per test-window prediction point, with the
  model name and version that produced it (so a figure can say which model it shows).
* ``category/session_top3.csv`` and ``category/user_top3.csv``: the three most likely
  next categories with probabilities, at each session's / user's latest point; when no
  category model holds the champion alias, those of the last-viewed baseline the scorer
  serves (``model_name`` baseline, ``model_version`` last_viewed).
* ``runs/<task>-<run>/``: the metrics summary (markdown table, CSV, plots) of one run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml import plots
from ml.feature_contract import PURCHASE_LABEL, category_of_target
from ml.registry import Registration


def write_predictions(
    task: str,
    frame: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    targets: list[str],
    model_name: str,
    version: str,
    output_dir: Path,
) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    keys = frame[["session_id", "user_id", "prediction_point", "prediction_time"]].reset_index(drop=True)
    if task == "purchase":
        out = keys.assign(
            probability=scores,
            predicted_label=(scores >= threshold).astype(int),
            label=frame[PURCHASE_LABEL].to_numpy(),
            model_name=model_name,
            model_version=version,
        )
        path = output_dir / "predictions.csv"
        out.to_csv(path, index=False)
        return [path]
    cats = np.asarray([category_of_target(t) for t in targets], dtype=object)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    top = keys.copy()
    for i in range(order.shape[1]):
        top[f"category_{i + 1}"] = cats[order[:, i]]
        top[f"probability_{i + 1}"] = np.take_along_axis(scores, order[:, i : i + 1], axis=1)[:, 0]
    top["model_name"], top["model_version"] = model_name, version
    latest = top.sort_values(["prediction_time", "prediction_point"])
    cat_dir = output_dir / "category"
    cat_dir.mkdir(parents=True, exist_ok=True)
    per_session = latest.groupby("session_id", sort=False).tail(1).sort_values("session_id")
    per_user = latest.groupby("user_id", sort=False).tail(1).drop(columns=["prediction_point"]).sort_values("user_id")
    paths = [cat_dir / "session_top3.csv", cat_dir / "user_top3.csv"]
    per_session.to_csv(paths[0], index=False)
    per_user.to_csv(paths[1], index=False)
    return paths


def write_summary(
    out: Path,
    task: str,
    winner: str,
    reason: str,
    selection_metric: str,
    val_metrics: dict[str, dict[str, float]],
    base_val: dict[str, dict[str, float]],
    test: dict[str, float],
    base_test: dict[str, dict[str, float]],
    split: dict[str, object],
    reg: Registration,
    data_note: str,
    by_point: pd.DataFrame,
) -> list[Path]:
    """Markdown + CSV tables and a grid plot: the short, human-readable record of the run."""
    out.mkdir(parents=True, exist_ok=True)
    grid = pd.DataFrame(val_metrics).T.sort_values(selection_metric, ascending=False)
    grid.index.name = "configuration"
    grid.to_csv(out / "grid_validation.csv")
    comparison = pd.DataFrame({"model (" + winner + ")": test} | {f"baseline {k}": v for k, v in base_test.items()}).T
    comparison.index.name = "scorer"
    comparison.to_csv(out / "test_metrics.csv")
    by_point.to_csv(out / "test_metrics_by_point.csv")
    plots.bars(
        {k: v[selection_metric] for k, v in val_metrics.items()} | {f"baseline {k}": v[selection_metric] for k, v in base_val.items()},
        f"validation {selection_metric} per configuration",
        selection_metric,
        out / "grid_validation.png",
    )
    lines = [
        f"# {task} training run",
        "",
        f"- data: {data_note}",
        f"- winner: `{winner}` — {reason}; refitted on train + validation before the test window",
        f"- registered: `{reg.name}` v{reg.version}; champion: {reg.is_champion} ({reg.reason})",
        "- split: " + ", ".join(f"{k}={v}" for k, v in split.items()),
        "",
        "## Test window (never used for selection)",
        "",
        _markdown(comparison),
        "",
        "## Test window per prediction point k (k events seen, no purchase yet)",
        "",
        _markdown(by_point.reset_index().set_index("scorer")),
        "",
        "## Validation, every configuration",
        "",
        _markdown(grid),
        "",
    ]
    (out / "summary.md").write_text("\n".join(lines))
    files = ("summary.md", "grid_validation.csv", "test_metrics.csv", "test_metrics_by_point.csv", "grid_validation.png")
    return [out / f for f in files]


def _markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (pandas' to_markdown needs the optional `tabulate`)."""
    head = [table.index.name or "", *map(str, table.columns)]
    rows = [
        [str(i), *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r)]
        for i, r in zip(table.index, table.to_numpy().tolist(), strict=True)
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
