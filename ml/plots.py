"""PNG figures for MLflow runs and the per-run summary (matplotlib, Agg backend, no display).

Curves are drawn from at most a few thousand points so that a 1 M-row test window
does not turn plotting into the slowest step of the grid.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

_MAX_POINTS = 2000


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= _MAX_POINTS:
        return list(arrays)
    idx = np.unique(np.linspace(0, n - 1, _MAX_POINTS).astype(int))
    return [a[idx] for a in arrays]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def roc_pr_curves(y: np.ndarray, scores: dict[str, np.ndarray], out_dir: Path, prefix: str = "") -> list[Path]:
    """ROC and precision-recall curves of the model and the baselines on one set of rows."""
    fig_roc, ax_roc = plt.subplots(figsize=(5, 4))
    fig_pr, ax_pr = plt.subplots(figsize=(5, 4))
    if len(np.unique(y)) == 2:
        for name, p in scores.items():
            fpr, tpr, _ = roc_curve(y, p)
            ax_roc.plot(*_thin(fpr, tpr), label=name)
            prec, rec, _ = precision_recall_curve(y, p)
            ax_pr.plot(*_thin(rec, prec), label=name)
    ax_roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax_roc.legend(fontsize=7)
    ax_pr.legend(fontsize=7)
    return [_save(fig_roc, out_dir / f"{prefix}roc_curve.png"), _save(fig_pr, out_dir / f"{prefix}pr_curve.png")]


def calibration(y: np.ndarray, p: np.ndarray, out_dir: Path, prefix: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(np.unique(y)) == 2:
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, "o-", label="model")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Calibration")
    ax.legend(fontsize=7)
    return _save(fig, out_dir / f"{prefix}calibration.png")


def feature_importance(names: list[str], values: np.ndarray, out_dir: Path, prefix: str = "", top: int = 25) -> Path:
    order = np.argsort(values)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, max(3, 0.25 * len(order) + 1)))
    ax.barh([names[i] for i in order], values[order])
    ax.set(xlabel="share of importance", title="Feature importance")
    return _save(fig, out_dir / f"{prefix}feature_importance.png")


def confusion(y: np.ndarray, pred: np.ndarray, out_dir: Path, prefix: str = "") -> Path:
    cm = confusion_matrix(y, pred, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:,}", ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title="Confusion matrix")
    return _save(fig, out_dir / f"{prefix}confusion_matrix.png")


def bars(values: dict[str, float], title: str, xlabel: str, path: Path) -> Path:
    """Horizontal bars (e.g. validation metric per grid configuration, or per-category AUC)."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(names) + 1)))
    ax.barh(names, [values[n] for n in names])
    ax.set(xlabel=xlabel, title=title)
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def grouped_bars(table: dict[str, dict[str, float]], title: str, path: Path) -> Path:
    """Metrics (columns) of several scorers (groups): the model vs the baselines."""
    scorers = list(table)
    metrics = list(next(iter(table.values())))
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(scorers))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, s in enumerate(scorers):
        ax.bar(x + i * width, [table[s][m] for m in metrics], width, label=s)
    ax.set_xticks(x + width * (len(scorers) - 1) / 2, metrics, rotation=20, fontsize=8)
    ax.set(title=title)
    ax.legend(fontsize=7)
    return _save(fig, path)
