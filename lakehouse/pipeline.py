"""The whole job, end to end, on the embedded defaults: ``make run``.

Starts Kafka, FerretDB, MLflow and the lakehouse SQL server; generates a realistic data set (or takes a real
REES46 file); replays it through Kafka; ingests it into Delta bronze with the
streaming ingest; reconciles; runs ``dbt seed``, ``dbt run`` and ``dbt test``; draws the funnel
figures; trains both models with their grid searches; starts the streaming scorer
and replays a live slice of new events (the day after the data set) through it;
and prints a summary with row counts per layer, funnel headline numbers, model
metrics, live latency and where to look next. This module is the orchestrator: it only calls the public entry points of
``streaming``, the dbt project and ``ml``. A second run reuses the generated file,
what is already in Kafka and bronze (the ingest resumes from its checkpoint).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from lakehouse import config, services

console = Console()


@dataclass
class Run:
    """What the steps measured, for the summary."""

    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        console.rule(f"[bold]{name}")
        start = time.monotonic()
        result = fn()
        self.timings[name] = time.monotonic() - start
        console.print(f"[dim]{name}: {self.timings[name]:.1f}s[/]")
        return result


def _generated_file(cfg: config.Config, events: int, days: int, start: date, seed: int) -> Path:
    from streaming.generate import GENERATOR_VERSION, generate

    name = f"generated-v{GENERATOR_VERSION}-{events}-{days}d-{start:%Y%m%d}-seed{seed}.csv.gz"
    path = cfg.lakehouse_dir / "input" / name
    if path.exists():
        console.print(f"reusing {path}")
        return path
    tmp = path.with_name(".part-" + path.name)  # keeps the .gz ending: the generator compresses by name
    generate(tmp, events=events, start=start, days=days, seed=seed)
    tmp.rename(path)
    return path


def _hold_out_last_day(path: Path, last_day: date, live_events: int) -> tuple[Path, Path]:
    """Split a time-ordered generated file: days before ``last_day`` (the data set) and up to ``live_events`` of it (the live slice).

    The live slice then comes from the same users, products and behaviour the models
    learned from, one day later, as live traffic would.
    """
    import gzip
    import io

    from streaming.rees46 import open_binary

    main = path.with_name(path.name.replace(".csv.gz", "-history.csv.gz"))
    live = path.with_name(path.name.replace(".csv.gz", f"-live{live_events}.csv.gz"))
    if main.exists() and live.exists():
        return main, live
    prefix = last_day.isoformat()
    n_live = 0
    parts = [p.with_name(".part-" + p.name) for p in (main, live)]  # renamed when complete: a crash leaves no half file to reuse
    with io.TextIOWrapper(open_binary(path)) as src, gzip.open(parts[0], "wt") as out_main, gzip.open(parts[1], "wt") as out_live:
        for line in src:
            if line[:10] < prefix:
                out_main.write(line)
            elif n_live < live_events:
                out_live.write(line)
                n_live += 1
    for part, final in zip(parts, (main, live), strict=True):
        part.rename(final)
    return main, live


def _produce_once(cfg: config.Config, path: Path, topic: str) -> dict[str, Any]:
    """Replay the file unless this very file was already replayed to this topic.

    Returns the records sent and the file's lines that hold no readable event (sent
    on for quarantine, counted in the summary).
    """
    from streaming.producer import describe_bad_lines, produce_file

    marker = cfg.lakehouse_dir / "input" / f".produced-{topic}-{path.name}.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        console.print(f"{path.name} already in topic {topic!r} ({done['sent']:,} records); not sent again")
        return done
    bad: list = []
    sent = produce_file(path, topic=topic, progress=True, on_bad_line=bad.append)
    if bad:
        console.print(f"[yellow]{describe_bad_lines(path, bad)}[/]")
    done = {"sent": sent, "bad_lines": len(bad), "file": str(path)}
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(done))
    return done


def _ingest(spark, cfg: config.Config, topic: str) -> None:
    from streaming import ingest

    query = ingest.start(spark, cfg, topic=topic, available_now=True)
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"ingest failed: {query.exception()}")


def _reconcile(spark, cfg: config.Config, topic: str) -> dict[str, int]:
    from streaming import reconcile

    reports = reconcile.reconcile(spark, cfg, topic)
    console.print(reconcile.render(reports, topic))
    if not all(r.ok for r in reports):
        raise RuntimeError("reconciliation failed: Kafka and bronze + quarantine disagree (see table)")
    return {
        "kafka": sum(r.kafka_records for r in reports),
        "bronze": sum(r.bronze for r in reports),
        "quarantine": sum(r.quarantine for r in reports),
    }


def _dbt(*args: str) -> None:
    from dbt.cli.main import dbtRunner

    root = str(config.REPO_ROOT)
    result = dbtRunner().invoke([*args, "--project-dir", root, "--profiles-dir", root])
    if not result.success:
        raise RuntimeError(f"`dbt {' '.join(args)}` failed: {result.exception or 'see the dbt output above'}")


def _layer_counts(spark) -> dict[str, int]:
    tables = [
        "stg_bronze__events",
        "fct_sessions",
        "fct_funnel_daily",
        "dim_users",
        "fct_purchase_intent_features",
        "fct_category_features",
    ]
    return {t: spark.table(f"analytics.{t}").count() for t in tables}


def _funnel_headline(spark) -> dict[str, float]:
    row = spark.sql(
        "select sum(view_sessions) v, sum(cart_sessions) c, sum(purchase_sessions) p, sum(sessions) s from analytics.fct_funnel_daily"
    ).first()
    v, c, p, s = (int(row[k] or 0) for k in ("v", "c", "p", "s"))
    return {
        "sessions": s,
        "view": v,
        "cart": c,
        "purchase": p,
        "view_to_cart": c / v if v else 0.0,
        "cart_to_purchase": p / c if c else 0.0,
    }


def _train(spark, cfg: config.Config, output: Path, data_note: str, name_suffix: str = "") -> dict[str, dict[str, Any]]:
    """Train both models; a task whose data cannot support a test says why instead of failing the run.

    ``name_suffix`` registers them under names of their own (``purchase_intent_input``),
    off the ones the live scorer serves.
    """
    from ml.feature_contract import TASK_SPECS
    from ml.splits import SplitError
    from ml.train import train

    out: dict[str, dict[str, Any]] = {}
    for task in ("purchase", "category"):
        name = TASK_SPECS[task].registered_model + name_suffix
        try:
            result = train(task, spark=spark, output_dir=output, tracking_uri=cfg.mlflow_uri, data_note=data_note, registered_model=name)
        except SplitError as exc:
            console.print(f"[yellow]{task} model not trained:[/] {exc}")
            out[task] = {"trained": False, "why": str(exc)}
            continue
        out[task] = {
            "trained": True,
            "data": data_note,
            "winner": result.winner,
            "split": result.split,
            "test": {k: round(v, 4) for k, v in result.test_metrics.items()},
            "baselines": {b: {k: round(v, 4) for k, v in m.items()} for b, m in result.test_baselines.items()},
            "registered": f"{result.registration.name} v{result.registration.version}",
            "champion": result.registration.reason,
        }
    return out


def _live_scoring(spark, cfg: config.Config, path: Path, topic: str, rate: float, timeout_s: float = 300) -> dict[str, Any]:
    """Run the streaming scorer while a live slice is produced; wait until every session has its last row.

    The scorer runs as its own process (as in production: ``python -m streaming.scorer``)
    on a topic of its own per run, so a second run scores the slice again from a fresh
    checkpoint. A session's last row is its score at its last event, or its conversion
    (``streaming.scorer.final_row``); a session past the prediction-point cap is not
    waited for (whether it got a row depends on how its events were batched). Returns
    the latency percentiles of the prediction rows it wrote.
    """
    import pandas as pd

    from streaming import scorer_process
    from streaming.predictions import latency_windows, predictions_path
    from streaming.producer import produce_file
    from streaming.scorer import final_row
    from streaming.session_features import normalise, split_sessions

    live_topic = f"{topic}-live-{time.strftime('%Y%m%d%H%M%S')}"
    log_path = cfg.lakehouse_dir / "logs" / f"scorer-{live_topic}.log"
    ends = {sid: final_row(evs) for sid, evs in split_sessions([normalise(e) for e in _valid_events(spark, path)]).items()}
    expected = {sid: end[0] for sid, end in ends.items() if end is not None}
    scorer = scorer_process.launch(live_topic, log_path, {"SCORER_STARTING_OFFSETS": "earliest"})
    try:
        with console.status("starting the streaming scorer ..."):
            scorer_process.wait_until_running(scorer, log_path)
        started = pd.Timestamp.now(tz="UTC").tz_localize(None)
        sent = produce_file(path, topic=live_topic, rate=rate, progress=True)
        rows = _wait_for_predictions(spark, predictions_path(cfg), started, expected, scorer, timeout_s)
    finally:
        scorer_process.stop(scorer)
    latency = rows["latency_ms"].dropna() / 1000.0
    windows = latency_windows(rows, started, LIVE_WARM_UP_SECONDS)
    return {
        "topic": live_topic,
        "events": sent,
        "rate": rate,
        "sessions": len(expected),
        "sessions_scored": len(_finished(rows, expected)),
        "sessions_converted": int(rows.loc[rows["converted"].fillna(False).astype(bool), "session_id"].nunique()),
        "sessions_past_points_cap": len(ends) - len(expected),
        "prediction_rows": len(rows),
        "latency_p50_s": round(float(latency.quantile(0.5)), 2) if len(latency) else None,
        "latency_p95_s": round(float(latency.quantile(0.95)), 2) if len(latency) else None,
        # the scorer's first seconds apart from the rest: a figure for each, not one that mixes them
        "latency_warm_up": windows["warm_up"],
        "latency_steady": windows["steady"],
        "scorer_log": str(log_path),
    }


LIVE_WARM_UP_SECONDS = 10  # the live slice's first seconds: the scorer's warm-up, reported apart from its steady state


def _latency_apart(warm_up: dict, steady: dict) -> str:
    """The summary's line of live latency for the first seconds and for the rest of the slice."""

    def figures(w: dict) -> str:
        return f"p50 {w['p50']} s, p95 {w['p95']} s ({w['rows']:,} rows)" if w["rows"] else "no rows"

    return f"first {LIVE_WARM_UP_SECONDS} s of the slice: {figures(warm_up)}; after: {figures(steady)}"


def _day_after(spark) -> date:
    """The day after the newest event in the marts: live events come after what the models learned from."""
    last = spark.sql("select max(session_date) from analytics.fct_sessions").first()[0]
    return (last or date.today()) + timedelta(days=1)


def _valid_events(spark, path: Path) -> list[dict]:
    """The file's events that pass the ingest's validation (the scorer skips the others)."""
    from pyspark.sql import functions as F

    from streaming.backfill import numbered_lines
    from streaming.events import CSV_COLUMNS
    from streaming.validate import validate_csv

    valid = validate_csv(numbered_lines(spark, path)).filter(F.col("reason").isNull())
    return valid.select(*CSV_COLUMNS).toPandas().to_dict("records")


def _finished(rows, expected: dict[str, int]) -> set[str]:
    """The expected sessions whose last row (at the point ``expected`` gives) is among ``rows``."""
    last = rows.groupby("session_id")["prediction_point"].max()
    return {sid for sid, point in expected.items() if sid in last.index and last[sid] >= point}


def _wait_for_predictions(spark, path: Path, since, expected: dict[str, int], scorer: subprocess.Popen, timeout_s: float):
    """Prediction rows written since ``since`` for the expected sessions, once each has its last one (or at the timeout)."""
    from pyspark.sql import functions as F

    from lakehouse.spark import read_delta

    deadline = time.monotonic() + timeout_s
    with console.status("waiting for the scorer to catch up ..."):
        while True:
            rows = None
            table = read_delta(spark, path)  # the scorer creates the table once its JVM is up
            if table is not None:
                rows = table.filter(F.col("processing_time") >= F.lit(since)).toPandas()
                rows = rows[rows["session_id"].isin(expected)]
                if len(_finished(rows, expected)) == len(expected):
                    return rows
            if time.monotonic() > deadline:
                if rows is None:
                    raise RuntimeError(f"the scorer wrote no predictions table within {timeout_s:.0f}s; see its log")
                return rows
            if scorer.poll() is not None:
                raise RuntimeError(f"the scorer exited early (code {scorer.returncode}); see its log")
            time.sleep(3)


def _mlflow_login_hint(cfg: config.Config) -> str:
    """Where a browser's login to the embedded MLflow is (never the password itself: this output is shared)."""
    if not cfg.mlflow_embedded:
        return ""
    return f" (login `{cfg.embedded_login('mlflow').username}`, password under `mlflow` in {cfg.credentials_file})"


def _summary(run: Run, cfg: config.Config, output: Path) -> None:
    facts = run.facts
    table = Table(title="Clickstream lakehouse: summary")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    rec = facts.get("reconcile", {})
    table.add_row("data", str(facts.get("data", "")))
    table.add_row(
        "events in Kafka / bronze / quarantine", f"{rec.get('kafka', 0):,} / {rec.get('bronze', 0):,} / {rec.get('quarantine', 0):,}"
    )
    if facts.get("bad_lines"):
        table.add_row("file lines with no readable event", f"{facts['bad_lines']:,} (in quarantine with file and line: {QUARANTINE_HINT})")
    for name, n in facts.get("layers", {}).items():
        table.add_row(f"rows in analytics.{name}", f"{n:,}")
    f = facts.get("funnel")
    if f:
        table.add_row("sessions (view / cart / purchase)", f"{f['sessions']:,} ({f['view']:,} / {f['cart']:,} / {f['purchase']:,})")
        table.add_row("view -> cart, cart -> purchase", f"{f['view_to_cart']:.1%}, {f['cart_to_purchase']:.1%}")
    for task, m in facts.get("models", {}).items():
        if not m["trained"]:
            table.add_row(f"{task} model", f"not trained: {m['why']}")
            continue
        headline = {k: v for k, v in m["test"].items() if k in ("pr_auc", "roc_auc", "f1", "hit_at_3", "precision_at_3", "recall_at_3")}
        split = m["split"]
        where = f"{split['split_mode']} split, test from {split['split_test_start']} ({split['sessions_test']:,} sessions)"
        table.add_row(f"{task} model ({m['winner']})", f"test {headline} on {where}; {m['registered']}; {m['champion']}")
    live = facts.get("live")
    if live:
        table.add_row(
            "live scoring",
            f"{live['events']:,} events at {live['rate']:,.0f}/s; {live['sessions_scored']:,}/{live['sessions']:,} sessions with "
            f"their last row ({live['sessions_converted']:,} converted; {live['sessions_past_points_cap']:,} past the points cap); "
            f"latency p50 {live['latency_p50_s']} s, p95 {live['latency_p95_s']} s (produce -> prediction row)",
        )
        if "latency_steady" in live:  # facts of a run made before the split have only the figures above
            table.add_row("live latency, apart", _latency_apart(live["latency_warm_up"], live["latency_steady"]))
    for name, secs in run.timings.items():
        table.add_row(f"time: {name}", f"{secs:.0f}s")
    console.print(table)
    console.print(f"figures: {output / 'figures'}   predictions: {output / 'predictions.csv'}   categories: {output / 'category'}")
    console.print(
        f"MLflow UI: {cfg.mlflow_uri}{_mlflow_login_hint(cfg)}; SQL server (the marts): jdbc:hive2://127.0.0.1:{cfg['SQL_SERVER_THRIFT_PORT']} "
        "(start both with `make services-start` if this run stopped them)"
    )
    if cfg.catalog_on_server:  # the dashboards query the SQL server
        from lakehouse.dashboards import login_lines

        for line in login_lines(cfg):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
    for hint in HINTS:
        console.print(hint, soft_wrap=True, markup=False, highlight=False)  # whole lines: a command to copy
    output.mkdir(parents=True, exist_ok=True)
    (output / "summary.json").write_text(json.dumps({"timings_s": run.timings, **facts}, indent=2, default=str))


# Commands the summary suggests; tests/e2e/test_newcomer.py runs each of them.
FUNNEL_QUERY = "select * from analytics.fct_funnel_daily order by session_date"
QUARANTINE_HINT = '.venv/bin/python -m lakehouse.sql "select reason, count(*) n from bronze.quarantine group by reason"'
HINTS = (
    # queries go through the SQL server, which the run stops with the other services unless --keep-services
    "start the SQL server (if this run stopped it): .venv/bin/python -m lakehouse.services start sql",
    f'query the marts: .venv/bin/python -m lakehouse.sql "{FUNNEL_QUERY}"',
    f"see what was quarantined: {QUARANTINE_HINT}",
    "open the dashboards (Apache Superset; starts the SQL server too): .venv/bin/python -m lakehouse.dashboards start",
)

app = typer.Typer(add_completion=False)


@app.command()
def main(
    events: int = typer.Option(300_000, help="Size of the generated data set (events)."),
    days: int = typer.Option(14, help="Days the generated data set spans."),
    start: str = typer.Option("2019-11-01", help="First day of the generated data (YYYY-MM-DD)."),
    seed: int = typer.Option(42, help="Seed of the generator (same seed, same file)."),
    input_file: Path | None = typer.Option(
        None, "--input", help="A real REES46 file (CSV or .csv.gz) instead of generated data.", exists=True, dir_okay=False
    ),
    topic: str | None = typer.Option(None, help="Kafka topic (default: KAFKA_TOPIC)."),
    output: Path = typer.Option(config.REPO_ROOT / "output", help="Folder for predictions, categories, figures and the summary."),
    skip_train: bool = typer.Option(False, "--skip-train", help="Stop after dbt and the figures."),
    live_events: int = typer.Option(20_000, help="Events of the live slice replayed through the streaming scorer (0: skip)."),
    live_rate: float = typer.Option(1_000, help="Events per second of the live slice."),
    keep_services: bool = typer.Option(False, "--keep-services", help="Leave Kafka, FerretDB and MLflow running at the end."),
    serve: bool = typer.Option(
        False,
        "--serve",
        help="With --input: register the models under the names the live scorer serves (default: <name>_input, kept off them).",
    ),
) -> None:
    """Run the whole job: services, data, Kafka, ingest, dbt run/test, figures, training, live scoring, summary."""
    cfg = config.load()
    topic = topic or str(cfg["KAFKA_TOPIC"])
    run = Run()
    # Superset is not needed by the job: `make dashboards` starts it on demand (the summary says how).
    embedded = {name: svc for name, svc in services.all_services(cfg).items() if name != "superset"}
    # Only what this run starts is stopped at the end; services already up stay up.
    started_here = [svc for svc in embedded.values() if svc.pid() is None]
    try:
        run.step("start services", lambda: services.start_all(list(embedded.values())))
        first_day = date.fromisoformat(start)
        live = None
        if input_file is not None:
            path = input_file
        else:  # one more day than asked for: its first events are the live slice
            full = run.step("generate data", lambda: _generated_file(cfg, events + events // days, days + 1, first_day, seed))
            path, live = _hold_out_last_day(full, first_day + timedelta(days=days), live_events)
        run.facts["input"] = str(path)
        run.facts["data"] = (
            f"your file {path.name}"
            if input_file is not None
            else f"generated data (streaming.generate, seed {seed}): model figures describe the generator, not a real shop"
        )
        produced = run.step("replay through Kafka", lambda: _produce_once(cfg, path, topic))
        run.facts["produced"], run.facts["bad_lines"] = produced["sent"], produced.get("bad_lines", 0)
        from lakehouse.spark import get_spark

        # The marts through the catalog (the SQL server's, over Spark Connect, unless LAKEHOUSE_CATALOG=embedded);
        # the ingest and the path-addressed tables on a local session. Catalog first: embedded, both are one session.
        catalog = get_spark("pipeline", catalog=True, cfg=cfg)
        spark = get_spark("pipeline", catalog=False, cfg=cfg)
        run.step("streaming ingest -> bronze", lambda: _ingest(spark, cfg, topic))
        run.facts["reconcile"] = run.step("reconcile Kafka vs bronze", lambda: _reconcile(spark, cfg, topic))
        run.step("dbt seed", lambda: _dbt("seed"))
        run.step("dbt run", lambda: _dbt("run"))
        run.step("dbt test", lambda: _dbt("test"))
        run.facts["layers"] = _layer_counts(catalog)
        run.facts["funnel"] = _funnel_headline(catalog)
        from lakehouse import figures

        run.facts["figures"] = run.step("figures", lambda: [str(p) for p in figures.draw_all(*figures.load_marts(), output / "figures")])
        if not skip_train:
            suffix = "_input" if input_file is not None and not serve else ""
            models = run.step("train models (grid search)", lambda: _train(catalog, cfg, output, run.facts["data"], suffix))
            run.facts["models"] = models
            untrained = [task for task, m in models.items() if not m["trained"]]
            if live_events > 0 and suffix:
                console.print(
                    "[yellow]live scoring skipped:[/] models trained on your file are registered as *_input, off the names the "
                    "live scorer serves; pass --serve to register them under those names"
                )
            elif untrained and live_events > 0:
                console.print(f"[yellow]live scoring skipped:[/] the scorer needs both models; not trained: {', '.join(untrained)}")
            elif live_events > 0:
                live = live or _generated_file(cfg, live_events, 1, _day_after(catalog), seed + 1)
                run.facts["live"] = run.step("live scoring (streaming scorer)", lambda: _live_scoring(spark, cfg, live, topic, live_rate))
        _summary(run, cfg, output)
    except (RuntimeError, services.ServiceError) as exc:
        console.print(f"[bold red]pipeline failed:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        from lakehouse.spark import close_connect_sessions

        close_connect_sessions()  # before the SQL server stops: an open client would keep this process alive
        if not keep_services:
            for svc in started_here:
                svc.stop()


if __name__ == "__main__":
    app()
