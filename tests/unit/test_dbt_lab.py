"""bench.dbt_lab's pure parts: which tables it restores, and how it reports the runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from bench.bench_dbt import Step
from bench.dbt_lab import delta_tables, parse_variant, summary_rows
from lakehouse.config import REPO_ROOT


def test_every_delta_table_of_bronze_and_the_warehouse_is_restored(tmp_path: Path) -> None:
    """A folder is a table when it holds a _delta_log; views, Derby and other folders are not."""
    for table in ("bronze/events", "bronze/quarantine", "warehouse/analytics.db/fct_sessions", "warehouse/gold.db/predictions"):
        (tmp_path / table / "_delta_log").mkdir(parents=True)
    (tmp_path / "warehouse" / "analytics.db" / "not_delta").mkdir()
    (tmp_path / "metastore_db" / "seg0").mkdir(parents=True)
    assert delta_tables(tmp_path) == [
        tmp_path / "bronze" / "events",
        tmp_path / "bronze" / "quarantine",
        tmp_path / "warehouse" / "analytics.db" / "fct_sessions",
        tmp_path / "warehouse" / "gold.db" / "predictions",
    ]


def test_runs_are_shares_of_the_full_refresh_with_their_median() -> None:
    runs = [
        Step(10, "dbt run (+1% next day) #1", 120.0, 140, task_seconds=150.0, least_seconds=75.0),
        Step(10, "dbt run (+1% next day) #2", 80.0, 140, task_seconds=110.0, least_seconds=55.0),
        Step(10, "dbt run (+1% next day) #3", 90.0, 140, task_seconds=112.0, least_seconds=56.0),
    ]
    rows = summary_rows(600.0, runs)
    assert rows[0] == ("1", "120.0", "20.0 %", "75.0 (12.5 %)", "150.0")
    assert rows[1][:3] == ("2", "80.0", "13.3 %")
    assert rows[-1][:3] == ("median", "90.0", "15.0 %")
    assert len(summary_rows(600.0, runs[:1])) == 1  # one run: no median


def test_zero_runs_are_refused_before_any_work() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.dbt_lab", "--runs", "0"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--runs" in out.stderr


def test_a_variant_is_a_name_and_jvm_options_which_may_be_empty() -> None:
    assert parse_variant("wide = -Dspark.sql.codegen.maxFields=1000 -Dx=y") == ("wide", "-Dspark.sql.codegen.maxFields=1000 -Dx=y")
    assert parse_variant("defaults=") == ("defaults", "")
    for bad in ("no-options-sign", "=-Dx=1"):
        with pytest.raises(typer.BadParameter):
            parse_variant(bad)
