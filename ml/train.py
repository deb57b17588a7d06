"""Train purchase-intent and top-3-category models: time split, MLflow grid search, registry.

``python -m ml.train --task purchase|category`` reads the task's feature mart (or a
given/synthetic frame), splits it by time, fits every grid configuration as a nested
MLflow run, picks the winner on the validation window only, evaluates it once on the
test window next to the baselines, registers it, and moves the ``champion`` alias
only when it beats the current champion on that same test window. It writes
``output/predictions.csv`` / ``output/category/`` and a per-run metrics summary.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lakehouse import config
from lakehouse.services import ServiceError
from ml import baselines, metrics, models, outputs, plots, registry
from ml.baselines import LIVE_BASELINE_VERSION
from ml.feature_contract import (
    PURCHASE_LABEL,
    TASK_SPECS,
    TASKS,
    UNKNOWN_CATEGORY,
    MartError,
    cart_feature,
    category_of_target,
    contract_features,
    feature_columns,
    read_mart,
    target_columns,
)
from ml.splits import SplitError, time_split

SELECTION_METRIC = {"purchase": "pr_auc", "category": "recall_at_3"}
console = Console(stderr=True)


class TrackingError(RuntimeError):
    """The MLflow tracking server is not reachable."""


@dataclass
class TrainResult:
    """What a training run produced; returned to tests and benchmarks."""

    task: str
    parent_run_id: str
    winner: str
    selection_metric: str
    val_metrics: dict[str, dict[str, float]]
    test_metrics: dict[str, float]
    test_baselines: dict[str, dict[str, float]]
    registration: registry.Registration
    summary_dir: Path
    output_files: list[Path] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)
    split: dict[str, object] = field(default_factory=dict)  # Split.describe(): mode, boundaries, rows and sessions per window


def _check_tracking(uri: str) -> None:
    """Fail fast with advice instead of MLflow's minutes of retries against a dead server."""
    if not uri.startswith("http"):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
            pass
    except OSError as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable ({exc}); start the embedded one with "
            "`python -m lakehouse.services start mlflow` or set MLFLOW_TRACKING_URI."
        ) from exc


# Days at the start of the data whose sessions are left out: their users, products and
# categories have no history yet, so every history feature is zero there and nowhere
# else; kept in, they shift the feature distribution between train and test.
HISTORY_WARMUP_DAYS = 1


def without_warmup(frame: pd.DataFrame, days: int) -> tuple[pd.DataFrame, str]:
    """The frame without sessions that start in the first ``days`` days, and a note saying what was done.

    Kept only when at least four days remain, so that a small data set still splits.
    """
    start = frame.groupby("session_id", sort=False)["prediction_time"].transform("min")
    first = start.min().floor("D") if len(frame) else None
    if days <= 0 or first is None or start.dt.floor("D").nunique() - days < 4:
        return frame, "no history warm-up (too few days)" if days > 0 else "no history warm-up"
    cut = first + pd.Timedelta(days=days)
    return frame[start >= cut].reset_index(drop=True), f"history warm-up: sessions before {cut:%Y-%m-%d} left out ({days} day)"


def points_table(
    t: _Task,
    frame: pd.DataFrame,
    y: np.ndarray,
    scores: np.ndarray,
    base: dict[str, np.ndarray],
    threshold: float,
    base_thresholds: dict[str, float | None],
) -> pd.DataFrame:
    """Test metrics of the model and each baseline per prediction point k (rows: scorer, k)."""
    keep = (
        ("rows", "roc_auc", "pr_auc", "brier", "positive_rate")
        if t.task == "purchase"
        else ("rows", "hit_at_3", "recall_at_3", "ndcg_at_3", "coverage_at_3")
    )
    points = frame["prediction_point"].to_numpy()
    rows = {}
    for scorer, values, cut in [("model", scores, threshold), *((f"baseline_{k}", v, base_thresholds[k]) for k, v in base.items())]:
        per_k = metrics.per_point(points, lambda m, v=values, c=cut: t.evaluate(y[m], v[m], c))
        for k, m in per_k.items():
            rows[(scorer, k)] = {name: m[name] for name in keep}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["scorer", "k"]
    return table


# Fewest sessions that reach the outcome (and that do not) in each window: below it a
# metric is noise and a grid search picks at random, so the run says so and stops.
MIN_SESSIONS_PER_OUTCOME = 5


def require_learnable(task: str, labels: dict[str, np.ndarray], split) -> None:
    """Raise ``SplitError`` saying what is missing when a window cannot train or judge a model.

    A few hours of a shop (a sample file) hold a handful of purchases at most; a model
    fitted and tested on them would print figures that mean nothing.
    """
    windows = {"train": split.train, "val": split.val, "test": split.test}
    for name, frame in windows.items():
        y = labels[name]
        ids = frame["session_id"].to_numpy()
        reached = y.astype(bool) if task == "purchase" else y.astype(bool).any(axis=1)
        positive = len(np.unique(ids[reached]))
        negative = len(np.unique(ids[~reached])) if task == "purchase" else len(np.unique(ids))
        what = "sessions that go on to buy" if task == "purchase" else "sessions that go on to another category"
        if positive < MIN_SESSIONS_PER_OUTCOME or negative < MIN_SESSIONS_PER_OUTCOME:
            raise SplitError(
                f"the {name} window ({split.describe()['split_mode']} split, {frame['session_id'].nunique():,} sessions) has "
                f"{positive} {what}; each of train, validation and test needs at least {MIN_SESSIONS_PER_OUTCOME} "
                f"(and {MIN_SESSIONS_PER_OUTCOME} that do not). Use more data: a file spanning several days "
                "(a full day of REES46 holds thousands of purchases), or generated data (`--events`)."
            )


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items() if v is not None and np.isfinite(v)}


class _Task:
    """The task-specific pieces (labels, scores, metrics, plots) behind one training loop."""

    def __init__(self, task: str, features: list[str], train: pd.DataFrame) -> None:
        self.task = task
        self.features = features
        # `unknown` (an empty category_code) is not a category a shop can recommend: no top-3 slot goes to it.
        self.targets = (
            [PURCHASE_LABEL]
            if task == "purchase"
            else [c for c in target_columns(list(train.columns)) if category_of_target(c) != UNKNOWN_CATEGORY]
        )
        self.train_frame = train
        # The mart's category target leaves out the categories the session touched up to the
        # point (never positive there): when the training rows say so, every scorer (model,
        # baselines, champion) is judged with those masked, and the served model masks them too.
        seen = None if task == "purchase" else baselines.seen_categories(train, self.targets)
        self.exclude_seen = bool(seen is not None and not train[self.targets].to_numpy()[seen].any())

    def mask(self, frame: pd.DataFrame, scores: np.ndarray) -> np.ndarray:
        """Scores with the categories the session has already touched set below any score (when the target excludes them)."""
        if not self.exclude_seen:
            return scores
        return np.where(baselines.seen_categories(frame, self.targets), -1.0, scores)

    def y(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[PURCHASE_LABEL].to_numpy() if self.task == "purchase" else frame[self.targets].to_numpy()

    def baselines(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if self.task == "purchase":
            return baselines.purchase_baselines(self.train_frame, frame, PURCHASE_LABEL)
        return {k: self.mask(frame, v) for k, v in baselines.category_baselines(self.train_frame, frame, self.targets).items()}

    def evaluate(self, y: np.ndarray, scores: np.ndarray, threshold: float | None) -> dict[str, float]:
        if self.task == "purchase":
            return metrics.binary_metrics(y, scores, 0.5 if threshold is None else threshold)
        return metrics.topk_metrics(y, scores, k=3)

    def figures(
        self, y: np.ndarray, scores: np.ndarray, base: dict[str, np.ndarray], threshold: float, model, out: Path, prefix: str
    ) -> None:
        imp = models.importance(model, len(self.features))
        plots.feature_importance(self.features, imp, out, prefix)
        if self.task == "purchase":
            plots.roc_pr_curves(y, {"model": scores, **base}, out, prefix)
            plots.calibration(y, scores, out, prefix)
            plots.confusion(y, (scores >= threshold).astype(int), out, prefix)
            return
        plots.calibration(y.ravel(), np.clip(scores, 0.0, 1.0).ravel(), out, prefix)  # masked (touched) categories: 0
        aucs = metrics.per_category_auc(y, scores)
        names = [category_of_target(t) for t in self.targets]
        plots.bars(
            {n: (0.5 if np.isnan(a) else a) for n, a in zip(names, aucs, strict=True)},
            "ROC AUC per category",
            "ROC AUC",
            out / f"{prefix}category_auc.png",
        )
        table = {"model": self.evaluate(y, scores, None)} | {k: self.evaluate(y, v, None) for k, v in base.items()}
        keep = ("hit_at_3", "precision_at_3", "recall_at_3", "mean_category_auc")
        plots.grouped_bars(
            {k: {m: v[m] for m in keep} for k, v in table.items()}, "Top-3 metrics vs baselines", out / f"{prefix}top3_vs_baselines.png"
        )

    def wrap(self, model, threshold: float):
        if self.task == "purchase":
            return models.PurchaseIntentModel(model, self.features, threshold)
        cats = [category_of_target(t) for t in self.targets]
        seen = [f"{baselines.session_count_prefix(self.features, cats)}{c}" for c in cats] if self.exclude_seen else None
        return models.CategoryTop3Model(model, self.features, cats, seen)

    def champion_scores(self, pyfunc_model, frame: pd.DataFrame) -> np.ndarray:
        out = pyfunc_model.predict(frame[self.features])
        if self.task == "purchase":
            return out["probability"].to_numpy()
        return self.mask(
            frame,
            np.column_stack(
                [
                    out[f"p_{category_of_target(t)}"].to_numpy() if f"p_{category_of_target(t)}" in out else np.zeros(len(out))
                    for t in self.targets
                ]
            ),
        )


def train(
    task: str,
    frame: pd.DataFrame | None = None,
    *,
    seed: int = 42,
    val_frac: float = 0.2,
    test_frac: float = 0.2,
    output_dir: Path = Path("output"),
    tracking_uri: str | None = None,
    experiment: str | None = None,
    registered_model: str | None = None,
    grid: list[models.ModelConfig] | None = None,
    show_progress: bool = True,
    n_jobs: int | None = None,
    spark=None,
    data_note: str = "the dbt feature mart (the events loaded into bronze)",
    warmup_days: int = HISTORY_WARMUP_DAYS,
) -> TrainResult:
    """Run the whole grid for ``task`` and return what was chosen, measured and registered.

    ``data_note`` says which data the figures describe (it goes into the MLflow run's
    description and the run summary): generated data describes the generator.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    spec = TASK_SPECS[task]
    # Read even when a URI is given: for the embedded server, reading it hands MLflow's client the login.
    configured = config.load().mlflow_uri
    uri = tracking_uri or configured
    _check_tracking(uri)
    data, warmup_note = without_warmup(read_mart(task, frame, spark=spark), warmup_days)
    split = time_split(data, val_frac, test_frac)
    features = feature_columns(list(data.columns))
    t = _Task(task, features, split.train)
    X = {k: getattr(split, k)[features].to_numpy(dtype=float) for k in ("train", "val", "test")}
    Y = {k: t.y(getattr(split, k)) for k in ("train", "val", "test")}
    require_learnable(task, Y, split)
    grid = grid or models.default_grid(task)
    sel = SELECTION_METRIC[task]
    suspicious = metrics.suspicious_features(X["train"], Y["train"], features) if task == "purchase" else []
    if suspicious:
        console.print(
            f"[bold red]warning:[/] feature(s) {suspicious} alone separate the label almost perfectly: check the mart for leakage"
        )

    base_val = t.baselines(split.val)
    base_thresholds = (
        {k: metrics.choose_threshold(Y["val"], v) for k, v in base_val.items()} if task == "purchase" else dict.fromkeys(base_val)
    )
    base_val_metrics = {k: t.evaluate(Y["val"], v, base_thresholds[k]) for k, v in base_val.items()}

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment or spec.experiment)
    val_metrics: dict[str, dict[str, float]] = {}
    best: tuple[float, str, object, float] | None = None
    with tempfile.TemporaryDirectory(prefix="ml-train-") as tmp_name, mlflow.start_run(run_name=f"{task}-grid-seed{seed}") as parent:
        tmp = Path(tmp_name)
        mlflow.log_params(
            {
                "task": task,
                "seed": seed,
                "val_frac": val_frac,
                "test_frac": test_frac,
                "grid_size": len(grid),
                "n_features": len(features),
                "selection_metric": f"val_{sel}",
                "history_warmup": warmup_note,
            }
            | split.describe()
        )
        mlflow.set_tag("mlflow.note.content", f"Data: {data_note}. {warmup_note}.")
        mlflow.set_tag("data", data_note)
        if task == "purchase":
            mlflow.log_param("baseline_cart_feature", cart_feature(features) or "none")
        else:
            mlflow.log_param("baseline_last_viewed_source", baselines.last_viewed_source(list(data.columns), t.targets))
            mlflow.log_param("category_target_excludes_seen", t.exclude_seen)
        mlflow.log_dict({"feature_columns": features, "targets": t.targets}, "feature_columns.json")
        if suspicious:
            mlflow.set_tag("suspect_leakage", ",".join(suspicious))

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress,
        ) as progress:
            bar = progress.add_task(f"{task} grid", total=len(grid))
            for cfg in grid:
                progress.update(bar, description=f"{task}: {cfg.name}")
                with mlflow.start_run(run_name=cfg.name, nested=True):
                    started = time.perf_counter()
                    model = models.fit_model(task, cfg, X["train"], Y["train"], seed, n_jobs)
                    fit_s = time.perf_counter() - started
                    scores = t.mask(split.val, models.predict_scores(task, model, X["val"]))
                    threshold = metrics.choose_threshold(Y["val"], scores) if task == "purchase" else 0.5
                    m = t.evaluate(Y["val"], scores, threshold)
                    val_metrics[cfg.name] = m
                    mlflow.log_params({"family": cfg.family, **cfg.params, "threshold": round(threshold, 6), "seed": seed})
                    mlflow.log_metrics(_prefixed("val_", m) | {"fit_seconds": fit_s})
                    for name, bm in base_val_metrics.items():
                        mlflow.log_metrics(_prefixed(f"val_baseline_{name}_", bm))
                    fig_dir = tmp / cfg.name
                    t.figures(Y["val"], scores, base_val, threshold, model, fig_dir, "val_")
                    mlflow.log_artifacts(str(fig_dir), "plots")
                    score = m[sel] if np.isfinite(m[sel]) else -np.inf
                    if best is None or score > best[0]:
                        best = (score, cfg.name, model, threshold)
                progress.advance(bar)

        assert best is not None
        _, winner, model, threshold = best
        ranked = sorted(val_metrics, key=lambda n: val_metrics[n][sel], reverse=True)
        runner = ranked[1] if len(ranked) > 1 else None
        best_base = max(base_val_metrics, key=lambda k: np.nan_to_num(base_val_metrics[k][sel], nan=-1.0))
        reason = (
            f"{winner} has the highest validation {sel} ({val_metrics[winner][sel]:.4f})"
            + (f", ahead of {runner} ({val_metrics[runner][sel]:.4f})" if runner else "")
            + f"; best baseline {best_base} has {base_val_metrics[best_base][sel]:.4f}. Test window not used for the choice."
        )
        mlflow.set_tags({"winner": winner, "winner_reason": reason})
        mlflow.log_metrics(_prefixed("val_best_", val_metrics[winner]))

        # The winner's configuration refitted on train + validation (the most recent data before
        # the test window); the threshold stays the one validation chose. Test is still untouched.
        winner_cfg = next(c for c in grid if c.name == winner)
        model = models.fit_model(task, winner_cfg, np.vstack([X["train"], X["val"]]), np.concatenate([Y["train"], Y["val"]]), seed, n_jobs)
        mlflow.set_tag("refit", "winner refitted on train + validation before the test window")

        # The test window, touched once, for the winner and the baselines.
        test_scores = t.mask(split.test, models.predict_scores(task, model, X["test"]))
        test_m = t.evaluate(Y["test"], test_scores, threshold)
        base_test = t.baselines(split.test)
        test_base = {k: t.evaluate(Y["test"], v, base_thresholds[k]) for k, v in base_test.items()}
        mlflow.log_metrics(_prefixed("test_", test_m))
        for name, bm in test_base.items():
            mlflow.log_metrics(_prefixed(f"test_baseline_{name}_", bm))
        by_point = points_table(t, split.test, Y["test"], test_scores, base_test, threshold, base_thresholds)
        for (scorer, k), row in by_point.iterrows():
            mlflow.log_metrics(_prefixed(f"test_k{k.replace('+', 'plus')}_{scorer}_", row.dropna().to_dict()))

        summary_dir = Path(output_dir) / "runs" / f"{task}-{parent.info.run_id[:8]}"
        t.figures(Y["test"], test_scores, base_test, threshold, model, summary_dir, "test_")
        wrapped = t.wrap(model, threshold)
        example = split.train[features].head(5).reset_index(drop=True)
        name = registered_model or spec.registered_model
        version = registry.log_model(wrapped, example, name, {"task": task, "threshold": threshold, "features": features, "seed": seed})
        client = mlflow.tracking.MlflowClient()
        for key, value in {
            "threshold": repr(float(threshold)),  # exact: the scorer re-applies it
            "task": task,
            "winner": winner,
            f"val_{sel}": f"{val_metrics[winner][sel]:.6f}",
            f"test_{sel}": f"{test_m[sel]:.6f}",
            "training_run_id": parent.info.run_id,
            "split_test_start": split.boundaries[1],
        }.items():
            client.set_model_version_tag(name, version.version, key, value)
        best_test_base = max(test_base, key=lambda k: np.nan_to_num(test_base[k][sel], nan=-1.0))
        gate = registry.Gate(
            sel,
            float(test_m[sel]),
            best_test_base,
            float(np.nan_to_num(test_base[best_test_base][sel], nan=0.0)),
            registry.PROMOTION_MARGIN,
            tuple(features),
            # The production name serves the live scorer: only a model of the mart contract's features may hold it.
            tuple(contract_features(task)) if name == spec.registered_model else None,
        )
        reg = registry.promote_if_better(
            name,
            str(version.version),
            gate,
            lambda champ: t.evaluate(Y["test"], t.champion_scores(champ, split.test), threshold)[sel],
        )
        mlflow.set_tags({"registered_model": name, "registered_version": reg.version, "champion_decision": reg.reason})

        # output/category/ shows what the scorer serves: with no category champion at all, the baseline, labelled
        served = (test_scores, name, reg.version)
        if task == "category" and not reg.is_champion and reg.previous_champion is None:
            served = (base_test["last_viewed"], "baseline", LIVE_BASELINE_VERSION.split(":", 1)[1])
        files = outputs.write_predictions(task, split.test, served[0], threshold, t.targets, served[1], served[2], Path(output_dir))
        files += outputs.write_summary(
            summary_dir,
            task,
            winner,
            reason,
            sel,
            val_metrics,
            base_val_metrics,
            test_m,
            test_base,
            split.describe() | {"history_warmup": warmup_note},
            reg,
            data_note,
            by_point,
        )
        mlflow.log_artifacts(str(summary_dir), "summary")
        for f in files:
            if f.parent != summary_dir:
                mlflow.log_artifact(str(f), "outputs")
        console.print(f"[green]{task}[/]: winner {winner}; test {sel}={test_m[sel]:.4f}; registered {name} v{reg.version}; {reg.reason}")
        if not reg.is_champion:
            kept = f"{name} v{reg.previous_champion} stays champion" if reg.previous_champion else f"{name} has no champion"
            serves = "" if reg.previous_champion or task == "purchase" else f"; the live scorer serves the {LIVE_BASELINE_VERSION} baseline"
            console.print(f"[yellow]{task}[/]: no configuration beats the best baseline by the margin on this data: {kept}{serves}")
    return TrainResult(
        task, parent.info.run_id, winner, sel, val_metrics, test_m, test_base, reg, summary_dir, files, suspicious, split.describe()
    )


def _load_input(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MartError(f"input file {path} does not exist")
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


def main(
    task: str = typer.Option(..., "--task", help="purchase (binary purchase intent) or category (top-3 categories)."),
    seed: int = typer.Option(42, help="Seed for every model and the synthetic generator; same seed, same metrics."),
    val_frac: float = typer.Option(0.2, help="Share of days (by session start) used as the validation window."),
    test_frac: float = typer.Option(0.2, help="Share of the latest days held out as the final test window."),
    output_dir: Path = typer.Option(Path("output"), help="Where predictions.csv, category/ and runs/<task>-<id>/ go."),
    input_path: Path | None = typer.Option(None, "--input", help="A parquet/CSV feature frame to use instead of the Spark mart."),
    synthetic_rows: int = typer.Option(0, help="Train on this many synthetic rows (ml.synthetic) instead of the mart; 0 = off."),
    tracking_uri: str | None = typer.Option(None, help="MLflow tracking URI (default: from lakehouse.config, the embedded server)."),
    experiment: str | None = typer.Option(None, help="MLflow experiment (default: purchase_intent / category_top3)."),
    registered_model: str | None = typer.Option(
        None,
        help="Registered model name (default: purchase_intent / category_top3, which the live scorer serves; "
        "runs on --input or --synthetic-rows default to <name>_input / <name>_synthetic).",
    ),
    n_jobs: int | None = typer.Option(None, help="LightGBM threads (default: 2 from 200k training rows, else 1)."),
) -> None:
    """Grid-search models for one task, log every configuration to MLflow and register the winner."""
    if task not in TASKS:
        raise typer.BadParameter(f"--task must be one of {', '.join(TASKS)}")
    try:
        frame, note, own_name = None, "the dbt feature mart (the events loaded into bronze)", None
        if input_path is not None:
            frame, note, own_name = _load_input(input_path), f"the feature frame {input_path.name}", "input"
        elif synthetic_rows > 0:
            from ml.synthetic import generate

            frame = generate(task, synthetic_rows, seed=seed)
            note, own_name = "a synthetic feature frame (ml.synthetic): the figures describe its generator", "synthetic"
        if registered_model is None and own_name:  # kept off the name the live scorer serves unless asked
            registered_model = f"{TASK_SPECS[task].registered_model}_{own_name}"
        train(
            task,
            frame,
            seed=seed,
            val_frac=val_frac,
            test_frac=test_frac,
            output_dir=output_dir,
            tracking_uri=tracking_uri,
            experiment=experiment,
            registered_model=registered_model,
            n_jobs=n_jobs,
            data_note=note,
        )
    except (MartError, SplitError, TrackingError, ServiceError) as exc:  # ServiceError: no SQL server; it says how to start one
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


def cli() -> None:
    typer.run(main)


if __name__ == "__main__":
    cli()
