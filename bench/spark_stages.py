"""Spark's own account of a step's work: every stage the SQL server ran while the step ran.

The server keeps only its last 50 stages in its UI (a long-running server bounds its
history: ``LONG_RUNNING_CONF``), so a thread polls the UI's REST API
(``/api/v1/applications/<id>/stages``) while the step runs and keeps each stage once it has
ended. Stage ids are consecutive, so ids never seen are counted: a report says when it
missed some (its figures are then too low).

From those stages, two figures for a step:

* the task time: the run time of every task, summed over the cores (``executorRunTime``).
  Divided by the application's cores, it is the least wall time any packing of these tasks
  could take on this machine, whatever the scheduling: a floor for this plan of the work;
* the busy time: the wall time in which at least one stage ran. The rest of the step is the
  driver's and the client's (planning, Delta's log, dbt's statements and its own work).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

ENDED = {"COMPLETE", "FAILED", "SKIPPED"}


@dataclass(frozen=True)
class StageRun:
    """One attempt of one stage: when it ran and what its tasks cost."""

    stage_id: int
    attempt: int
    status: str
    submitted: float | None
    completed: float | None
    task_seconds: float


@dataclass
class StageSummary:
    """A step's stages, added up (see the module's docstring)."""

    stages: int
    missed: int
    cores: int
    task_seconds: float
    busy_seconds: float

    @property
    def least_seconds(self) -> float:
        """The task time spread perfectly over the cores: no schedule of these tasks is shorter."""
        return self.task_seconds / self.cores

    def describe(self, wall_seconds: float) -> str:
        missed = f", {self.missed} missed (figures too low)" if self.missed else ""
        return (
            f"Spark: {self.stages} stages{missed}; tasks {self.task_seconds:,.1f} core-s, so at least "
            f"{self.least_seconds:,.1f} s on {self.cores} cores; a stage ran during {self.busy_seconds:,.1f} s "
            f"of the {wall_seconds:,.1f} s"
        )


def _time(text: str | None) -> float | None:
    """A time of Spark's REST API ("2026-12-05T07:01:02.345GMT") as epoch seconds."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fGMT").replace(tzinfo=UTC).timestamp()


def parse_stage(raw: dict) -> StageRun:
    """A stage of the REST API's ``stages`` list."""
    return StageRun(
        stage_id=int(raw["stageId"]),
        attempt=int(raw.get("attemptId", 0)),
        status=str(raw["status"]),
        submitted=_time(raw.get("submissionTime")),
        completed=_time(raw.get("completionTime")),
        task_seconds=raw.get("executorRunTime", 0) / 1000,
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
    ids = {r.stage_id for r in runs}
    missed = len(set(range(first_id, max(ids) + 1)) - ids) if ids else 0
    return StageSummary(
        stages=len(ids),
        missed=missed,
        cores=cores,
        task_seconds=sum(r.task_seconds for r in runs),
        busy_seconds=busy_seconds(runs),
    )


@dataclass
class StagePoller:
    """Collects the stages a Spark application ends while the ``with`` block runs.

    ``ui`` is the application's UI address (``http://127.0.0.1:4040``). ``summary`` is set
    when the block ends.
    """

    ui: str
    interval: float = 1.0
    summary: StageSummary | None = None
    _runs: dict[tuple[int, int], StageRun] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _get(self, path: str):
        with urllib.request.urlopen(f"{self.ui}/api/v1{path}", timeout=30) as response:
            return json.load(response)

    def _poll(self) -> None:
        for raw in self._get(f"/applications/{self._app}/stages"):
            run = parse_stage(raw)
            if run.stage_id >= self._first and run.status in ENDED:
                self._runs[(run.stage_id, run.attempt)] = run

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self) -> StagePoller:
        self._app = self._get("/applications")[0]["id"]
        executors = self._get(f"/applications/{self._app}/executors")
        # local mode runs the tasks in the driver; on a cluster the executors hold the cores
        workers = [e["totalCores"] for e in executors if e["id"] != "driver"]
        self._cores = sum(workers) if workers else next(e["totalCores"] for e in executors if e["id"] == "driver")
        seen = [int(raw["stageId"]) for raw in self._get(f"/applications/{self._app}/stages")]
        self._first = max(seen, default=-1) + 1
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # what ended since the last poll
        self.summary = summarize(list(self._runs.values()), self._first, self._cores)
