"""Where the seconds of one `dbt run` go, read from dbt's JSON log file.

A run started with ``--log-format-file json --log-path DIR`` leaves one JSON event per
line in ``DIR/dbt.log``. From it this module reports the run's phases (dbt start-up and
parsing, the on-run-start hooks, the models, the end), every statement sent to Spark
grouped by kind with its count and summed time, and each model's wall time next to the
time its statements took (the rest is dbt's own: Jinja, connections, the DAG).

    python -m bench.dbt_profile path/to/dbt.log

bench_dbt.py prints it after each timed run with nothing new (issue #19: "where each
remaining second goes").
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from bench import bench_console

# dbt's query comment, then SQL comments (dbt-spark prefixes some statements with one)
_LEADING_NOISE = re.compile(r"^\s*(/\*.*?\*/\s*|--[^\n]*\n\s*)*", re.DOTALL)


@dataclass
class ModelTime:
    """One model: wall time from dbt's start of the node to its end, and its statements.

    ``start`` and ``end`` are seconds since the run's first model started: laid side by
    side they show which models ran together and which chain the run waited for.
    """

    start: float
    end: float | None = None  # None while the log ends inside the model
    sql_seconds: float = 0.0
    statements: int = 0

    @property
    def seconds(self) -> float:
        return (self.start if self.end is None else self.end) - self.start


@dataclass
class Profile:
    """A run's phases (seconds, in order), its statements by kind, and its models."""

    phases: dict[str, float] = field(default_factory=dict)
    statements: dict[str, tuple[int, float]] = field(default_factory=dict)
    models: dict[str, ModelTime] = field(default_factory=dict)

    @property
    def sql_seconds(self) -> float:
        return sum(seconds for _, seconds in self.statements.values())


def statement_kind(sql: str) -> str:
    """A statement's kind: its first keywords, without comments or `or replace` ("show tblproperties")."""
    text = _LEADING_NOISE.sub("", sql).lower().replace(" or replace", "")
    words = text.split()
    if not words:
        return "(empty)"
    if words[0] == "create":
        # create [temporary] view|table / create schema
        return " ".join(words[: 3 if words[1:2] == ["temporary"] else 2])
    if words[0] == "set":
        # the setting's last name part: "set spark.sql.sources.partitionOverwriteMode = X" -> "set partitionoverwritemode"
        return "set " + words[1].split("=")[0].rsplit(".", 1)[-1] if len(words) > 1 else "set"
    if words[0] == "select":
        return "select (look-up or no-op)"
    return " ".join(words[:2])


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["info"]["ts"].replace("Z", "+00:00")).timestamp()


def read_events(log: Path) -> list[dict]:
    """The JSON events of the last invocation in ``log`` (dbt appends runs to one file)."""
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    if not events:
        raise ValueError(f"{log}: no JSON events (was dbt run with --log-format-file json?)")
    last = events[-1]["info"]["invocation_id"]
    return [e for e in events if e["info"]["invocation_id"] == last]


def profile(events: list[dict], started_at: float | None = None) -> Profile:
    """Profile one invocation's events; ``started_at`` (epoch seconds) adds the process start-up."""
    result = Profile()
    marks: dict[str, float] = {}
    pending: dict[str, tuple[str, str | None]] = {}  # thread -> (kind, model) of its running statement
    running: dict[str, str] = {}  # thread -> model it is running
    kinds: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for event in events:
        name, thread, at = event["info"]["name"], event["info"]["thread"], _ts(event)
        data = event.get("data", {})
        if name in ("MainReportVersion", "ConcurrencyLine", "CommandCompleted") and name not in marks:
            marks[name] = at
        elif name == "NodeStart":
            model = data["node_info"]["node_name"]
            running[thread] = model
            marks.setdefault("first node", at)
            result.models[model] = ModelTime(start=at)
        elif name == "NodeFinished":
            model = data["node_info"]["node_name"]
            result.models[model].end = at
            running.pop(thread, None)
            marks["last node"] = at
        elif name == "SQLQuery":
            pending[thread] = (statement_kind(data["sql"]), running.get(thread))
        elif name == "SQLQueryStatus" and thread in pending:
            kind, model = pending.pop(thread)
            kinds[kind][0] += 1
            kinds[kind][1] += float(data["elapsed"])
            if model:
                result.models[model].sql_seconds += float(data["elapsed"])
                result.models[model].statements += 1
    result.statements = {k: (int(n), s) for k, (n, s) in sorted(kinds.items(), key=lambda kv: -kv[1][1])}
    result.phases = _phases(marks, started_at)
    for t in result.models.values():
        t.start -= marks["first node"]
        t.end = None if t.end is None else t.end - marks["first node"]
    return result


def _phases(marks: dict[str, float], started_at: float | None) -> dict[str, float]:
    """Consecutive spans between the marks that are present."""
    order = [
        ("process start, imports", "started", "MainReportVersion"),
        ("project, adapter, parse, manifest", "MainReportVersion", "ConcurrencyLine"),
        ("catalog look-up, on-run-start hooks", "ConcurrencyLine", "first node"),
        ("models", "first node", "last node"),
        ("on-run-end hooks, artifacts", "last node", "CommandCompleted"),
    ]
    if started_at is not None:
        marks = {**marks, "started": started_at}
    return {label: marks[b] - marks[a] for label, a, b in order if a in marks and b in marks}


def render(result: Profile, title: str = "dbt run"):
    """Rich tables: phases, statements by kind, models (in the order they started)."""
    from rich.console import Group
    from rich.table import Table

    phases = Table("phase", "s", title=f"{title}: phases")
    for label, seconds in result.phases.items():
        phases.add_row(label, f"{seconds:.2f}")
    kinds = Table("statement", "count", "s (summed over threads)", title="statements sent to Spark")
    for kind, (count, seconds) in result.statements.items():
        kinds.add_row(kind, str(count), f"{seconds:.2f}")
    kinds.add_row("all", str(sum(n for n, _ in result.statements.values())), f"{result.sql_seconds:.2f}")
    models = Table(
        "model", "start s", "end s", "wall s", "statements", "their s", "dbt's own s", title="models (s since the first model started)"
    )
    for model, t in sorted(result.models.items(), key=lambda kv: (kv[1].start, kv[0])):
        models.add_row(
            model,
            f"{t.start:.1f}",
            "" if t.end is None else f"{t.end:.1f}",
            f"{t.seconds:.2f}",
            str(t.statements),
            f"{t.sql_seconds:.2f}",
            f"{t.seconds - t.sql_seconds:.2f}",
        )
    return Group(phases, kinds, models)


def cli(log: Annotated[Path, typer.Argument(help="dbt's JSON log file (dbt.log of a run with --log-format-file json).")]) -> None:
    """Print where the seconds of the last dbt invocation in LOG went."""
    bench_console().print(render(profile(read_events(log))))


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
