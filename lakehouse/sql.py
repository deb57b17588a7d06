"""Run SQL against the lakehouse catalog from the command line.

Why a command of its own: `dbt show` needs a dbt model or inline query and prints
dbt logging around it; this queries the same catalog (bronze, the dbt `analytics`
marts) through the project's one Spark factory, which by default is a Spark Connect
client of the lakehouse SQL server, so it runs while `dbt run` runs, and prints just
the result, as a table for people or as CSV/JSON for scripts. Queries can also come from a file, such as
the examples in dbt_project/analyses/ (they are plain SQL once `{{ ref(...) }}`
is replaced, which this command does: `{{ ref('x') }}` -> `analytics.x`).

    python -m lakehouse.sql "select * from analytics.fct_funnel_daily order by session_date"
    python -m lakehouse.sql -f dbt_project/analyses/conversion_by_day.sql --format csv
"""

from __future__ import annotations

import csv
import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

MART_SCHEMA = "analytics"
_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)\s*\}\}")
_SOURCE = re.compile(r"\{\{\s*source\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*,\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)\s*\}\}")


class OutputFormat(StrEnum):
    auto = "auto"
    table = "table"
    vertical = "vertical"
    csv = "csv"
    json = "json"


def choose_format(columns: list[str], rows: list[tuple], width: int, is_terminal: bool) -> OutputFormat:
    """What ``auto`` means: a table when it fits the terminal, one block per row when not, CSV into a pipe or file.

    A table squeezed into 80 columns cuts every value to a few characters (a session
    id becomes ``4d3b…``), which nobody can read; a pipe wants something a program can parse.
    """
    if not is_terminal:
        return OutputFormat.csv
    text = [[_cell(v) for v in r] for r in rows]
    if any("\n" in c for r in text for c in r):
        return OutputFormat.vertical
    widths = [max([len(c), *(len(r[i]) for r in text)]) for i, c in enumerate(columns)]
    # rich's default box: one space of padding each side and a rule between columns and at both ends.
    return OutputFormat.table if sum(widths) + 3 * len(widths) + 1 <= width else OutputFormat.vertical


def _cell(value: object) -> str:
    return "∅" if value is None else str(value)


def render(sql: str, schema: str = MART_SCHEMA) -> str:
    """Turn the dbt `ref`/`source` calls of an analysis into catalog names, drop a trailing `;`."""
    sql = _REF.sub(lambda m: f"{schema}.{m.group(1)}", sql)
    sql = _SOURCE.sub(lambda m: f"{m.group(1)}.{m.group(2)}", sql)
    if "{{" in sql or "{%" in sql:
        raise ValueError("the query still holds Jinja after ref()/source() were replaced; compile it with `dbt compile` first")
    return sql.strip().rstrip(";").strip()


def run(sql: str, limit: int | None = None) -> tuple[list[str], list[tuple]]:
    """Execute one statement on the catalog session (the SQL server's, unless embedded); return column names and rows."""
    from lakehouse.spark import get_spark

    spark = get_spark("lakehouse-sql", catalog=True)
    df = spark.sql(sql)
    if limit is not None:
        df = df.limit(limit)
    return df.columns, [tuple(row) for row in df.collect()]


def _print(columns: list[str], rows: list[tuple], fmt: OutputFormat) -> None:
    from rich.console import Console

    console = Console()
    if fmt is OutputFormat.auto:
        fmt = choose_format(columns, rows, console.width, console.is_terminal)
    if fmt is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt is OutputFormat.json:
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2))
    elif fmt is OutputFormat.vertical:
        console.print(vertical(columns, rows), markup=False, highlight=False, soft_wrap=True)
    else:
        from rich.table import Table

        table = Table(*columns, show_lines=False)
        for column in table.columns:
            column.overflow = "fold"  # wrap a long value rather than cut it to "…"
        for r in rows:
            table.add_row(*(_cell(v) for v in r))
        console.print(table)
    if fmt in (OutputFormat.table, OutputFormat.vertical):
        Console(stderr=True).print(f"[dim]{len(rows)} row(s)[/dim]")


def vertical(columns: list[str], rows: list[tuple]) -> str:
    """One block per row, a line per column (psql's expanded display): every value whole, at any width."""
    name_width = max((len(c) for c in columns), default=0)
    blocks = []
    for i, r in enumerate(rows, start=1):
        lines = [f"-[ row {i} ]" + "-" * max(0, name_width - 6)]
        lines += [f"{c.ljust(name_width)} | {_cell(v)}" for c, v in zip(columns, r, strict=True)]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def cli(
    query: Annotated[str | None, typer.Argument(help='SQL to run, e.g. "select * from analytics.fct_sessions limit 5".')] = None,
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="Read the SQL from this file (dbt ref()/source() are resolved).")
    ] = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="auto: a table if it fits the terminal, else one block per row (vertical), CSV when piped; or table, vertical, csv, json.",
        ),
    ] = OutputFormat.auto,
    limit: Annotated[int | None, typer.Option(help="Print at most this many rows.")] = None,
) -> None:
    """Run one SQL query on the lakehouse catalog (bronze.* and the dbt marts in analytics.*)."""
    if (query is None) == (file is None):
        raise typer.BadParameter("give either a QUERY or -f FILE")
    text = file.read_text() if file else query
    try:
        sql = render(text or "")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    from lakehouse.services import ServiceError

    try:
        columns, rows = run(sql, limit)
    except ServiceError as exc:  # no SQL server: the message says how to start it
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except Exception as exc:  # AnalysisException and friends: show Spark's message, not a JVM trace
        message = str(exc).split("\n")[0]
        typer.echo(f"query failed: {message}", err=True)
        raise typer.Exit(1) from exc
    _print(columns, rows, fmt)


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
