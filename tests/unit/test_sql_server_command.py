"""The SQL server runs with the lakehouse's one Spark configuration, on loopback only, and only when asked for."""

from __future__ import annotations

from pathlib import Path

from lakehouse import config, services
from lakehouse.spark import spark_conf
from lakehouse.sql_server import CONNECT_PLUGIN, THRIFT_SERVER_CLASS, SqlServer, server_conf


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


def test_the_server_is_a_service_unless_the_catalog_is_embedded(tmp_path: Path):
    assert "sql" in services.all_services(_cfg(tmp_path))
    assert "sql" not in services.all_services(_cfg(tmp_path, LAKEHOUSE_CATALOG="embedded"))
