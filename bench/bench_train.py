"""Benchmark: the full purchase-intent grid on ~1 M prediction rows vs one fit of the cheapest model.

Each phase runs in its own Python process so its peak RSS (``ru_maxrss``) is its own;
both phases first build the same synthetic frame, so the memory figures compare like
with like. The grid phase is the real ``ml.train.train`` (nested MLflow runs, plots,
registry, outputs) against a throw-away SQLite MLflow store unless ``--tracking-uri``
is given. Target from the issue: the whole grid within 10 minutes on 2 cores.

    python -m bench.bench_train --rows 1000000
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

TARGET_SECONDS = 600


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User + system CPU of this process: unlike wall time, barely moved by other load on the box."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def phase_baseline(rows: int, seed: int) -> dict[str, float]:
    """One fit of the cheapest model in the grid (standardised logistic regression) on the training window."""
    from ml import models, synthetic
    from ml.feature_contract import PURCHASE_LABEL, feature_columns, read_mart
    from ml.splits import time_split

    frame = read_mart("purchase", synthetic.purchase_frame(rows, seed=seed))
    split = time_split(frame)
    features = feature_columns(list(frame.columns))
    X, y = split.train[features].to_numpy(dtype=float), split.train[PURCHASE_LABEL].to_numpy()
    started, cpu = time.perf_counter(), _cpu_seconds()
    models.fit_model("purchase", models.ModelConfig("logreg", {"C": 1.0}), X, y, seed)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "peak_rss_mib": _peak_mib(),
        "rows": len(frame),
        "train_rows": len(X),
    }


def phase_grid(rows: int, seed: int, tracking_uri: str | None) -> dict[str, float]:
    """The full default grid through ml.train.train, MLflow logging and registration included."""
    import mlflow

    from ml import synthetic
    from ml import train as train_mod

    frame = synthetic.purchase_frame(rows, seed=seed)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        uri = tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        experiment = f"bench-{int(time.time())}"
        mlflow.set_tracking_uri(uri)
        if tracking_uri is None:  # keep artifacts in the temp folder, not ./mlruns
            mlflow.create_experiment(experiment, artifact_location=f"{tmp}/artifacts")
        started, cpu = time.perf_counter(), _cpu_seconds()
        result = train_mod.train(
            "purchase",
            frame,
            seed=seed,
            output_dir=Path(tmp) / "output",
            tracking_uri=uri,
            experiment=experiment,
            registered_model="bench_purchase_intent",
        )
        seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": _peak_mib(),
        "rows": len(frame),
        "configs": len(result.val_metrics),
        "winner": result.winner,
        "test_pr_auc": result.test_metrics["pr_auc"],
    }


def _run_phase(name: str, rows: int, seed: int, tracking_uri: str | None) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_train", "--phase", name, "--rows", str(rows), "--seed", str(seed)]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(
    rows: int = typer.Option(1_000_000, help="About this many prediction rows (synthetic purchase-intent frame)."),
    seed: int = typer.Option(42),
    tracking_uri: str | None = typer.Option(None, help="MLflow to log to (default: a temporary SQLite store)."),
    phase: str = typer.Option("all", help="all, or one phase run in this process: baseline | grid."),
) -> None:
    """Time and peak memory of the full grid next to one fit of the cheapest model."""
    if phase == "baseline":
        print(json.dumps(phase_baseline(rows, seed)))
        return
    if phase == "grid":
        print(json.dumps(phase_grid(rows, seed, tracking_uri)))
        return
    base = _run_phase("baseline", rows, seed, tracking_uri)
    grid = _run_phase("grid", rows, seed, tracking_uri)
    print(f"rows: {grid['rows']:,} (train {base['train_rows']:,})")
    for label, r in (("baseline  one logreg fit", base), (f"full grid ({grid['configs']} configs)  ", grid)):
        print(f"{label}: {r['seconds']:8.1f} s wall {r['cpu_seconds']:8.1f} s CPU   peak RSS {r['peak_rss_mib']:6.0f} MiB")
    print(
        f"ratio grid / baseline    : {grid['seconds'] / base['seconds']:.1f} x wall, {grid['cpu_seconds'] / base['cpu_seconds']:.1f} x CPU, "
        f"{grid['peak_rss_mib'] / base['peak_rss_mib']:.2f} x memory"
    )
    print(f"winner {grid['winner']}, test PR AUC {grid['test_pr_auc']:.4f}")
    verdict = "within" if grid["seconds"] <= TARGET_SECONDS else "OVER"
    print(f"target: full grid {verdict} {TARGET_SECONDS // 60} minutes wall on this machine (load average now {_load():.1f})")
    print(
        f"        CPU {grid['cpu_seconds']:.0f} s = at most {grid['cpu_seconds'] / 60:.1f} min wall on one free core, about half that on two"
    )


def _load() -> float:
    import os

    return os.getloadavg()[0]


if __name__ == "__main__":
    typer.run(main)
