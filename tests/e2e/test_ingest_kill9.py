"""kill -9 of the ingest process mid-stream, three times, then a restart: nothing lost, nothing doubled."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lakehouse import config
from streaming import reconcile
from streaming.bronze import BronzePaths
from tests.support.kafka_helpers import create_topic, send_raw, synthetic_payloads
from tests.support.processes import kill9, start_module

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

N_EVENTS = 20_000


def _commits(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def test_three_kill9_and_restart_leave_each_record_exactly_once(spark, cfg, kafka, tmp_topic, tmp_path):
    create_topic(kafka, tmp_topic, partitions=2)
    # Produce while the ingest runs and dies, as in production.
    producer = threading.Thread(target=send_raw, args=(kafka, tmp_topic, synthetic_payloads(N_EVENTS, seed=7)))
    producer.start()
    bronze = BronzePaths.from_config(cfg).events
    rng = random.Random(3)
    log_file = tmp_path / "ingest.log"
    for _ in range(3):
        proc = start_module("streaming.ingest", ["--topic", tmp_topic, "--trigger-seconds", "1", "--max-offsets", "1500"], log_file)
        seen = _commits(bronze)
        deadline = time.monotonic() + 300
        while _commits(bronze) <= seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, f"ingest died on its own:\n{log_file.read_text()[-3000:]}"
        time.sleep(rng.uniform(0.0, 2.5))  # somewhere inside a later batch, or between its two writes
        kill9(proc)
    producer.join()

    final = subprocess.run(
        [sys.executable, "-m", "streaming.ingest", "--topic", tmp_topic, "--available-now"],
        cwd=config.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    reports = reconcile.reconcile(spark, cfg, tmp_topic)
    assert sum(r.kafka_records for r in reports) == N_EVENTS
    assert all(r.ok for r in reports), reports
    assert sum(r.quarantine for r in reports) == len(range(0, N_EVENTS, 97))
