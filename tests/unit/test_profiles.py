"""profiles.yml (dbt's Spark session) and lakehouse.spark (Python's) must describe one lakehouse."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from lakehouse import config
from lakehouse.spark import spark_conf


def _rendered(environ: dict[str, str]) -> dict:
    text = (config.REPO_ROOT / "profiles.yml").read_text()
    return yaml.safe_load(jinja2.Template(text).render(env_var=lambda name, default="": environ.get(name, default)))


def _render_profile(environ: dict[str, str]) -> dict[str, str]:
    rendered = _rendered(environ)
    out = rendered["clickstream_lakehouse"]["outputs"]["embedded"]
    assert out["method"] == "session"
    return {k: str(v) for k, v in out["server_side_parameters"].items()}


def test_profile_spark_settings_equal_the_session_factory(tmp_path: Path):
    environ = {  # absolute folders outside the repository, as a deployment sets them
        "LAKEHOUSE_DIR": str(tmp_path / "lake"),
        "LAKEHOUSE_DEPS_DIR": str(tmp_path / "deps"),
        "SPARK_MASTER": "local[3]",
        "SPARK_SHUFFLE_PARTITIONS": "7",
    }
    expected = spark_conf(config.load(environ), catalog=True)
    profile = _render_profile(environ)
    assert profile == expected


def test_profile_defaults_equal_the_configuration_defaults():
    defaults = {s.name: s.default for s in config.SETTINGS}
    profile = _render_profile({})
    assert profile["spark.sql.warehouse.dir"] == f"{defaults['LAKEHOUSE_DIR']}/warehouse"
    assert profile["spark.driver.extraClassPath"] == f"{defaults['LAKEHOUSE_DEPS_DIR']}/jars/spark/*"
    assert profile["spark.master"] == defaults["SPARK_MASTER"]
    assert profile["spark.driver.memory"] == defaults["SPARK_DRIVER_MEMORY"]
    assert profile["spark.sql.shuffle.partitions"] == defaults["SPARK_SHUFFLE_PARTITIONS"]


def test_dbt_talks_thrift_to_the_sql_server_by_default():
    profile = _rendered({})["clickstream_lakehouse"]
    server = profile["outputs"]["server"]
    assert profile["target"] == "server"
    assert (server["method"], server["host"], int(server["port"])) == (
        "thrift",
        "127.0.0.1",
        int(config.load({})["SQL_SERVER_THRIFT_PORT"]),
    )
    assert int(server["threads"]) == config.load({})["DBT_THREADS"]


def test_the_catalog_setting_chooses_the_target():
    assert _rendered({"LAKEHOUSE_CATALOG": "embedded"})["clickstream_lakehouse"]["target"] == "embedded"
    assert _rendered({"LAKEHOUSE_CATALOG": "server"})["clickstream_lakehouse"]["target"] == "server"
    port = _rendered({"SQL_SERVER_THRIFT_PORT": "43100"})["clickstream_lakehouse"]["outputs"]["server"]["port"]
    assert int(port) == 43100
