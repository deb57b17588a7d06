"""kill -9 of the ingest process mid-stream, three times, then a restart: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lakehouse import config
from streaming import reconcile
from streaming.bronze import BronzePaths
from tests.support.kafka_helpers import create_topic, send_raw

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

N_EVENTS = 20_000


def _payloads(n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        if i % 97 == 0:  # a steady trickle of bad records
            yield b"bad", b'{"event_type": "view", "oops": '
            continue
        rec = {
            "event_time": f"2019-11-0{1 + i % 7} {i % 24:02d}:{i % 60:02d}:00 UTC",
            "event_type": rng.choice(["view"] * 20 + ["cart", "purchase"]),
            "product_id": rng.randint(1, 5000),
            "category_id": 2053013555631882655,
            "category_code": "electronics.smartphone",
            "brand": "samsung",
            "price": round(rng.uniform(1, 900), 2),
            "user_id": rng.randint(1, 3000),
            "user_session": f"s-{i // 5}",
        }
        yield f"s-{i // 5}".encode(), json.dumps(rec).encode()


def _commits(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def _start_ingest(topic: str, log_file: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streaming.ingest", "--topic", topic, "--trigger-seconds", "1", "--max-offsets", "1500"]
    return subprocess.Popen(cmd, cwd=config.REPO_ROOT, stdout=open(log_file, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the JVM child too, as a crash would
    proc.wait()


def test_three_kill9_and_restart_leave_each_record_exactly_once(spark, cfg, kafka, tmp_topic, tmp_path):
    create_topic(kafka, tmp_topic, partitions=2)
    # Produce while the ingest runs and dies, as in production.
    producer = threading.Thread(target=send_raw, args=(kafka, tmp_topic, _payloads(N_EVENTS, seed=7)))
    producer.start()
    bronze = BronzePaths.from_config(cfg).events
    rng = random.Random(3)
    log_file = tmp_path / "ingest.log"
    for _ in range(3):
        proc = _start_ingest(tmp_topic, log_file)
        seen = _commits(bronze)
        deadline = time.monotonic() + 300
        while _commits(bronze) <= seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, f"ingest died on its own:\n{log_file.read_text()[-3000:]}"
        time.sleep(rng.uniform(0.0, 2.5))  # somewhere inside a later batch, or between its two writes
        _kill9(proc)
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
