"""Erasure helpers that need no JVM: the register watch, the event filter, CSV rewriting."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from lakehouse import config
from streaming import erasure


def test_drop_erased_keeps_other_users_and_activity_after_the_erasure() -> None:
    at = datetime(2019, 11, 2, 12, 0, 0)
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 1],
            "event_time": pd.to_datetime(
                ["2019-11-01 10:00", "2019-11-02 12:00", "2019-11-01 10:00", "2019-11-02 12:00:01"], format="ISO8601"
            ),
        }
    )
    kept = erasure.drop_erased(frame, {1: at})
    assert kept.index.tolist() == [2, 3]  # the erasure instant itself is still erased
    assert erasure.drop_erased(frame, {}) is frame


def test_watch_rereads_the_register_only_after_a_commit(tmp_path) -> None:
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    watch = erasure.ErasureWatch(cfg)
    assert watch.get() == {}
    erasure.record_erasure(cfg, 7, datetime(2020, 1, 1), retain_hours=1)
    assert watch.get() == {7: datetime(2020, 1, 1)}
    erasure.record_erasure(cfg, 8, datetime(2020, 1, 2), retain_hours=1)
    erasure.record_erasure(cfg, 7, datetime(2020, 1, 3), retain_hours=1)
    assert watch.get() == {7: datetime(2020, 1, 3), 8: datetime(2020, 1, 2)}  # the latest erasure of a user counts
    assert [r["user_id"] for r in erasure.erasures(cfg)] == [7, 8, 7]


def test_csv_rows_of_the_user_go_and_files_without_users_stay_untouched(tmp_path) -> None:
    rows = tmp_path / "predictions.csv"
    rows.write_text("session_id,user_id,p\na,10,0.5\nb,11,0.25\nc,10,0.75\n")
    other = tmp_path / "metrics.csv"
    other.write_text("scorer,auc\nmodel,10\n")
    receipt = erasure.erase_files(tmp_path, "files", 10)
    assert (receipt.found, receipt.removed) == (2, 2)
    assert rows.read_text().splitlines() == ["session_id,user_id,p", "b,11,0.25"]
    assert other.read_text() == "scorer,auc\nmodel,10\n"
    assert erasure.erase_files(tmp_path / "missing", "files", 10).found == 0
