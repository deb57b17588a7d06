"""Write notebooks/exploration.ipynb from the cells below (outputs stripped).

Why a script: the notebook's JSON is generated, so a change is a readable diff of
Python strings here, and the committed .ipynb never carries outputs, execution
counts or a machine's kernel state. Edit the cells here, then run

    .venv/bin/python notebooks/build_exploration.py

and commit both files. ``tests/e2e/test_notebook.py`` executes the result against
a lakehouse built by ``python -m lakehouse.pipeline``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import typer
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent / "exploration.ipynb"

CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# Clickstream lakehouse: exploration

What the lakehouse holds after `python -m lakehouse.pipeline` (or `make run`): the events in Delta bronze, the
sessions and funnels that dbt built in the `analytics` schema, and the latest models in MLflow.

1. **Layers at a glance**: rows per layer, so every later number has a denominator.
2. **Events**: event-type mix, traffic over time, prices, categories and brands, missing values.
3. **Sessions and users**: length, duration, how far sessions get, how often users come back.
4. **Funnel and drop-off**: view → cart → purchase overall, per day, per category, per brand and per product.
5. **ML feature marts**: class balance of the two training sets.
6. **Models**: the latest training runs, the winner against its baselines, and the `champion` in the registry.

Everything reads the marts through the project's one Spark factory (`lakehouse.spark.get_spark(catalog=True)`), so
the numbers are the ones dbt tested and the figures command draws. By default that is a Spark Connect session of the
lakehouse SQL server (`python -m lakehouse.services start sql`), the one process that owns the catalog: this notebook
can stay open while `dbt run` rebuilds the marts.""",
    ),
    (
        "code",
        """# Setup: find the repository (the notebook may be opened from notebooks/ or from the root), load the config.
import sys
from pathlib import Path

root = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "lakehouse" / "config.py").exists())
if str(root) not in sys.path:
    sys.path.insert(0, str(root))

%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, Markdown, display

from lakehouse import config, figures
from lakehouse.spark import get_spark

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
plt.rcParams["figure.figsize"] = (10, 4)
plt.rcParams["axes.spines.top"] = False
plt.rcParams["axes.spines.right"] = False

cfg = config.load()
MARTS = figures.MART_SCHEMA
print(f"lakehouse: {cfg.lakehouse_dir}\\nMLflow:    {cfg.mlflow_uri}")""",
    ),
    (
        "code",
        """spark = get_spark("exploration-notebook", catalog=True, cfg=cfg)


def q(sql: str) -> pd.DataFrame:
    \"\"\"Run SQL on the catalog and bring the (small, aggregated) result to pandas.\"\"\"
    return spark.sql(sql).toPandas()


tables = set(q(f"show tables in {MARTS}").tableName)
missing = {"stg_bronze__events", "fct_sessions", "fct_funnel_daily", "fct_funnel_category_daily"} - tables
if missing:
    raise RuntimeError(f"{MARTS} lacks {sorted(missing)}: run `python -m lakehouse.pipeline` (or `dbt run`) first")""",
    ),
    (
        "md",
        """## 1. Layers at a glance

Bronze is the Delta table the streaming ingest appends to (one row per accepted Kafka record, duplicates included);
quarantine holds the records it rejected, with the reason. Staging removes exact duplicates, so it can be a little
smaller than bronze. The marts count sessions, days, users and prediction points.""",
    ),
    (
        "code",
        """def delta_count(layer: str, name: str) -> int | None:
    path = cfg.table_path(layer, name)
    return spark.read.format("delta").load(str(path)).count() if (path / "_delta_log").exists() else None


layer_rows = {"bronze.events (Delta)": delta_count("bronze", "events"), "quarantine.events (Delta)": delta_count("quarantine", "events")}
for t in sorted(tables):
    layer_rows[f"{MARTS}.{t}"] = spark.table(f"{MARTS}.{t}").count()
display(pd.Series(layer_rows, name="rows").to_frame())
quarantine = cfg.table_path("quarantine", "events")
if (quarantine / "_delta_log").exists():
    display(spark.read.format("delta").load(str(quarantine)).groupBy("reason").count().orderBy("count", ascending=False).toPandas())""",
    ),
    (
        "md",
        """## 2. Events

### Event-type mix

The published REES46 months are about 94–96 % views, 2–4.5 % carts and 1.4–1.8 % purchases (see
`tests/data/README.md`); a realistic data set, generated or real, should look similar. A mix far off these shares
usually means a broken producer or ingest, not a change in shoppers.""",
    ),
    (
        "code",
        """mix = q(f"select event_type, count(*) as events from {MARTS}.stg_bronze__events group by event_type order by events desc")
mix["share"] = mix.events / mix.events.sum()
display(mix.style.format({"events": "{:,}", "share": "{:.2%}"}))

fig, ax = plt.subplots(figsize=(8, 3))
ax.barh(mix.event_type[::-1], mix.events[::-1], color="#4C72B0")
for y, (n, s) in enumerate(zip(mix.events[::-1], mix.share[::-1])):
    ax.text(n, y, f" {n:,} ({s:.1%})", va="center")
ax.set_xscale("log")
ax.set_xlabel("events (log scale)")
ax.set_title("Event-type mix")
plt.show()""",
    ),
    (
        "md",
        """### Traffic over time

Events per day by type, and the hour-of-day profile (UTC). A spike day (REES46 November has Singles' Day,
2019-11-11, at about twice the normal traffic) shows up here before it shows up in the funnels.""",
    ),
    (
        "code",
        """daily_events = q(f\"\"\"
    select event_date, event_type, count(*) as events
    from {MARTS}.stg_bronze__events group by event_date, event_type
\"\"\").pivot(index="event_date", columns="event_type", values="events").fillna(0).sort_index()
hourly = q(f\"\"\"
    select hour(event_time) as hour, event_type, count(*) as events
    from {MARTS}.stg_bronze__events group by 1, 2
\"\"\").pivot(index="hour", columns="event_type", values="events").fillna(0).sort_index()

fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4))
daily_events.plot(ax=a1, marker="o", logy=True)
a1.set_title("Events per day (log scale)")
a1.set_xlabel("event date (UTC)")
(hourly / hourly.sum()).plot(ax=a2)
a2.set_title("Share of each type's events by hour of day (UTC)")
a2.set_xlabel("hour")
fig.autofmt_xdate()
plt.tight_layout()
plt.show()
display(daily_events.astype(int))""",
    ),
    (
        "md",
        """### Prices

Prices are heavy-tailed (published November quantiles: p50 ≈ 165, p90 ≈ 758, p99 ≈ 1,682), so the histogram uses a
log axis. Zero prices are real in REES46; staging keeps them and flags them with `is_valid_price = false`, and the
revenue columns of the marts add nothing for them.""",
    ),
    (
        "code",
        """price_q = q(f\"\"\"
    select event_type,
           percentile_approx(price, array(0.5, 0.9, 0.99)) as q,
           avg(price) as mean, max(price) as max,
           sum(case when is_valid_price then 0 else 1 end) as invalid_price_rows,
           count(*) as events
    from {MARTS}.stg_bronze__events group by event_type order by events desc
\"\"\")
price_q[["p50", "p90", "p99"]] = pd.DataFrame(price_q.pop("q").tolist(), index=price_q.index)
display(price_q.round(2))

prices = q(f"select event_type, price from {MARTS}.stg_bronze__events where is_valid_price and event_type in ('view', 'purchase')")
fig, ax = plt.subplots(figsize=(10, 4))
bins = np.logspace(np.log10(max(prices.price.min(), 0.01)), np.log10(max(prices.price.max(), 1.0)), 50)
for event_type, part in prices.groupby("event_type"):
    ax.hist(part.price, bins=bins, alpha=0.55, weights=np.full(len(part), 100 / len(part)), label=event_type)
ax.set_xscale("log")
ax.set_xlabel("price (log scale)")
ax.set_ylabel("% of the type's events (log-spaced bins)")
ax.set_title("Price distribution: viewed vs purchased products")
ax.legend()
plt.show()""",
    ),
    (
        "md",
        """### Categories, brands and missing values

`category_top` is the first segment of `category_code` (`unknown` when the shop sent none, about a third of the real
rows). Purchases concentrate in fewer categories and brands than views; the category model (section 6) predicts
exactly this: which top-level categories a session's user buys next.""",
    ),
    (
        "code",
        """cats = q(f\"\"\"
    select category_top,
           count(*) as events,
           sum(case when event_type = 'purchase' then 1 else 0 end) as purchases,
           sum(case when event_type = 'purchase' then price else 0 end) as revenue
    from {MARTS}.stg_bronze__events group by category_top order by events desc
\"\"\")
cats["share_of_events"] = cats.events / cats.events.sum()
cats["share_of_purchases"] = cats.purchases / max(cats.purchases.sum(), 1)
display(cats.style.format({"events": "{:,}", "purchases": "{:,}", "revenue": "{:,.0f}", "share_of_events": "{:.1%}", "share_of_purchases": "{:.1%}"}))

brands = q(f\"\"\"
    select coalesce(brand, 'unknown') as brand, count(*) as events,
           sum(case when event_type = 'purchase' then 1 else 0 end) as purchases
    from {MARTS}.stg_bronze__events group by 1 order by purchases desc, events desc limit 15
\"\"\")
fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.5))
cats.set_index("category_top")[["share_of_events", "share_of_purchases"]].mul(100).plot.bar(ax=a1)
a1.set_ylabel("%")
a1.set_title("Top-level categories: share of events vs share of purchases")
brands.set_index("brand").purchases.plot.bar(ax=a2, color="#55A868")
a2.set_title("Top brands by purchases")
plt.tight_layout()
plt.show()

nulls = q(f\"\"\"
    select avg(case when category_code is null then 1.0 else 0 end) as category_code_missing,
           avg(case when brand is null then 1.0 else 0 end) as brand_missing,
           avg(case when user_session is null then 1.0 else 0 end) as user_session_missing
    from {MARTS}.stg_bronze__events
\"\"\")
display(nulls.T.rename(columns={0: "share of events"}).style.format("{:.2%}"))""",
    ),
    (
        "md",
        """## 3. Sessions and users

A session is the shop's `user_session`; events without one are cut per user by a 30-minute inactivity timeout
(`session_rule`). Real REES46 sessions average about 3.4 events (median 2, p90 8). `funnel_stage` is the furthest
step reached; `is_bounce` marks one-event sessions.""",
    ),
    (
        "code",
        """sessions = spark.table(f"{MARTS}.fct_sessions").select(
    "n_events", "duration_seconds", "funnel_stage", "session_rule", "is_bounce", "revenue", "seconds_to_first_purchase"
).toPandas()
summary = sessions[["n_events", "duration_seconds"]].describe(percentiles=[0.5, 0.9, 0.99]).T
display(summary.round(1))
display(
    pd.concat(
        {
            "funnel_stage": sessions.funnel_stage.value_counts(normalize=True),
            "session_rule": sessions.session_rule.value_counts(normalize=True),
        }
    ).to_frame("share").style.format("{:.2%}")
)
print(f"bounce rate: {sessions.is_bounce.mean():.1%} of {len(sessions):,} sessions")

fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4))
sessions.n_events.clip(upper=30).plot.hist(ax=a1, bins=30, color="#4C72B0")
a1.set_title("Events per session (clipped at 30)")
(sessions.duration_seconds / 60).clip(upper=60).plot.hist(ax=a2, bins=30, color="#DD8452")
a2.set_title("Session duration, minutes (clipped at 60)")
sessions.funnel_stage.value_counts().reindex(["none", "view", "cart", "purchase"]).dropna().plot.bar(ax=a3, color="#55A868")
a3.set_title("Furthest funnel step reached")
plt.tight_layout()
plt.show()""",
    ),
    (
        "code",
        """users = spark.table(f"{MARTS}.dim_users").select("sessions", "purchase_sessions", "total_spend", "favourite_category_1").toPandas()
buyers = users[users.purchase_sessions > 0]
print(
    f"{len(users):,} users; {users.sessions.mean():.2f} sessions per user on average; "
    f"{len(buyers):,} ({len(buyers) / max(len(users), 1):.1%}) bought at least once"
)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
users.sessions.clip(upper=20).plot.hist(ax=a1, bins=20, color="#4C72B0")
a1.set_title("Sessions per user (clipped at 20)")
if len(buyers):
    buyers.total_spend.astype(float).plot.hist(ax=a2, bins=30, color="#55A868", logy=True)
a2.set_title("Total spend of buyers")
plt.tight_layout()
plt.show()
display(users.favourite_category_1.value_counts(normalize=True).head(10).to_frame("share of users (favourite category)"))""",
    ),
    (
        "md",
        """## 4. Funnel and drop-off

The funnel counts **sessions**, cumulatively: a purchase implies the cart step even when the shop recorded no cart
event (buy-now; real REES46 has many), so each step is at most the one before. The three figures are the ones
`python -m lakehouse.figures` writes to `output/figures/`, drawn by the same functions from the same marts.""",
    ),
    (
        "code",
        """daily, category = figures.load_marts(MARTS)
fig_dir = cfg.lakehouse_dir / "_notebook_figures"
for draw, name in [
    (figures.funnel_chart, "funnel.png"),
    (figures.dropoff_by_category, "dropoff_by_category.png"),
    (figures.conversion_over_time, "conversion_over_time.png"),
]:
    display(Image(filename=str(draw(daily if draw is not figures.dropoff_by_category else category, fig_dir / name))))""",
    ),
    (
        "md",
        """### Daily funnel table

Rates per day with cart abandonment (carted, did not buy), the buy-now purchases counted in the cart step, bounces
and the median time from session start to the first purchase.""",
    ),
    (
        "code",
        """cols = [
    "session_date", "sessions", "view_sessions", "cart_sessions", "purchase_sessions", "purchase_sessions_without_cart",
    "view_to_cart_rate", "cart_to_purchase_rate", "view_to_purchase_rate", "cart_abandonment_rate", "bounce_rate",
    "median_seconds_to_purchase", "revenue",
]
d = daily.sort_values("session_date")[cols]
pct = ["view_to_cart_rate", "cart_to_purchase_rate", "view_to_purchase_rate", "cart_abandonment_rate", "bounce_rate"]
display(d.style.format({c: "{:.1%}" for c in pct} | {"revenue": "{:,.0f}", "median_seconds_to_purchase": "{:,.0f}"}, na_rep="–"))
tot = daily[["sessions", "view_sessions", "cart_sessions", "purchase_sessions", "purchase_sessions_without_cart"]].sum()
display(
    Markdown(
        f"**Overall**: {tot.sessions:,} sessions; view → cart {tot.cart_sessions / max(tot.view_sessions, 1):.1%}, "
        f"cart → purchase {tot.purchase_sessions / max(tot.cart_sessions, 1):.1%}, "
        f"overall conversion {tot.purchase_sessions / max(tot.view_sessions, 1):.2%}; "
        f"{tot.purchase_sessions_without_cart:,} of {tot.purchase_sessions:,} purchase sessions had no cart event."
    )
)""",
    ),
    (
        "md",
        """### Where sessions drop off: categories and brands

Per category and per brand, a session counts once in each category (brand) it touched, at the step it reached
*there*. High view → cart drop-off points to the product pages (price, content); high cart → purchase drop-off to
checkout, stock or delivery. Small groups are noisy, so only the busiest are shown.""",
    ),
    (
        "code",
        """def funnel_by(frame: pd.DataFrame, key: str, top: int) -> pd.DataFrame:
    g = frame.groupby(key)[["sessions", "view_sessions", "cart_sessions", "purchase_sessions", "revenue"]].sum()
    g = g.sort_values("view_sessions", ascending=False).head(top)
    g["view_to_cart"] = g.cart_sessions / g.view_sessions.where(g.view_sessions > 0)
    g["cart_to_purchase"] = g.purchase_sessions / g.cart_sessions.where(g.cart_sessions > 0)
    g["conversion"] = g.purchase_sessions / g.view_sessions.where(g.view_sessions > 0)
    return g


by_category = funnel_by(category, "category_top", 15)
brand_daily = spark.table(f"{MARTS}.fct_funnel_brand_daily").toPandas()
by_brand = funnel_by(brand_daily, "brand", 12)
rates = {"view_to_cart": "{:.1%}", "cart_to_purchase": "{:.1%}", "conversion": "{:.2%}", "revenue": "{:,.0f}"}
display(Markdown("**By top-level category**"), by_category.style.format(rates, na_rep="–"))
display(Markdown("**By brand (busiest 12)**"), by_brand.style.format(rates, na_rep="–"))

fig, ax = plt.subplots(figsize=(8, 6))
ax.scatter(by_category.view_to_cart * 100, by_category.cart_to_purchase * 100, s=by_category.view_sessions / by_category.view_sessions.max() * 800, alpha=0.5)
for name, r in by_category.iterrows():
    ax.annotate(name, (r.view_to_cart * 100, r.cart_to_purchase * 100), fontsize=9)
ax.set_xlabel("view → cart (% of viewing sessions)")
ax.set_ylabel("cart → purchase (% of carting sessions)")
ax.set_title("Categories: the two funnel steps (bubble = viewing sessions)")
plt.show()""",
    ),
    (
        "md",
        """### Products

`fct_product_funnel` has one row per product over the whole history. The most viewed products are not always the
best sellers; products with many views and no carts are the candidates for a closer look.""",
    ),
    (
        "code",
        """products = spark.table(f"{MARTS}.fct_product_funnel").toPandas()
top_viewed = products.sort_values("view_sessions", ascending=False).head(10)
display(
    top_viewed[["product_id", "category_top", "brand", "views", "view_sessions", "cart_sessions", "purchase_sessions", "view_to_cart_rate", "revenue"]]
    .style.format({"view_to_cart_rate": "{:.1%}", "revenue": "{:,.0f}"}, na_rep="–")
)
busy = products[products.view_sessions >= 5]
print(f"{len(products):,} products; {len(busy):,} with at least 5 viewing sessions, of which {(busy.cart_sessions == 0).sum():,} never carted")
if len(busy):
    fig, ax = plt.subplots(figsize=(8, 4))
    (busy.view_to_cart_rate * 100).plot.hist(ax=ax, bins=30, color="#4C72B0")
    ax.set_xlabel("view → cart rate, % (products with ≥ 5 viewing sessions)")
    ax.set_title("How products convert views into carts")
    plt.show()""",
    ),
    (
        "md",
        """## 5. ML feature marts

One row per prediction point of a session, with features computed only from what was known at that point (the
leakage guard is tested in `tests/integration/test_ml_leakage_dbt.py`). The purchase label is rare, which is why the
purchase model is selected on PR-AUC rather than accuracy.""",
    ),
    (
        "code",
        """pi = q(f\"\"\"
    select prediction_point, count(*) as rows, avg(label_will_purchase) as purchase_rate
    from {MARTS}.fct_purchase_intent_features group by prediction_point order by prediction_point
\"\"\")
display(Markdown("**fct_purchase_intent_features**: rows and label rate per prediction point"), pi.style.format({"purchase_rate": "{:.2%}"}))

cat_cols = [c for c in spark.table(f"{MARTS}.fct_category_features").columns if c.startswith("y_")]
if cat_cols:
    prevalence = q(f"select {', '.join(f'avg({c}) as {c}' for c in cat_cols)} from {MARTS}.fct_category_features").T[0]
    prevalence.index = [c[2:] for c in prevalence.index]
    ax = (prevalence.sort_values() * 100).plot.barh(figsize=(8, 5), color="#8172B2")
    ax.set_xlabel("% of rows")
    ax.set_title("fct_category_features: how often each category is a target")
    plt.show()""",
    ),
    (
        "md",
        """## 6. Models in MLflow

`python -m ml.train --task purchase|category` runs a grid per task (one parent run, one nested run per
configuration), picks the winner on the validation window, scores it once on the test window next to simple
baselines, and registers it; the `champion` alias (which the live scorer loads) moves only when the new version beats
the best baseline by a stated margin and is no worse than the current champion on the same test window. Below: the latest parent run of each experiment, its test metrics
against the baselines, the validation grid, and the current champion. With no server or no runs yet, a note says so.""",
    ),
    (
        "code",
        """import urllib.request

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml.feature_contract import TASK_SPECS


def mlflow_reachable(uri: str) -> bool:
    if not uri.startswith("http"):
        return True  # a file or database store needs no server
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def split_baselines(metrics: dict[str, float], prefix: str) -> pd.DataFrame:
    \"\"\"Metrics `{prefix}<m>` (winner) and `{prefix}baseline_<name>_<m>` as a table: one row per model.\"\"\"
    names = sorted((k[len(prefix):] for k in metrics if k.startswith(prefix) and not k.startswith(f"{prefix}baseline_")), key=len, reverse=True)
    rows = {"winner": {m: metrics[f"{prefix}{m}"] for m in names}}
    for key, value in metrics.items():
        if key.startswith(f"{prefix}baseline_"):
            rest = key[len(f"{prefix}baseline_"):]
            m = next((m for m in names if rest.endswith(f"_{m}")), None)
            if m is not None:
                rows.setdefault(f"baseline: {rest[: -len(m) - 1]}", {})[m] = value
    return pd.DataFrame(rows).T


client = MlflowClient(cfg.mlflow_uri) if mlflow_reachable(cfg.mlflow_uri) else None
if client is None:
    print(f"note: no MLflow server answers at {cfg.mlflow_uri}; start it with `python -m lakehouse.services start` to see the models")""",
    ),
    (
        "code",
        """model_results = {}
for task, spec in TASK_SPECS.items():
    display(Markdown(f"### {task}: experiment `{spec.experiment}`, registered model `{spec.registered_model}`"))
    if client is None:
        print("note: MLflow not reachable; skipped")
        continue
    exp = client.get_experiment_by_name(spec.experiment)
    runs = [] if exp is None else client.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"], max_results=200
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and "winner" in r.data.tags]
    if not parents:
        print(f"note: no finished training runs in {spec.experiment!r} yet; run `python -m ml.train --task {task}`")
        continue
    latest = parents[0]
    tags, params = latest.data.tags, latest.data.params
    sel = params.get("selection_metric", "").removeprefix("val_")
    table = split_baselines(latest.data.metrics, "test_")
    model_results[task] = table
    print(f"latest run {latest.info.run_id[:8]} ({pd.Timestamp(latest.info.start_time, unit='ms'):%Y-%m-%d %H:%M} UTC), selected on val {sel}")
    print(f"winner: {tags['winner']}\\nwhy: {tags.get('winner_reason', '')}")
    print(f"registered: {tags.get('registered_model')} v{tags.get('registered_version')}; {tags.get('champion_decision', '')}")
    display(Markdown("**Test window: winner vs baselines**"), table.style.format("{:.4f}", na_rep="–").highlight_max(axis=0, subset=[sel] if sel in table else None))

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == latest.info.run_id]
    grid = pd.DataFrame(
        [{"config": r.info.run_name, "family": r.data.params.get("family"), **{k: v for k, v in r.data.metrics.items() if k.startswith("val_") and "baseline" not in k}} for r in children]
    )
    if len(grid) and f"val_{sel}" in grid:
        grid = grid.sort_values(f"val_{sel}", ascending=False).set_index("config")
        display(Markdown(f"**Validation grid ({len(grid)} configurations)**"), grid.style.format(precision=4, na_rep="–"))
        ax = grid[f"val_{sel}"].iloc[::-1].plot.barh(figsize=(8, max(2.5, 0.35 * len(grid))), color="#4C72B0")
        # Each nested run logs the baselines' validation scores (same rows for all of them): read them from one.
        base = {k: v for k, v in children[0].data.metrics.items() if k.startswith("val_baseline_") and k.endswith(f"_{sel}")}
        for (k, v), color in zip(sorted(base.items()), ["#C44E52", "#DD8452", "#8172B2"]):
            ax.axvline(v, color=color, linestyle="--", label=k.removeprefix("val_baseline_").removesuffix(f"_{sel}") + " baseline")
        ax.set_xlabel(f"validation {sel}")
        ax.set_title(f"{task}: grid on the validation window")
        if base:
            ax.legend(fontsize=8)
        plt.show()

    try:
        champ = client.get_model_version_by_alias(spec.registered_model, "champion")
    except MlflowException:
        print(f"note: {spec.registered_model!r} has no champion yet")
    else:
        t = champ.tags
        print(
            f"champion: {spec.registered_model} v{champ.version} (winner {t.get('winner')}, test {sel} {t.get(f'test_{sel}')}, "
            f"threshold {t.get('threshold', '–')}, trained by run {t.get('training_run_id', '?')[:8]})"
        )""",
    ),
    (
        "md",
        """## Where to go next

- Ad-hoc SQL on the same catalog: `python -m lakehouse.sql "select * from analytics.fct_funnel_daily order by session_date"`
  or the example queries in `dbt_project/analyses/`.
- The MLflow UI at the tracking URI printed in the setup cell: every grid configuration, its plots and the registry.
- Live scoring: `python -m streaming.scorer` loads the `champion` of each registered model.""",
    ),
    (
        "code",
        """spark.stop()  # end this session (with LAKEHOUSE_CATALOG=embedded: release the Derby catalog for dbt or the pipeline)""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook with no outputs: cells, a generic Python 3 kernel spec, nothing machine-specific."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in CELLS:
        nb.cells.append(new_markdown_cell(source) if kind == "md" else new_code_cell(source))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives a byte-identical file
    nbformat.validate(nb)
    return nb


def main(out: Path = typer.Option(NOTEBOOK, help="Where to write the notebook.")) -> None:
    """Write the exploration notebook (outputs stripped) from the cells in this script."""
    out.write_text(nbformat.writes(build()) + "\n")
    typer.echo(f"wrote {out} ({len(CELLS)} cells)")


if __name__ == "__main__":
    typer.run(main)
