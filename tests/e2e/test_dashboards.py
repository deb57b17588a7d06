"""The dashboards as a person sees them: Superset in headless Chromium, on marts built on the SQL server.

Small marts are built on the lakehouse SQL server (dbt over Thrift), Superset is started
by ``lakehouse.services`` (importing ``dashboards/*.yaml``), and a real browser logs in
and opens every dashboard (``tests/e2e/superset_browser.py``, run by Superset's venv,
where Selenium is). Every chart must render without an error, the funnel's headline
numbers must equal the marts', and the live dashboard, left open, must show the new
predictions of its own refresh. Screenshots go to ``output/dashboards/``.

The live dashboard watches the real streaming scorer: it scores a first slice of sessions
from Kafka before the page opens and a second slice while it is open. The scorer writes
the SQL server's lakehouse and logs in to the suite's Kafka, FerretDB and MLflow, so that
lakehouse is given the suite's credentials file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from lakehouse import config, credentials, dashboards, services
from streaming.events import QUARANTINE_COLUMNS
from tests.integration.dbt_support import dbt, ensure_quarantine, synthetic_events, write_bronze
from tests.integration.test_scorer_helpers import payloads, register_models, wait_for
from tests.support.kafka_helpers import create_topic, send_raw
from tests.support.processes import start_module, terminate

pytestmark = pytest.mark.e2e

MARTS = ("+fct_funnel_daily", "+fct_funnel_category_daily", "+fct_funnel_brand_daily", "+fct_product_funnel")
BROWSER = config.REPO_ROOT / "tests" / "e2e" / "superset_browser.py"
SCREENSHOTS = config.REPO_ROOT / "output" / "dashboards"
WATCH_S = 120  # at most: the scorer's batch, then the live dashboard's refresh (every 10 s), on a busy machine


def _require_chromium() -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("headless Chromium is needed: `apt-get install chromium chromium-driver` (Debian's browser and its driver)")


def _chart_counts() -> dict[str, int]:
    _, boards = dashboards.load_specs()
    return {b["slug"]: sum(len(row) for row in b["rows"]) for b in boards}


def _predictions(spark) -> int:
    return spark.sql("select count(*) n from gold.predictions").first().n


def _settled(spark, after: int) -> int:
    """The predictions count once the scorer has written more than ``after`` rows and then nothing new for a while."""
    last = wait_for(lambda: (n := _predictions(spark)) > after and n, timeout=300, what="the scorer's predictions")
    while True:
        time.sleep(6)  # several of the scorer's 1-second triggers
        now = _predictions(spark)
        if now == last:
            return now
        last = now


def _live_slices(n_users: int = 24) -> tuple[list, list]:
    """Kafka payloads of two halves of one day's sessions: no session in both."""
    events = synthetic_events(n_users=n_users, days=1, seed=21, start="2019-11-14")
    events = events[events["user_session"].notna()]
    sessions = sorted(events["user_session"].unique())
    first = events["user_session"].isin(sessions[: len(sessions) // 2])
    return payloads(events[first]), payloads(events[~first])


def _insert_quarantine(spark, n: int) -> None:
    """``n`` rejected records, as the ingest writes them (bronze.quarantine is registered by dbt's on-run-start hook)."""
    values = {
        "raw_payload": "'{}'",
        "payload_bytes": "2",
        "reason": "'invalid_json'",
        "source": "'kafka'",
        "ingested_at": "current_timestamp()",
    }
    values["ingested_date"] = "current_date()"
    select = ", ".join(f"cast({values.get(c.name, 'null')} as {c.sql_type}) as {c.name}" for c in QUARANTINE_COLUMNS)
    spark.sql(f"insert into bronze.quarantine select {select} from range({n})")


def _number(text: str) -> str:
    """A big-number chart's figure: the last line of its text (the first is its title)."""
    return text.strip().splitlines()[-1]


def test_dashboards_render_and_show_the_marts(
    cfg: config.Config, kafka: str, mongo: str, mlflow_uri: str, on_sql_server: config.Config, tmp_path, monkeypatch
):
    from lakehouse.spark import get_spark

    _require_chromium()
    credentials.owner_only_dir(on_sql_server.credentials_file.parent)
    shutil.copy2(cfg.credentials_file, on_sql_server.credentials_file)  # before Superset takes its login from it
    cfg = on_sql_server
    spark = get_spark("test-dashboards", catalog=True, cfg=cfg)
    write_bronze(spark, synthetic_events(n_users=40, days=3), mode="overwrite", cfg=cfg)
    ensure_quarantine(spark, cfg)
    dbt("seed")
    dbt("run", "--select", *MARTS, "--full-refresh")
    dbt("test", "--select", "fct_funnel_daily,test_name:unique")  # one test: its result is on the Data quality dashboard
    _insert_quarantine(spark, 3)

    register_models(mlflow_uri, synthetic_events(n_users=30, days=1, seed=1), seed=0)
    topic = f"dashboards-live-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic)
    before, during = _live_slices()
    for key, value in {"SCORER_TRIGGER_SECONDS": "1", "SCORER_STARTING_OFFSETS": "earliest"}.items():
        monkeypatch.setenv(key, value)
    superset = services.all_services(cfg)["superset"]
    superset.start()  # registers gold.predictions and imports the dashboards
    scorer = start_module("streaming.scorer", ["--topic", topic], tmp_path / "scorer.log")
    try:
        send_raw(kafka, topic, before)
        first = _settled(spark, 0)
        counts = _chart_counts()
        order = [s for s in counts if s != "live-scoring"] + ["live-scoring"]  # the live one last: it stays open
        browser = subprocess.Popen(
            [str(superset.venv / "bin" / "python"), str(BROWSER), dashboards.url(cfg), str(cfg.credentials_file),
             str(SCREENSHOTS), *(f"{s}:{counts[s]}" for s in order), "--watch", f"live-scoring:Predictions:{WATCH_S}:>{first}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        errors: list[str] = []
        for line in browser.stderr:  # type: ignore[union-attr]
            errors.append(line)
            if line.startswith("WATCHING"):
                send_raw(kafka, topic, during)  # while the page is open: only its own refresh can show what the scorer adds
                break
        drain = threading.Thread(target=lambda: errors.extend(browser.stderr))  # type: ignore[arg-type]
        drain.start()  # the rest of stderr, so the browser never blocks on a full pipe while stdout is read
        out = browser.stdout.read()  # type: ignore[union-attr]
        browser.wait(timeout=60)
        drain.join()
        final = _settled(spark, first)
    finally:
        terminate(scorer)
        superset.stop()
    assert browser.returncode == 0, "".join(errors)[-3000:]
    report = json.loads(out)

    for slug, expected in counts.items():
        shown = report[slug]
        assert len(shown) == expected, f"{slug}: {len(shown)} of {expected} charts rendered: {sorted(shown)}"
        broken = {name: c["text"][:300] for name, c in shown.items() if c["error"] or not c["rendered"]}
        assert not broken, f"{slug}: charts with an error or not rendered: {broken}"
        assert (SCREENSHOTS / f"{slug}.png").stat().st_size > 20_000

    funnel = report["funnel"]
    marts = spark.sql(
        "select sum(sessions) s, sum(view_sessions) v, sum(cart_sessions) c, sum(purchase_sessions) p, "
        "sum(cart_abandoned_sessions) a, sum(purchase_sessions_without_cart) w from analytics.fct_funnel_daily"
    ).first()
    assert _number(funnel["Sessions"]["text"]) == f"{marts.s:,}"
    assert _number(funnel["View sessions"]["text"]) == f"{marts.v:,}"
    assert _number(funnel["Cart sessions"]["text"]) == f"{marts.c:,}"
    assert _number(funnel["Purchase sessions"]["text"]) == f"{marts.p:,}"
    assert _number(funnel["Cart abandonment"]["text"]) == f"{marts.a / (marts.a + marts.p - marts.w):.1%}"
    categories = spark.sql("select category_top from analytics.fct_funnel_category_daily group by 1").toPandas()["category_top"]
    assert all(c in funnel["Funnel by top-level category"]["text"] for c in categories)

    quality = report["data-quality"]
    assert _number(quality["Quarantined records"]["text"]) == "3"
    assert "unique_fct_funnel_daily_session_date" in quality["Last dbt tests"]["text"]
    assert _number(quality["dbt tests not passing"]["text"]) == "0"

    # what the Predictions chart showed over time (a refresh briefly shows its title alone)
    live = [int(n.replace(",", "")) for n in (_number(text) for text in report["_watch"]) if n.replace(",", "").isdigit()]
    assert live[0] == first < live[-1] <= final, f"the live dashboard showed {live}: not {first} growing towards {final}"
