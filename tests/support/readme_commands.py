"""Every shell command the README shows and every hint the program prints: run by a test, or not, and why.

``tests/unit/test_readme_commands.py`` keeps this list and the README in step (a new or
renamed command must be added here); ``tests/e2e/test_newcomer.py`` runs ``RUN_IN_CLONE``
in a fresh clone after ``make run``, in this order, each as a newcomer would type it.
"""

from __future__ import annotations

import re
from pathlib import Path

# Run, in this order, in the clone that `make run` built (services started first by the list itself).
RUN_IN_CLONE: tuple[str, ...] = (
    "make services-start",
    ".venv/bin/python -m lakehouse.services start sql",
    ".venv/bin/python -m lakehouse.services status sql",
    ".venv/bin/python -m streaming.reconcile",
    ".venv/bin/dbt seed",
    ".venv/bin/dbt run",
    ".venv/bin/dbt test",
    ".venv/bin/dbt source freshness",
    ".venv/bin/dbt show -s conversion_by_day",
    ".venv/bin/dbt show --inline \"select * from {{ ref('fct_funnel_daily') }}\" --limit 20",
    '.venv/bin/python -m lakehouse.sql "select session_date, sessions, purchase_sessions, view_to_purchase_rate '
    'from analytics.fct_funnel_daily order by session_date"',
    ".venv/bin/python -m lakehouse.sql -f dbt_project/analyses/conversion_by_day.sql",
    ".venv/bin/python -m lakehouse.sql -f dbt_project/analyses/dropoff_by_category.sql --format csv",
    ".venv/bin/python -m lakehouse.sql -f dbt_project/analyses/top_abandoned_products.sql --format json",
    '.venv/bin/python -m lakehouse.sql_server beeline -e "show tables in analytics"',
    ".venv/bin/python -m lakehouse.figures",
    ".venv/bin/python -m lakehouse.figures --out output/figures",
    ".venv/bin/python -m streaming.session_store",
    ".venv/bin/python -m streaming.session_admin export --format jsonl -o sessions.jsonl",
    ".venv/bin/python -m streaming.session_admin history 512",
    "make dashboards",
    ".venv/bin/python -m lakehouse.dashboards login",
    ".venv/bin/python -m lakehouse.services stop superset",
    "make services-stop",
)

# Shown in the README, deliberately not run by the newcomer test, with the reason.
NOT_RUN: dict[str, str] = {
    "make run": "the newcomer test runs it twice, with RUN_ARGS to keep it small",
    "make test": "this is the test suite itself (.ci/run calls it)",
    ".venv/bin/python -m streaming.generate --events 1000000 --days 14 --out data/events.csv.gz": (
        "a million events take minutes; make run generates through the same function"
    ),
    ".venv/bin/python -m streaming.producer data/events.csv.gz --rate 20000": "needs the file above; make run replays through produce_file",
    ".venv/bin/python -m streaming.ingest": "runs until Ctrl-C; tests/e2e/test_ingest_kill9.py runs it as a process and kills it",
    ".venv/bin/python -m streaming.backfill 2019-Nov.csv.gz": "REES46's 9 GB month file is not shipped; test_ingest backfills files",
    ".venv/bin/python -m ml.train --task purchase": "make run trains both tasks through ml.train.train; test_ml_train_server runs it",
    ".venv/bin/dbt run --full-refresh": "rebuilds what dbt run built; test_dbt_incremental compares the two",
    ".venv/bin/dbt docs generate": "writes docs only; about a minute of CI for no check beyond its exit code",
    ".venv/bin/python -m bench.bench_dbt --events 1000000 --events 10000000": "a benchmark of an hour; its figures are in the README",
    ".venv/bin/python -m bench.bench_dbt --events 10000000 --catalog server": "a benchmark of half an hour; its figures are in the README",
    ".venv/bin/python -m bench.bench_dbt --fixed-cost --events 100000": "a benchmark of minutes; its figures are in the README",
    ".venv/bin/python -m bench.dbt_lab --events 10000000 --runs 3": "a lab of half an hour; its figures are in the README",
    ".venv/bin/python -m streaming.scorer": "runs until Ctrl-C; make run starts it as a process for the live slice",
    ".venv/bin/python -m bench.bench_scorer --rates 500,2000 --seconds 120": "a benchmark of minutes; its figures are in the README",
    ".venv/bin/python -m bench.bench_scorer --rates 2000 --seconds 120 --cold-start": "a benchmark of minutes; its figures are in the README",
    ".venv/bin/python -m streaming.session_admin delete-user 512": "erasure; test_erasure erases a user and searches every store",
    ".venv/bin/python -m streaming.session_admin erasures": "test_erasure (integration) runs it after an erasure",
    ".venv/bin/python -m streaming.session_admin vacuum": "test_erasure (integration) runs it after an erasure",
    ".venv/bin/python -m streaming.session_admin reprocess --start 2019-11-01 --end 2019-11-02": "test_scorer_admin runs reprocess",
    ".venv/bin/python -m streaming.session_admin reprocess --from-export sessions.jsonl": "test_scorer_admin runs reprocess from an export",
    "make cluster-start": "test_spark_cluster (e2e) starts the cluster through the same lakehouse.cluster code, on test ports",
    "export SPARK_MASTER=spark://127.0.0.1:7077": "test_spark_cluster (e2e) sets SPARK_MASTER to its cluster's URL for each job",
    ".venv/bin/python -m lakehouse.services stop sql": "test_spark_cluster (e2e) stops its SQL server through the same Service",
    ".venv/bin/python -m streaming.ingest --available-now": "test_spark_cluster (e2e) and test_ingest_kill9 (e2e) run it",
    "make cluster-status": "prints the master's status; test_spark_cluster (e2e) reads the same /json and REST pages",
    "make cluster-stop": "test_spark_cluster (e2e) stops the cluster through the same lakehouse.cluster code",
    ".venv/bin/python -m bench.bench_cluster --events 200000": "a benchmark of minutes; its figures are in the README",
    ".venv/bin/python -m lakehouse.cluster start kafka": "test_kafka_cluster (e2e) starts the brokers through the same lakehouse.cluster code",
    "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194": (
        "test_kafka_cluster (e2e) sets KAFKA_BOOTSTRAP_SERVERS to its brokers for the producer and the ingest"
    ),
    ".venv/bin/python -m lakehouse.services stop kafka": "test_services stops a broker through the same Service code",
    ".venv/bin/python -m lakehouse.cluster status kafka": "prints the brokers' PID files' state; test_kafka_cluster (e2e) reads the same PIDs",
    ".venv/bin/python -m lakehouse.cluster stop kafka": "test_kafka_cluster (e2e) stops the brokers through the same lakehouse.cluster code",
}

# Commands the programs print as advice (in errors and summaries), as printed, and how the
# newcomer test runs each in the clone (None: not run, the reason after it).
PROGRAM_HINTS: dict[str, str | tuple[None, str]] = {
    "make setup": "make setup",
    "python -m lakehouse.config": ".venv/bin/python -m lakehouse.config",
    "python -m lakehouse.services start mlflow": ".venv/bin/python -m lakehouse.services start mlflow",
    "python -m lakehouse.services start sql": ".venv/bin/python -m lakehouse.services start sql",
    "make cluster-start": (None, "lakehouse.cluster status's advice; test_spark_cluster (e2e) starts the cluster with its code"),
    "python -m lakehouse.cluster start": (
        None,
        "named in the cluster settings' help; test_spark_cluster (e2e) starts the cluster with its code",
    ),
    "python -m lakehouse.services stop sql": (
        None,
        "lakehouse.cluster start's advice; test_spark_cluster (e2e) stops a SQL server the same way",
    ),
    "python -m lakehouse.services stop kafka": (
        None,
        "lakehouse.cluster start's advice (frees the unused embedded broker); test_services stops a broker through the same Service",
    ),
    "make services-start": "make services-start",
    "make superset": "make superset",
    "make dashboards": "make dashboards",
    "dbt run": ".venv/bin/dbt run",
    "dbt run --select {spec.dbt_select}": ".venv/bin/dbt run --select +fct_purchase_intent_features",
    "dbt compile": ".venv/bin/dbt compile",
    "python -m streaming.session_admin vacuum": (None, "the erasure receipt's advice; test_erasure (integration) runs it"),
    "dbt {' '.join(args)}": (None, "names the dbt command that just failed in the pipeline, not advice"),
}

_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
# A command in single backticks inside a string literal of the code: advice a program prints.
_HINT = re.compile(r"[\"'][^\"']*?(?<!`)`((?:python -m|make|dbt) [^`]*)`(?!`)")


def printed_hints(sources: list[Path]) -> set[str]:
    """The backticked commands in the string literals of these Python files."""
    lines = (line for path in sources for line in path.read_text(encoding="utf-8").splitlines())
    return {m.group(1) for line in lines if not line.lstrip().startswith('"""') for m in _HINT.finditer(line)}


def readme_commands(readme: Path) -> list[str]:
    """The commands of the README's bash blocks: comments stripped, `a && b` split, blank lines dropped."""
    commands = []
    for block in _BLOCK.findall(readme.read_text(encoding="utf-8")):
        for line in block.splitlines():
            line = _strip_comment(line).strip()
            commands += [part.strip() for part in line.split(" && ") if part.strip()]
    return commands


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` inside quotes stays)."""
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line
