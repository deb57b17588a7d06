"""A user's own real file, as real files are: `python -m lakehouse.pipeline --input FILE`.

The 683-row REES46 sample with a header, CR LF line ends and its last line cut short
(8 of 9 fields, no line end), as a download or a sampling script leaves it. The run
must go on: the clean rows make the marts, which must equal an independent pandas
computation on those rows; the cut line is in quarantine with its file and line; and a
few minutes of a shop are too little to train on, which the run must say, not crash on.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from lakehouse import config
from streaming.events import CSV_COLUMNS

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# A lakehouse and services of its own: the pipeline's marts must hold this file's rows only.
_OWN_PORTS = {"KAFKA_PORT": "39092", "KAFKA_CONTROLLER_PORT": "39093", "MONGO_PORT": "39018", "MLFLOW_PORT": "35000"}


def dirty_sample(sample_csv: Path, path: Path) -> tuple[Path, list[list[str]]]:
    """Write the dirty copy; return it and the clean rows it still holds."""
    lines = sample_csv.read_text(encoding="utf-8").splitlines()
    body = [",".join(CSV_COLUMNS), *lines[:-1], lines[-1].rsplit(",", 1)[0]]
    path.write_bytes("\r\n".join(body).encode("utf-8"))
    return path, list(csv.reader(lines[:-1]))


def expected_funnel(rows: list[list[str]]) -> dict[str, object]:
    """fct_funnel_daily's headline figures, computed here from the clean rows with pandas (one day in the sample)."""
    events = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    by_session = events.groupby("user_session")["event_type"]
    purchases = events[events["event_type"] == "purchase"]
    return {
        "sessions": by_session.ngroups,
        "view_sessions": int(by_session.apply(lambda t: t.isin(["view", "cart", "purchase"]).any()).sum()),
        "cart_sessions": int(by_session.apply(lambda t: t.isin(["cart", "purchase"]).any()).sum()),
        "purchase_sessions": int(by_session.apply(lambda t: (t == "purchase").any()).sum()),
        "purchases": len(purchases),
        "revenue": sum(Decimal(p) for p in purchases["price"]),
        "bounce_sessions": int((by_session.size() == 1).sum()),
    }


@pytest.fixture(scope="module")
def dirty_run(sample_csv: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("dirty-input")
    path, clean = dirty_sample(sample_csv, work / "rees46-sample-dirty.csv")
    env = {**os.environ, **_OWN_PORTS, "LAKEHOUSE_DIR": str(work / "lakehouse")}
    output = work / "output"
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.pipeline", "--input", str(path), "--output", str(output)],
        cwd=config.REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-8000:]
    yield path, clean, env, proc.stdout, json.loads((output / "summary.json").read_text()), output


def _sql(env: dict[str, str], query: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.sql", query, "--format", "json"],
        cwd=config.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_the_marts_equal_an_independent_computation_on_the_clean_rows(dirty_run) -> None:
    _, clean, env, _, summary, _ = dirty_run
    assert summary["reconcile"] == {"kafka": 683, "bronze": 682, "quarantine": 1}
    [day] = _sql(env, "select * from analytics.fct_funnel_daily")
    got = {k: day[k] for k in expected_funnel(clean)}
    got["revenue"] = Decimal(str(got["revenue"]))
    assert got == expected_funnel(clean)
    assert _sql(env, "select count(*) n from analytics.stg_bronze__events")[0]["n"] == len(clean)


def test_the_truncated_line_is_in_quarantine_with_its_file_and_line(dirty_run) -> None:
    path, _, env, out, summary, _ = dirty_run
    [row] = _sql(env, "select reason, reason_detail, source_file, source_line, raw_payload from bronze.quarantine")
    assert row["reason"] == "malformed_csv" and row["reason_detail"] == "expected 9 fields, found 8"
    assert (row["source_file"], row["source_line"]) == (str(path.resolve()), 684)  # the header is line 1
    assert row["raw_payload"] == path.read_bytes().split(b"\r\n")[-1].decode()
    assert summary["bad_lines"] == 1 and "1 line(s) of rees46-sample-dirty.csv hold no readable event" in out


def test_too_little_data_to_train_is_said_plainly_and_the_rest_of_the_run_stands(dirty_run) -> None:
    _, _, _, out, summary, output = dirty_run
    purchase = summary["models"]["purchase"]  # two buying sessions in five minutes
    assert purchase["trained"] is False and "Use more data" in purchase["why"], purchase
    category = summary["models"]["category"]  # trained or not, the run says which split or why not
    assert ("Use more data" in category["why"]) if not category["trained"] else category["split"]["split_mode"] == "time"
    if category["trained"]:
        assert category["registered"].startswith("category_top3_input ")  # off the name the live scorer serves
    assert "live scoring skipped" in out and "live" not in summary
    assert summary["layers"]["fct_sessions"] == 240
    assert {p.name for p in (output / "figures").glob("*.png")} >= {"funnel.png"}
    assert summary["data"] == "your file rees46-sample-dirty.csv"
