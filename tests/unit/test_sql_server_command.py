"""The SQL server runs with the lakehouse's one Spark configuration, on loopback only, and only when asked for."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lakehouse import config, services
from lakehouse.spark import spark_conf
from lakehouse.sql_server import CONNECT_PLUGIN, STATEMENT_THREADS, THRIFT_SERVER_CLASS, SqlServer, classpath_key, server_conf


def _cfg(tmp_path: Path, **extra: str) -> config.Config:
    return config.load(
        {"LAKEHOUSE_DIR": str(tmp_path / "lake"), "SQL_SERVER_THRIFT_PORT": "43100", "SQL_SERVER_CONNECT_PORT": "43101", **extra}
    )


def test_the_server_keeps_every_lakehouse_setting(tmp_path: Path):
    cfg = _cfg(tmp_path)
    conf = server_conf(cfg)
    lakehouse = spark_conf(cfg, catalog=True)
    changed = {k for k, v in lakehouse.items() if conf[k] != v}
    assert changed == {"spark.ui.enabled", "spark.driver.extraJavaOptions"}  # its UI on, its own log settings
    assert conf["spark.driver.extraJavaOptions"].startswith(lakehouse["spark.driver.extraJavaOptions"])
    assert conf["spark.sql.catalogImplementation"] == "hive"


def test_the_ui_keeps_a_bounded_stage_history_that_a_benchmark_can_raise(tmp_path: Path):
    assert server_conf(_cfg(tmp_path))["spark.ui.retainedStages"] == "50"
    assert server_conf(_cfg(tmp_path, SQL_SERVER_UI_RETAINED_STAGES="5000"))["spark.ui.retainedStages"] == "5000"


def test_both_endpoints_bind_to_loopback(tmp_path: Path):
    cfg = _cfg(tmp_path)
    command = SqlServer("sql", 43100, cfg).command()
    assert command[command.index("--class") + 1] == THRIFT_SERVER_CLASS
    pairs = dict(arg.split("=", 1) for arg in command if "=" in arg)
    assert pairs["hive.server2.thrift.bind.host"] == "127.0.0.1"
    assert pairs["hive.server2.thrift.port"] == "43100"
    assert pairs["spark.plugins"] == CONNECT_PLUGIN
    assert pairs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert pairs["spark.connect.grpc.binding.port"] == "43101"
    assert SqlServer("sql", 43100, cfg).environment()["SPARK_LOCAL_IP"] == "127.0.0.1"


def test_statement_threads_are_kept_between_statements(tmp_path: Path):
    """Each new statement thread opens its own metastore connection: the pool keeps its threads."""
    pairs = dict(arg.split("=", 1) for arg in SqlServer("sql", 43100, _cfg(tmp_path)).command() if "=" in arg)
    assert int(pairs["hive.server2.async.exec.threads"]) == STATEMENT_THREADS >= 2 * config.load({})["DBT_THREADS"]
    assert int(pairs["hive.server2.async.exec.keepalive.time"]) >= 24 * 3600


def test_compiled_code_is_cached_for_a_whole_run_and_wide_plans_are_compiled(tmp_path: Path):
    conf = server_conf(_cfg(tmp_path))
    assert int(conf["spark.sql.codegen.cache.maxEntries"]) > 100  # Spark's default, a fraction of one dbt run's classes
    assert int(conf["spark.sql.codegen.maxFields"]) > 100  # a Delta log's actions have more fields than the default


def test_the_server_is_a_service_unless_the_catalog_is_embedded(tmp_path: Path):
    assert "sql" in services.all_services(_cfg(tmp_path))
    assert "sql" not in services.all_services(_cfg(tmp_path, LAKEHOUSE_CATALOG="embedded"))


def _archiving_server(tmp_path: Path) -> SqlServer:
    """A server whose class archive lives in a folder of the test's own (no JVM is started)."""
    server = SqlServer("sql", 43100, _cfg(tmp_path, LAKEHOUSE_DEPS_DIR=str(tmp_path / "deps")))
    server.home.mkdir(parents=True)
    return server


def _java_options(server: SqlServer) -> str:
    command = server.command()
    return next(arg for arg in command if arg.startswith("spark.driver.extraJavaOptions="))


def test_a_start_without_a_class_archive_writes_one_at_exit_to_a_name_of_its_own(tmp_path: Path):
    server = _archiving_server(tmp_path)
    server.prepare()
    pending = Path(server._archive_pending.read_text())
    assert pending.parent == server.class_archive.parent and pending.name.endswith(".tmp")
    assert f"-XX:ArchiveClassesAtExit={pending}" in _java_options(server)
    assert "SharedArchiveFile" not in _java_options(server)


def test_a_clean_stop_puts_the_written_archive_in_place_and_keeps_only_the_newest_other_one(tmp_path: Path):
    server = _archiving_server(tmp_path)
    server.prepare()
    stale, other = (server.class_archive.with_name(f"sql-server-{key}.jsa") for key in ("0" * 16, "1" * 16))
    for age, archive in ((200, stale), (100, other)):  # of other jars or another checkout, written that many seconds ago
        archive.write_bytes(b"an archive of other jars")
        os.utime(archive, (time.time() - age, time.time() - age))
    Path(server._archive_pending.read_text()).write_bytes(b"classes")
    server.stopped(cleanly=True)
    assert server.class_archive.read_bytes() == b"classes"
    assert not stale.exists() and other.exists() and not server._archive_pending.exists()
    assert list(server.class_archive.parent.glob("*.tmp")) == []
    server.prepare()  # the next start maps it instead of writing one
    assert not server._archive_pending.exists()
    assert f"-XX:SharedArchiveFile={server.class_archive} -Xshare:auto" in _java_options(server)


def test_a_killed_servers_partial_archive_is_deleted_not_used(tmp_path: Path):
    server = _archiving_server(tmp_path)
    server.prepare()
    written = Path(server._archive_pending.read_text())
    written.write_bytes(b"cut off")
    server.stopped(cleanly=False)
    assert not written.exists() and not server.class_archive.exists()
    assert "-XX:" not in _java_options(server).split("-Duser.timezone=UTC", 1)[1]


def test_the_archive_is_keyed_on_the_jars(tmp_path: Path):
    server = _archiving_server(tmp_path)
    before = server.class_archive
    jars = server.cfg.spark_jars_dir
    jars.mkdir(parents=True)
    (jars / "delta-spark_2.13-4.0.0.jar").write_bytes(b"jar")
    assert server.class_archive != before


def test_the_archive_is_keyed_on_where_the_jars_are(tmp_path: Path):
    """The JVM refuses an archive whose class path has moved: the same jars elsewhere need another one."""
    keys = []
    for checkout in ("one", "moved"):
        jars = tmp_path / checkout / "deps" / "jars" / "spark"
        jars.mkdir(parents=True)
        (jars / "delta-spark_2.13-4.0.0.jar").write_bytes(b"jar")
        os.utime(jars / "delta-spark_2.13-4.0.0.jar", ns=(1_000_000_000, 1_000_000_000))
        cfg = _cfg(tmp_path / checkout, LAKEHOUSE_DEPS_DIR=str(tmp_path / checkout / "deps"))
        assert cfg.spark_jars_dir == jars
        keys.append(classpath_key(cfg))
    assert keys[0] != keys[1]
    assert classpath_key(cfg) == keys[1]  # and stable for one checkout


def test_a_start_after_a_server_that_died_without_a_stop_deletes_its_partial_archive(tmp_path: Path):
    server = _archiving_server(tmp_path)
    server.prepare()
    orphan = Path(server._archive_pending.read_text())
    orphan.write_bytes(b"half an archive")
    server.prepare()  # no stop in between: the JVM was killed by something else
    assert not orphan.exists()
    assert Path(server._archive_pending.read_text()) != orphan


def test_every_spark_driver_maps_the_archive_once_the_server_has_written_it(tmp_path: Path):
    """A job's driver (`get_spark`: the ingest, the scorer, ...) maps the server's archive; it never writes one."""
    from lakehouse.spark import driver_conf

    server = _archiving_server(tmp_path)
    lakehouse = spark_conf(server.cfg, catalog=False)["spark.driver.extraJavaOptions"]
    assert driver_conf(server.cfg, catalog=False)["spark.driver.extraJavaOptions"] == lakehouse
    server.class_archive.parent.mkdir(parents=True)
    server.class_archive.write_bytes(b"classes")
    java = driver_conf(server.cfg, catalog=False, extra={"spark.sql.shuffle.partitions": "1"})["spark.driver.extraJavaOptions"]
    assert java == f"{lakehouse} -XX:SharedArchiveFile={server.class_archive} -Xshare:auto"
