"""The SQL command's query rendering and the funnel figures, without Spark."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from lakehouse import figures, sql
from lakehouse.config import REPO_ROOT


def test_render_replaces_ref_and_source():
    text = 'select * from {{ ref(\'fct_funnel_daily\') }} join {{ source("bronze", "events") }};\n'
    assert sql.render(text) == "select * from analytics.fct_funnel_daily join bronze.events"


def test_render_refuses_other_jinja():
    with pytest.raises(ValueError, match="Jinja"):
        sql.render("select {{ var('x') }}")


def test_every_analysis_renders_to_plain_sql():
    for path in (REPO_ROOT / "dbt_project" / "analyses").glob("*.sql"):
        rendered = sql.render(path.read_text())
        assert "analytics." in rendered and "{{" not in rendered


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    daily = pd.DataFrame(
        {
            "session_date": [date(2019, 11, 1), date(2019, 11, 2)],
            "sessions": [100, 120],
            "view_sessions": [100, 118],
            "cart_sessions": [10, 15],
            "purchase_sessions": [4, 5],
        }
    )
    daily["view_to_cart_rate"] = daily.cart_sessions / daily.view_sessions
    daily["cart_to_purchase_rate"] = daily.purchase_sessions / daily.cart_sessions
    daily["view_to_purchase_rate"] = daily.purchase_sessions / daily.view_sessions
    category = pd.DataFrame(
        {
            "session_date": [date(2019, 11, 1)] * 3,
            "category_top": ["electronics", "appliances", "unknown"],
            "view_sessions": [60, 30, 40],
            "cart_sessions": [8, 0, 2],
            "purchase_sessions": [3, 0, 1],
        }
    )
    return daily, category


def test_figures_are_written_as_png(tmp_path):
    daily, category = _frames()
    paths = figures.draw_all(daily, category, tmp_path)
    assert [p.name for p in paths] == ["funnel.png", "dropoff_by_category.png", "conversion_over_time.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_sql_output_fits_the_reader() -> None:
    """A table cut to `sessi…` in 80 columns is useless: wide results go one block per row, pipes get CSV."""
    from lakehouse.sql import OutputFormat, choose_format, vertical

    session = "4d3b30da-a5e4-49df-b1a8-ba5943f1dd33"
    wide = (["session_id", "event_id", "user_id"], [(session, "59" * 32, 520088904)])
    narrow = (["session_date", "sessions"], [("2019-11-01", 240)])
    assert choose_format(*wide, width=80, is_terminal=True) is OutputFormat.vertical
    assert choose_format(*narrow, width=80, is_terminal=True) is OutputFormat.table
    assert choose_format(*wide, width=200, is_terminal=True) is OutputFormat.table
    assert choose_format(*narrow, width=80, is_terminal=False) is OutputFormat.csv
    text = vertical(*wide)
    assert session in text and "59" * 32 in text and text.splitlines()[0].startswith("-[ row 1 ]")
    assert vertical(["a"], [(None,)]).endswith("a | ∅")
