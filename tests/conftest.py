"""Shared fixtures: an isolated lakehouse folder, the real services, one Spark session.

The test run never touches a user's lakehouse or services: before anything reads
the configuration, ``LAKEHOUSE_DIR`` points at a fresh temporary folder and the
embedded services get ports of their own. Integration tests start the real Kafka,
FerretDB and MLflow through ``lakehouse.services`` (the same code users run) and
stop them at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_TEST_ENV = {
    "KAFKA_PORT": "29092",
    "KAFKA_CONTROLLER_PORT": "29093",
    "MONGO_PORT": "29018",
    "MLFLOW_PORT": "25000",
    "SQL_SERVER_THRIFT_PORT": "20000",
    "SQL_SERVER_CONNECT_PORT": "25002",
    "SQL_SERVER_UI_PORT": "24040",
    "SUPERSET_PORT": "28088",
    "SPARK_CLUSTER_MASTER_PORT": "27077",
    "SPARK_CLUSTER_UI_PORT": "28080",
    "SPARK_CLUSTER_WORKER_UI_PORT": "28081",
    # Three brokers each: 26092-26094 and controllers 26095-26097 (within one worker's step of 100).
    "KAFKA_CLUSTER_PORT": "26092",
    "KAFKA_CLUSTER_CONTROLLER_PORT": "26095",
    # The suite's in-process dbt runs (the `spark` fixture, dbt's `session` target) open the
    # Derby catalog themselves; tests of the SQL server use the `sql_server` fixture instead.
    "LAKEHOUSE_CATALOG": "embedded",
    "SPARK_DRIVER_MEMORY": "3g",
    "INGEST_TRIGGER_SECONDS": "1",
}
# `make test` runs two pytest-xdist workers. Each is a test session of its own, with its own
# lakehouse folder, services and Spark: its ports are shifted by this much per worker.
_WORKER_PORT_STEP = 100
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_TMP_ROOT = Path(tempfile.mkdtemp(prefix="lakehouse-tests-"))
os.environ["LAKEHOUSE_DIR"] = str(_TMP_ROOT / "lakehouse")
for _key, _value in _TEST_ENV.items():
    _value = os.environ.get(_key, _value)
    os.environ[_key] = str(int(_value) + _WORKER * _WORKER_PORT_STEP) if _key.endswith("_PORT") else _value
# Options for every JVM the tests start, through the variable each JVM reads at start.
# The newcomer's clone runs without them (tests/support/newcomer.py), so the whole job is
# also tested with the JVMs' and Spark's defaults.
_JVM_OPTIONS = "JAVA_TOOL_OPTIONS"
# The JVMs the tests start and stop (streaming jobs, brokers, pipeline runs) work on tiny
# data for seconds to minutes: most of their CPU goes to the C2 compiler's work, not to the
# code it would speed up, and the two workers share two cores. C1 alone compiles cheaply;
# behaviour is the same. The two that compute for a whole session, this process's Spark
# (the `spark` fixture, which in-process dbt reuses) and the `sql_server` fixture's, keep
# C2: C1 alone made them slower (`_full_jit`).
_C1_ONLY = "-XX:TieredStopAtLevel=1"
# Spark generates and compiles Java source for each projection, predicate and ordering a
# task builds outside whole-stage code, once per task: for Delta's nested log schema that
# was a quarter of the test JVMs' CPU samples on tiny tables (a JFR profile of the dbt
# incremental test). Interpreted, they compute the same rows (Spark tests both paths);
# whole-stage code generation stays on. A `spark.` system property reaches every Spark
# application's configuration (SparkConf reads them).
_INTERPRETED_PROJECTIONS = "-Dspark.sql.codegen.factoryMode=NO_CODEGEN"
os.environ.setdefault(_JVM_OPTIONS, f"{_C1_ONLY} {_INTERPRETED_PROJECTIONS}")
# In-process dbt runs write their manifest, compiled SQL and logs here, not into the shared
# checkout, where two workers' runs would overwrite each other's files.
os.environ.setdefault("DBT_TARGET_PATH", str(_TMP_ROOT / "dbt-target"))
os.environ.setdefault("DBT_LOG_PATH", str(_TMP_ROOT / "dbt-logs"))

# Test files that share one session fixture must run on one worker: the newcomer test and
# the notebook test share the clone and its first `make run` (tests/e2e/conftest.py).
_SHARED_FIXTURE_GROUPS = {"test_newcomer.py": "newcomer", "test_notebook.py": "newcomer"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under `make test`'s workers, a test file runs whole on one worker, so its module fixtures run once.

    xdist's own `loadfile` cannot put two files together, and its `loadgroup` marks are
    lost on this pytest (nodes no longer have the `_nodeid` it rewrites).
    """
    from xdist.scheduler import LoadScopeScheduling

    class _ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return _SHARED_FIXTURE_GROUPS.get(Path(path).name, path)

    config.option.loadscopereorder = False  # files go out in the order below, not by their number of tests
    return _ByFile(config, log)


def _run_order(item: pytest.Item) -> int:
    """The longest files first, so the two workers end together: the newcomer's, then end-to-end, integration, unit."""
    if item.path.name in _SHARED_FIXTURE_GROUPS:
        return 0
    return {"e2e": 1, "integration": 2}.get(item.path.parent.name, 3)


# The newcomer's commands that stop what the notebook needs up (Superset: its fixture's `make services-start` would start it again).
_STOPS = ("[.venv/bin/python -m lakehouse.services stop superset]", "[make services-stop]")


def _notebook_while_the_clone_serves(items: list[pytest.Item]) -> None:
    """The notebook's tests just before the first of the newcomer's commands that stops services.

    The README's commands before it have started the clone's services, so the notebook
    needs no start (and stop) of its own between the two files.
    """
    notebook = [i for i in items if i.path.name == "test_notebook.py"]
    rest = [i for i in items if i.path.name != "test_notebook.py"]
    stops = [k for k, i in enumerate(rest) if i.path.name == "test_newcomer.py" and i.name.endswith(_STOPS)]
    if notebook and stops:
        items[:] = rest[: stops[0]] + notebook + rest[stops[0] :]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_run_order)  # stable: a file's tests keep their order
    _notebook_while_the_clone_serves(items)


from lakehouse import config, services  # noqa: E402  (after the environment is set)

REPO_ROOT = config.REPO_ROOT
# Kept in the repository (provenance and terms in tests/data/README.md), so a bare clone can run the tests.
SAMPLE_CSV = REPO_ROOT / "tests" / "data" / "rees46-2019-Nov-first-682.csv"


@pytest.fixture(scope="session")
def cfg() -> config.Config:
    return config.load()


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The 683-row real REES46 sample (no header line)."""
    if not SAMPLE_CSV.exists():
        pytest.fail(f"reference sample missing: {SAMPLE_CSV}")
    return SAMPLE_CSV


def _service(name: str, cfg: config.Config) -> Iterator[services.Service | None]:
    svc = services.all_services(cfg).get(name)
    if svc is None:  # pointed at an external deployment by configuration
        yield None
        return
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def kafka(cfg: config.Config) -> Iterator[str]:
    """Bootstrap servers of a running broker (the embedded one unless configured)."""
    for _ in _service("kafka", cfg):
        yield cfg.kafka_bootstrap


@pytest.fixture(scope="session")
def mongo(cfg: config.Config) -> Iterator[str]:
    """URI of a running MongoDB-wire server (FerretDB unless configured)."""
    for _ in _service("mongo", cfg):
        yield cfg.mongo_uri


@pytest.fixture(scope="session")
def mlflow_uri(cfg: config.Config) -> Iterator[str]:
    """Tracking URI of a running MLflow server (the embedded one unless configured)."""
    for _ in _service("mlflow", cfg):
        os.environ["MLFLOW_TRACKING_URI_FOR_TESTS"] = cfg.mlflow_uri
        yield cfg.mlflow_uri


@contextlib.contextmanager
def _full_jit() -> Iterator[None]:
    """A JVM started within keeps the default JIT (see `_C1_ONLY`) and the other options; the variable is back after."""
    saved = os.environ.get(_JVM_OPTIONS)
    if saved is not None:
        os.environ[_JVM_OPTIONS] = " ".join(o for o in saved.split() if o != _C1_ONLY)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[_JVM_OPTIONS] = saved


@pytest.fixture(scope="session")
def spark(cfg: config.Config):
    """One Spark session (with the Derby catalog in the test lakehouse) for the run.

    dbt invoked in-process through dbtRunner reuses this same session.
    """
    from lakehouse.spark import get_spark

    with _full_jit():
        session = get_spark("tests", catalog=True, cfg=cfg)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sql_server() -> Iterator[config.Config]:
    """One lakehouse SQL server (Thrift + Spark Connect) for every test that needs it, stopped at the end.

    It owns the Derby catalog of a lakehouse folder of its own: the suite's in-process
    dbt runs (the ``spark`` fixture) hold the catalog of the main test lakehouse, and
    Derby admits one process per catalog. Tests reach it through ``on_sql_server``.
    """
    server_cfg = config.load({**os.environ, "LAKEHOUSE_DIR": str(_TMP_ROOT / "sql-server-lakehouse"), "LAKEHOUSE_CATALOG": "server"})
    svc = services.all_services(server_cfg)["sql"]
    with _full_jit():
        svc.start()
    try:
        yield server_cfg
    finally:
        from lakehouse.spark import close_connect_sessions

        close_connect_sessions()  # before the server goes: an open client retries it at exit
        svc.stop()


@pytest.fixture()
def on_sql_server(sql_server: config.Config, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    """Point this test's configuration, its dbt runs and its catalog sessions at the SQL server's lakehouse."""
    monkeypatch.setenv("LAKEHOUSE_DIR", str(sql_server.lakehouse_dir))
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "server")
    return sql_server


@pytest.fixture()
def tmp_topic(kafka: str, request: pytest.FixtureRequest) -> str:
    """A fresh topic name per test (created by whoever writes first)."""
    import re
    import uuid

    return re.sub(r"[^a-zA-Z0-9._-]", "-", f"t-{request.node.name}")[:180] + "-" + uuid.uuid4().hex[:6]
