"""A newcomer's first commands, exactly as the README gives them: a fresh clone, no variable set.

Why: every other test sets its own absolute ``LAKEHOUSE_DIR`` and ports, so CI stayed
green while ``make run`` failed on a fresh clone (dbt registered bronze at a relative
LOCATION, which Spark resolved under the warehouse folder). Here the committed tree is
cloned into an empty folder and run with the project's defaults: relative paths,
default ports, nothing from the developer's tree but the installed ``.venv`` and
``.deps`` (setup has its own checksums, so ``make run`` finds them done). Then a
second ``make run`` must reuse the first, and every README command and printed hint
listed in ``tests/support/readme_commands.py`` must work in that clone.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from lakehouse import pipeline
from tests.e2e.conftest import RUN_ARGS, RUN_TIMEOUT_S
from tests.support.newcomer import ok, sh
from tests.support.readme_commands import PROGRAM_HINTS, RUN_IN_CLONE

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_make_run_on_a_fresh_clone_builds_every_layer_and_scores_live(clone: Path, first_run: tuple[str, dict]) -> None:
    _, summary = first_run
    rec = summary["reconcile"]
    assert rec["bronze"] > 15_000 and rec["kafka"] == rec["bronze"] + rec["quarantine"] == summary["produced"]
    assert all(n > 0 for n in summary["layers"].values()), summary["layers"]
    assert summary["funnel"]["purchase"] > 0
    for task in ("purchase", "category"):
        model = summary["models"][task]
        assert model["trained"] and model["registered"], model
        assert model["split"]["rows_test"] > 0
    live = summary["live"]
    assert live["sessions"] > 0 and live["sessions_scored"] == live["sessions"] and live["prediction_rows"] >= live["sessions"]
    assert "generator" in summary["data"]
    # The relative default landed in the clone, and bronze is registered there, not under the warehouse folder.
    lake = clone / "lakehouse-data"
    assert (lake / "bronze" / "events" / "_delta_log").is_dir()
    ok(sh(clone, ".venv/bin/python -m lakehouse.services start sql"), "start the SQL server")  # the run stopped it
    detail = ok(sh(clone, '.venv/bin/python -m lakehouse.sql "describe detail bronze.events" --format json'), "describe detail")
    location = json.loads(detail[detail.index("[") :])[0]["location"]
    assert location.removeprefix("file:").rstrip("/") == str((lake / "bronze" / "events").resolve())


def test_a_second_make_run_reuses_what_the_first_did(clone: Path, first_run: tuple[str, dict]) -> None:
    """The README's promise: the generated file, the events in Kafka and the ingest checkpoint are reused.

    Training and live scoring, which a second run repeats as the first did, are left out
    (`--skip-train`) to keep CI short: what is reused comes before them.
    """
    out = ok(sh(clone, f'make run RUN_ARGS="{RUN_ARGS} --skip-train"', timeout=RUN_TIMEOUT_S), "make run (second)")
    again = json.loads((clone / "output" / "summary.json").read_text())
    assert "reusing" in out and "already in topic" in out
    assert again["reconcile"] == first_run[1]["reconcile"]  # nothing sent, ingested or counted twice
    assert again["layers"] == first_run[1]["layers"]
    assert again["timings_s"]["replay through Kafka"] < 5


def test_the_commands_the_summary_prints_work(clone: Path, first_run: tuple[str, dict]) -> None:
    out, _ = first_run
    for hint in pipeline.HINTS:
        assert hint in out, f"the summary no longer prints {hint!r}"
        command = hint.partition(": ")[2]
        printed = ok(sh(clone, command), command)
        assert printed.strip(), command
    funnel = ok(sh(clone, f'.venv/bin/python -m lakehouse.sql "{pipeline.FUNNEL_QUERY}" --format json'), "funnel query")
    rows = json.loads(funnel[funnel.index("[") :])
    assert sum(r["purchase_sessions"] for r in rows) == first_run[1]["funnel"]["purchase"]


# The README's commands in their order, then the printed advice, and the services stopped last.
IN_ORDER = list(
    dict.fromkeys(  # each command once, in its first place
        [
            *(c for c in RUN_IN_CLONE if c != "make services-stop"),
            *(c for c in PROGRAM_HINTS.values() if isinstance(c, str)),
            "make services-stop",
        ]
    )
)


@pytest.mark.parametrize("command", IN_ORDER)
def test_readme_commands_and_printed_advice_work_in_the_clone(clone: Path, first_run: tuple[str, dict], command: str) -> None:
    """In the order listed: `make services-start` first, `make services-stop` last."""
    ok(sh(clone, command), command)
    if command.startswith(".venv/bin/python -m lakehouse.figures"):
        out = shlex.split(command)[-1] if "--out" in command else "output/figures"
        assert any((clone / out).glob("*.png"))
