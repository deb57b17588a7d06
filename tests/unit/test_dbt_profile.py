"""bench.dbt_profile: a dbt JSON log read into phases, statements by kind and models."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from bench.dbt_profile import profile, read_events, statement_kind
from lakehouse.config import REPO_ROOT

COMMENT = '/* {"app": "dbt", "connection_name": "m"} */\n\n'


def event(name: str, second: float, thread: str = "MainThread", invocation: str = "run-2", **data) -> dict:
    return {
        "data": data,
        "info": {"name": name, "thread": thread, "invocation_id": invocation, "ts": f"2026-12-02T10:00:{second:06.3f}Z"},
    }


def node(name: str, second: float, thread: str, model: str) -> dict:
    return event(name, second, thread, node_info={"node_name": model})


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        (COMMENT + "show tblproperties analytics.fct_sessions", "show tblproperties"),
        (COMMENT + "create or replace temporary view x__dbt_tmp as select 1", "create temporary view"),
        (COMMENT + "create or replace view analytics.v as select 1", "create view"),
        (COMMENT + "-- back compat for old kwarg name\n  select 'unchanged' as status", "select (look-up or no-op)"),
        (COMMENT + "set spark.sql.sources.partitionOverwriteMode = STATIC", "set partitionoverwritemode"),
        (COMMENT + "describe extended analytics.dim_users", "describe extended"),
    ],
)
def test_statement_kind_skips_comments_and_or_replace(sql: str, kind: str) -> None:
    assert statement_kind(sql) == kind


def test_phases_statements_and_models_come_from_the_events() -> None:
    events = [
        event("MainReportVersion", 2.0),
        event("ConcurrencyLine", 4.5),
        node("NodeStart", 5.0, "T1", "fct_sessions"),
        node("NodeStart", 5.1, "T2", "dim_users"),
        event("SQLQuery", 5.2, "T1", sql=COMMENT + "show tblproperties analytics.fct_sessions"),
        event("SQLQuery", 5.3, "T2", sql=COMMENT + "show tblproperties analytics.dim_users"),
        event("SQLQueryStatus", 5.6, "T2", elapsed=0.3),
        event("SQLQueryStatus", 5.7, "T1", elapsed=0.5),
        event("SQLQuery", 5.8, "T1", sql=COMMENT + "describe extended analytics.fct_sessions"),
        event("SQLQueryStatus", 6.0, "T1", elapsed=0.2),
        node("NodeFinished", 6.5, "T1", "fct_sessions"),
        node("NodeFinished", 7.0, "T2", "dim_users"),
        event("CommandCompleted", 7.5),
    ]
    version_at = datetime.fromisoformat(events[0]["info"]["ts"].replace("Z", "+00:00")).timestamp()
    p = profile(events, started_at=version_at - 1.5)
    assert p.phases == pytest.approx(
        {
            "process start, imports": 1.5,
            "project, adapter, parse, manifest": 2.5,
            "catalog look-up, on-run-start hooks": 0.5,
            "models": 2.0,
            "on-run-end hooks, artifacts": 0.5,
        }
    )
    assert p.statements == {"show tblproperties": (2, pytest.approx(0.8)), "describe extended": (1, pytest.approx(0.2))}
    assert p.sql_seconds == pytest.approx(1.0)
    sessions, users = p.models["fct_sessions"], p.models["dim_users"]
    assert (sessions.statements, sessions.sql_seconds, sessions.seconds) == (2, pytest.approx(0.7), pytest.approx(1.5))
    assert (users.statements, users.sql_seconds, users.seconds) == (1, pytest.approx(0.3), pytest.approx(1.9))
    # the timeline: seconds since the first model started
    assert (sessions.start, sessions.end) == (pytest.approx(0.0), pytest.approx(1.5))
    assert (users.start, users.end) == (pytest.approx(0.1), pytest.approx(2.0))


def test_read_events_keeps_the_last_invocation_of_an_appended_log(tmp_path: Path) -> None:
    log = tmp_path / "dbt.log"
    lines = [event("MainReportVersion", 1.0, invocation="run-1"), event("MainReportVersion", 9.0, invocation="run-2")]
    log.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    assert [e["info"]["invocation_id"] for e in read_events(log)] == ["run-2"]


def test_a_text_log_is_refused_with_the_option_to_use(tmp_path: Path) -> None:
    log = tmp_path / "dbt.log"
    log.write_text("10:00:00  Running with dbt=1.11\n")
    with pytest.raises(ValueError, match="--log-format-file json"):
        read_events(log)


def test_the_command_prints_the_report_of_a_log(tmp_path: Path) -> None:
    """`python -m bench.dbt_profile LOG`, as the README shows it."""
    log = tmp_path / "dbt.log"
    lines = [
        event("MainReportVersion", 1.0),
        event("ConcurrencyLine", 2.0),
        node("NodeStart", 2.5, "T1", "fct_sessions"),
        event("SQLQuery", 2.6, "T1", sql=COMMENT + "show tblproperties analytics.fct_sessions"),
        event("SQLQueryStatus", 2.9, "T1", elapsed=0.3),
        node("NodeFinished", 3.0, "T1", "fct_sessions"),
        event("CommandCompleted", 3.5),
    ]
    log.write_text("10:00:00  a text line of an earlier run\n" + "\n".join(json.dumps(e) for e in lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "bench.dbt_profile", str(log)], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "show tblproperties" in out.stdout and "fct_sessions" in out.stdout and "models" in out.stdout
