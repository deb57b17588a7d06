"""Draw the funnel figures from the dbt marts into output/figures/.

Why from the marts and not from bronze: the figures must show the same numbers as
the SQL examples and the tests (one definition of a funnel step, in dbt). Three
PNGs: the overall funnel, drop-off by top-level category, conversion over time.

    python -m lakehouse.figures --out output/figures
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from lakehouse.config import REPO_ROOT

MART_SCHEMA = "analytics"
STEPS = ("view_sessions", "cart_sessions", "purchase_sessions")
STEP_LABELS = ("Viewed", "Added to cart", "Purchased")


def load_marts(schema: str = MART_SCHEMA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The daily and the category funnel marts as pandas frames (they are small), through the catalog session."""
    from lakehouse.spark import get_spark

    spark = get_spark("lakehouse-figures", catalog=True)
    daily = spark.table(f"{schema}.fct_funnel_daily").toPandas()
    category = spark.table(f"{schema}.fct_funnel_category_daily").toPandas()
    if daily.empty:
        raise RuntimeError(f"{schema}.fct_funnel_daily is empty: load bronze and run `dbt run` first")
    return daily, category


def funnel_chart(daily: pd.DataFrame, path: Path) -> Path:
    """Horizontal funnel: sessions reaching each step, with the share of the step before."""
    import matplotlib.pyplot as plt

    counts = [int(daily[s].sum()) for s in STEPS]
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = ["#4C72B0", "#DD8452", "#55A868"]
    ax.barh(range(len(counts))[::-1], counts, color=colors, height=0.6)
    ax.set_yticks(range(len(counts))[::-1], STEP_LABELS)
    for i, n in enumerate(counts):
        y = len(counts) - 1 - i
        share = "" if i == 0 else f"  ({n / counts[i - 1]:.1%} of previous step)" if counts[i - 1] else ""
        ax.text(n, y, f" {n:,}{share}", va="center", fontsize=10)
    ax.set_xlim(0, max(counts) * 1.6 if max(counts) else 1)
    ax.set_xlabel("sessions")
    overall = counts[2] / counts[0] if counts[0] else 0.0
    ax.set_title(f"Session funnel, {_period(daily)} (overall conversion {overall:.2%})")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def dropoff_by_category(category: pd.DataFrame, path: Path, top: int = 12) -> Path:
    """Grouped bars: view->cart and cart->purchase drop-off for the busiest categories."""
    import matplotlib.pyplot as plt

    g = category.groupby("category_top")[list(STEPS)].sum()
    g = g.sort_values("view_sessions", ascending=False).head(top)
    view_to_cart = 1 - g.cart_sessions / g.view_sessions.where(g.view_sessions > 0)
    cart_to_purchase = 1 - g.purchase_sessions / g.cart_sessions.where(g.cart_sessions > 0)
    fig, ax = plt.subplots(figsize=(10, 5))
    x = range(len(g))
    ax.bar([i - 0.2 for i in x], view_to_cart * 100, width=0.4, label="view → cart drop-off", color="#4C72B0")
    ax.bar([i + 0.2 for i in x], cart_to_purchase * 100, width=0.4, label="cart → purchase drop-off", color="#DD8452")
    labels = [f"{c}\n({n:,} session{'s' if n != 1 else ''})" for c, n in zip(g.index, g.view_sessions, strict=True)]
    ax.set_xticks(list(x), labels, rotation=35, ha="right", fontsize=9)
    ax.set_ylabel("% of sessions lost at the step")
    ax.set_ylim(0, 105)
    ax.set_title("Funnel drop-off by top-level category (no bar: no session reached the step before)", pad=28)
    # Above the plot: drop-off bars reach 100 %, so any spot inside would cover some.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def conversion_over_time(daily: pd.DataFrame, path: Path) -> Path:
    """Daily view->cart, cart->purchase and overall conversion, with sessions per day."""
    import matplotlib.pyplot as plt

    d = daily.sort_values("session_date").reset_index(drop=True)
    x = list(range(len(d)))  # one slot per day: a categorical axis reads well for 1 day or 60
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax2 = ax.twinx()
    ax2.bar(x, d.sessions, alpha=0.15, color="grey", label="sessions (right axis)")
    ax2.set_ylabel("sessions per day")
    for column, label, width in (
        ("view_to_cart_rate", "view → cart", 1.5),
        ("cart_to_purchase_rate", "cart → purchase", 1.5),
        ("view_to_purchase_rate", "overall conversion (view → purchase)", 2.5),
    ):
        ax.plot(x, d[column] * 100, marker="o", label=label, linewidth=width)
    step = max(1, len(d) // 15)
    ax.set_xticks(x[::step], [str(v) for v in d.session_date[::step]], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(d) - 0.4)
    ax.set_ylabel("% of sessions")
    ax.set_title("Conversion over time (by session start day, UTC)", pad=28)
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = ax2.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=9, frameon=False)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    return _save(fig, path)


def _period(daily: pd.DataFrame) -> str:
    first, last = min(daily.session_date), max(daily.session_date)
    return str(first) if first == last else f"{first} to {last}"


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


FIGURES = ("funnel", "dropoff_by_category", "conversion_over_time")


def draw(name: str, daily: pd.DataFrame, category: pd.DataFrame, out: Path) -> Path:
    """Write one PNG, ``out/<name>.png``; pure pandas/matplotlib, no Spark."""
    import matplotlib

    matplotlib.use("Agg")
    path = out / f"{name}.png"
    if name == "dropoff_by_category":
        return dropoff_by_category(category, path)
    return {"funnel": funnel_chart, "conversion_over_time": conversion_over_time}[name](daily, path)


def draw_all(daily: pd.DataFrame, category: pd.DataFrame, out: Path) -> list[Path]:
    """Write the three PNGs (what a unit test calls without Spark)."""
    return [draw(name, daily, category, out) for name in FIGURES]


def cli(
    out: Annotated[Path, typer.Option(help="Folder for the PNGs.")] = REPO_ROOT / "output" / "figures",
    schema: Annotated[str, typer.Option(help="Schema of the dbt marts.")] = MART_SCHEMA,
) -> None:
    """Draw funnel.png, dropoff_by_category.png and conversion_over_time.png from the funnel marts."""
    from rich.progress import track

    from lakehouse.services import ServiceError

    try:
        daily, category = load_marts(schema)
    except ServiceError as exc:  # no SQL server: the message says how to start it
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for name in track(FIGURES, description="figures"):
        typer.echo(f"wrote {draw(name, daily, category, out)}")


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
