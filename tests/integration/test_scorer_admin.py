"""Session store commands on the real FerretDB, Delta and MLflow: reprocess -> export -> history -> delete -> reprocess (range, file).

Bronze gets a few days of events; ``reprocess`` scores their sessions with a chosen
model version (writing prediction rows and documents), a second run leaves the same
state; export streams them as JSON Lines and CSV; deleting a user removes their
documents, prediction rows and bronze rows (tests/integration/test_erasure.py searches every store); bad
user ids are refused with a clear message and never reach a query.
"""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from streaming import session_admin
from streaming.erasure import erase_user
from streaming.predictions import predictions_path
from streaming.session_store import COLLECTION, connect
from tests.integration.dbt_support import synthetic_events, write_bronze
from tests.integration.test_scorer_helpers import register_models

pytestmark = pytest.mark.integration


def test_reprocess_export_delete_round_trip(spark, cfg, mongo, mlflow_uri, tmp_path) -> None:
    from datetime import datetime

    events = synthetic_events(n_users=20, days=2, seed=21, start="2019-11-20")
    events["user_id"] = events["user_id"] + 7_000_000  # users no other test writes
    ours = sorted(int(u) for u in events["user_id"].unique())
    write_bronze(spark, events, mode="overwrite", cfg=cfg)
    versions = register_models(mlflow_uri, events, seed=1, promote=False)
    coll = connect(mongo)[str(cfg["MONGO_DB"])][COLLECTION]
    start, end = datetime(2019, 11, 20), datetime(2019, 11, 22)

    first = session_admin.reprocess_range(spark, cfg, start, end, versions)
    again = session_admin.reprocess_range(spark, cfg, start, end, versions)
    assert first == again and first["sessions"] > 10
    path = str(predictions_path(cfg))
    preds = spark.read.format("delta").load(path).filter("source = 'reprocess'").toPandas()
    preds = preds[preds.user_id.isin(ours)]
    assert len(preds) == first["sessions"] and not preds.session_id.duplicated().any()  # replaced, not appended
    assert set(preds[~preds.converted.astype(bool)].purchase_model_version) == {versions["purchase"]}  # a conversion has no score

    out = tmp_path / "all.jsonl"
    with open(out, "w") as fh:
        n = session_admin.export_sessions(coll, {"user_id": {"$in": ours}}, fh, "jsonl", progress=False)
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert n == len(docs) == first["sessions"]
    victim = int(docs[0]["user_id"])
    with open(tmp_path / "u.csv", "w", newline="") as fh:
        n_user = session_admin.export_sessions(coll, session_admin.session_filter(victim, None, None), fh, "csv", progress=False)
    rows = list(csv.DictReader((tmp_path / "u.csv").read_text().splitlines()))
    assert len(rows) == n_user >= 1 and {r["user_id"] for r in rows} == {str(victim)}
    assert len(session_admin.user_history(coll, victim)) == n_user

    receipts = {r.store: r for r in erase_user(spark, cfg, victim, retain_hours=0, output_dir=tmp_path / "output")}
    assert receipts["MongoDB sessions"].removed == n_user
    assert receipts["predictions"].removed == (preds.user_id == victim).sum()
    assert receipts["bronze events (now quarantine tombstones)"].removed == (events.user_id == victim).sum()
    assert coll.count_documents({"user_id": victim}) == 0
    for p in (path, str(cfg.table_path("bronze", "events"))):
        assert spark.read.format("delta").load(p).filter(f"user_id = {victim}").count() == 0

    after = session_admin.reprocess_range(spark, cfg, start, end, versions)
    assert after["sessions"] == first["sessions"] - n_user  # the erased user does not come back

    # reprocess from the export file: the same sessions, minus the erased user's, which are reported missing
    assert session_admin.session_ids_from_export(tmp_path / "u.csv") == {r["session_id"] for r in rows}
    from_file = session_admin.reprocess_export(spark, cfg, out, versions)
    assert from_file == {**after, "missing": n_user}
    preds = spark.read.format("delta").load(path).filter("source = 'reprocess'").toPandas()
    preds = preds[preds.user_id.isin(ours)]
    assert len(preds) == after["sessions"] and not preds.session_id.duplicated().any()


@pytest.mark.parametrize("bad", ['{"$gt": 0}', "1; drop", "-1", "abc"])
def test_commands_reject_bad_user_ids_clearly(bad: str) -> None:
    runner = CliRunner()
    for args in (["history", "--", bad], ["delete-user", "--yes", "--", bad], ["export", "--user", bad]):
        result = runner.invoke(session_admin.app, args)
        assert result.exit_code == 2, result.output
        assert "user id must be a positive integer" in result.output
