"""Spark's own account of a step's work: the stages the SQL server ran while the step ran.

Read from the server's UI (its REST API, ``/api/v1/applications/<id>/stages``) before and
after the step. Two figures:

* the task time: how long the step's tasks ran, summed over the cores (each stage's
  ``executorRunTime``, every attempt). Divided by the application's cores it is the least
  wall time any packing of these tasks could take on this machine, whatever the scheduling:
  a floor for this plan of the work;
* the busy time: the wall time in which at least one stage ran. The rest of the step is the
  driver's and the client's (planning, Delta's log, dbt's statements and its own work).

And the task time per dbt model: the Thrift server describes each job by its statement,
which starts with dbt's query comment naming the model (``"node_id": "model.<project>.<name>"``).
Stages that Spark runs outside the statement's thread (some broadcasts and subqueries)
carry no description; they are counted apart.

The server's UI keeps its last ``SQL_SERVER_UI_RETAINED_STAGES`` ended stages only (50 by
default, so that a long-running server's memory stays flat); the benchmark starts its server
with room for a whole run. Stage ids are consecutive, so ids that are gone are counted and
reported: the figures are then too low.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

ENDED = {"COMPLETE", "FAILED", "SKIPPED"}
UNNAMED = "(no statement)"
_DBT_NODE = re.compile(r'"node_id": "[a-z_]+\.[^."]+\.([^"]+)"')


@dataclass(frozen=True)
class StageRun:
    """One attempt of one stage: when it ran and how long its tasks ran in all."""

    stage_id: int
    attempt: int
    status: str
    submitted: float | None
    completed: float | None
    task_seconds: float
    model: str = UNNAMED


@dataclass
class StageSummary:
    """A step's stages, added up (see the module's docstring)."""

    stages: int
    missed: int
    cores: int
    task_seconds: float
    busy_seconds: float
    by_model: dict[str, float] = field(default_factory=dict)

    @property
    def least_seconds(self) -> float:
        """The task time spread perfectly over the cores: no schedule of these tasks is shorter."""
        return self.task_seconds / self.cores

    def describe(self, wall_seconds: float) -> str:
        missed = (
            f"; {self.missed} of its {self.stages + self.missed} stages were gone from the UI, so these figures are too low "
            "(raise SQL_SERVER_UI_RETAINED_STAGES)"
            if self.missed
            else ""
        )
        return (
            f"Spark: {self.stages} stages, tasks {self.task_seconds:,.1f} core-s, so at least {self.least_seconds:,.1f} s on "
            f"{self.cores} cores; a stage ran during {self.busy_seconds:,.1f} s of the {wall_seconds:,.1f} s{missed}"
        )

    def top_models(self, n: int = 8) -> str:
        """The models whose tasks took longest, with their core-seconds ("a 12.0, b 3.5, 3 more 1.2")."""
        ranked = sorted(self.by_model.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{model} {seconds:,.1f}" for model, seconds in ranked[:n])
        rest = ranked[n:]
        return shown + (f", {len(rest)} more {sum(s for _, s in rest):,.1f}" if rest else "")


def _time(text: str | None) -> float | None:
    """A time of Spark's REST API ("2026-12-05T07:01:02.345GMT") as epoch seconds."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fGMT").replace(tzinfo=UTC).timestamp()


def parse_stage(raw: dict) -> StageRun:
    """A stage of the REST API's ``stages`` list; its model from dbt's query comment, if any."""
    node = _DBT_NODE.search(raw.get("description") or "")
    return StageRun(
        stage_id=int(raw["stageId"]),
        attempt=int(raw.get("attemptId", 0)),
        status=str(raw["status"]),
        submitted=_time(raw.get("submissionTime")),
        completed=_time(raw.get("completionTime")),
        task_seconds=raw.get("executorRunTime", 0) / 1000,
        model=node.group(1) if node else UNNAMED,
    )


def busy_seconds(runs: list[StageRun]) -> float:
    """Wall time covered by at least one stage (the union of their intervals)."""
    spans = sorted((r.submitted, r.completed) for r in runs if r.submitted is not None and r.completed is not None)
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarize(runs: list[StageRun], first_id: int, cores: int) -> StageSummary:
    """Add up the stages with ids from ``first_id``; ids up to the last one seen but never seen are missed."""
    runs = [r for r in runs if r.stage_id >= first_id and r.status in ENDED]
    ids = {r.stage_id for r in runs}
    missed = len(set(range(first_id, max(ids) + 1)) - ids) if ids else 0
    by_model: Counter[str] = Counter()
    for r in runs:
        by_model[r.model] += r.task_seconds
    return StageSummary(
        stages=len(ids),
        missed=missed,
        cores=cores,
        task_seconds=sum(r.task_seconds for r in runs),
        busy_seconds=busy_seconds(runs),
        by_model={model: seconds for model, seconds in by_model.items() if seconds > 0},
    )


@dataclass
class StageCounter:
    """Adds up the stages a Spark application runs while the ``with`` block runs.

    ``ui`` is the application's UI address (``http://127.0.0.1:4040``); ``summary`` is set
    when the block ends.
    """

    ui: str
    summary: StageSummary | None = None

    def _get(self, path: str):
        with urllib.request.urlopen(f"{self.ui}/api/v1/applications{path}", timeout=60) as response:
            return json.load(response)

    def _stages(self) -> list[StageRun]:
        return [parse_stage(raw) for raw in self._get(f"/{self._app}/stages")]

    def __enter__(self) -> StageCounter:
        self._app = self._get("")[0]["id"]
        # local mode runs the tasks in the driver; on a cluster, the executors
        executors = self._get(f"/{self._app}/executors")
        workers = [e for e in executors if e["id"] != "driver"] or executors
        self._cores = sum(e["totalCores"] for e in workers)
        self._first = max((r.stage_id for r in self._stages()), default=-1) + 1
        return self

    def __exit__(self, *exc) -> None:
        self.summary = summarize(self._stages(), self._first, self._cores)
