"""bench.spark_stages: adding up a step's Spark stages (the least time on the cores, the busy time, missed stages)."""

from __future__ import annotations

import pytest

from bench.bench_dbt import Step, results_table
from bench.spark_stages import StageRun, busy_seconds, parse_stage, summarize


def run(stage_id: int, start: float, end: float, task_seconds: float, attempt: int = 0) -> StageRun:
    return StageRun(stage_id, attempt, "COMPLETE", start, end, task_seconds)


def test_a_stage_of_the_rest_api_is_read_with_its_times_and_task_time() -> None:
    raw = {
        "stageId": 12,
        "attemptId": 1,
        "status": "COMPLETE",
        "submissionTime": "2026-12-05T07:01:02.250GMT",
        "completionTime": "2026-12-05T07:01:04.750GMT",
        "executorRunTime": 3500,
    }
    stage = parse_stage(raw)
    assert (stage.stage_id, stage.attempt, stage.status, stage.task_seconds) == (12, 1, "COMPLETE", 3.5)
    assert stage.completed - stage.submitted == pytest.approx(2.5)


def test_a_skipped_stage_has_no_times_and_no_task_time() -> None:
    stage = parse_stage({"stageId": 3, "status": "SKIPPED"})
    assert (stage.submitted, stage.completed, stage.task_seconds) == (None, None, 0)


def test_busy_time_counts_overlapping_stages_once() -> None:
    # 0-10 and 5-12 overlap (12 s), 20-25 alone (5 s), 21-22 inside it
    runs = [run(1, 0, 10, 1), run(2, 5, 12, 1), run(3, 20, 25, 1), run(4, 21, 22, 1)]
    assert busy_seconds(runs) == 17
    assert busy_seconds([]) == 0


def test_the_least_time_is_the_task_time_over_the_cores_and_gaps_are_missed_stages() -> None:
    runs = [run(10, 0, 4, 6.0), run(11, 4, 9, 8.0), run(11, 9, 10, 1.0, attempt=1), run(14, 10, 12, 3.0)]
    summary = summarize(runs, first_id=10, cores=2)
    assert summary.stages == 3  # ids 10, 11, 14; a retried stage is one stage, its attempts' tasks all count
    assert summary.task_seconds == 18.0 and summary.least_seconds == 9.0
    assert summary.missed == 2  # 12 and 13 were never seen
    assert summary.busy_seconds == 12
    text = summary.describe(30.0)
    assert "at least 9.0 s on 2 cores" in text and "2 of its 5 stages were gone" in text


def test_task_time_is_added_up_per_dbt_model_from_the_statement_comment() -> None:
    comment = '/* {"app": "dbt", "target_name": "server", "node_id": "model.clickstream_lakehouse.%s"} */ create table x'
    stages = [
        {"stageId": 1, "status": "COMPLETE", "executorRunTime": 4000, "description": comment % "fct_sessions"},
        {"stageId": 2, "status": "COMPLETE", "executorRunTime": 1500, "description": "Delta: " + comment % "fct_sessions"},
        {"stageId": 3, "status": "COMPLETE", "executorRunTime": 2000, "description": comment % "dim_users"},
        {"stageId": 4, "status": "COMPLETE", "executorRunTime": 500},  # a broadcast outside the statement's thread
        {"stageId": 5, "status": "SKIPPED", "executorRunTime": 0, "description": comment % "fct_funnel_daily"},
    ]
    summary = summarize([parse_stage(raw) for raw in stages], first_id=1, cores=2)
    assert summary.by_model == {"fct_sessions": 5.5, "dim_users": 2.0, "(no statement)": 0.5}
    assert summary.top_models(2) == "fct_sessions 5.5, dim_users 2.0, 1 more 0.5"


def test_stages_before_the_step_or_still_running_do_not_count() -> None:
    before = run(9, 0, 1, 50.0)
    active = StageRun(12, 0, "ACTIVE", 5, None, 50.0)
    summary = summarize([before, run(10, 1, 3, 4.0), run(11, 3, 4, 2.0), active], first_id=10, cores=2)
    assert (summary.stages, summary.task_seconds, summary.missed) == (2, 6.0, 0)
    assert summarize([], first_id=5, cores=2).missed == 0


def test_the_results_table_sets_the_least_time_against_the_bound_and_the_full_refresh() -> None:
    from rich.console import Console

    steps = [
        Step(10, "floor: spark scan+aggregate", 10.0, 100),
        Step(10, "dbt run --full-refresh", 300.0, 100, task_seconds=400.0, least_seconds=200.0),
        Step(10, "bound: rewrite the tables it wrote", 100.0, 100),
        Step(10, "dbt run (incremental, +1% next day)", 60.0, 100, task_seconds=60.0, least_seconds=30.0),
    ]
    console = Console(width=250, record=True)
    console.print(results_table(steps))
    text = console.export_text()
    assert "3.00" in text  # the full refresh is 3x the bound
    assert "200.0 (2.00x bound)" in text  # and its tasks alone need 2x
    assert "20.0 %" in text and "30.0 (10.0 %)" in text  # the next day: 20 % of the full refresh, its tasks 10 %
