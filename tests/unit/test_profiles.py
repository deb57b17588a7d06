"""profiles.yml (dbt's Spark session) and lakehouse.spark (Python's) must describe one lakehouse."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from lakehouse import config
from lakehouse.spark import spark_conf


def _render_profile(environ: dict[str, str]) -> dict[str, str]:
    text = (config.REPO_ROOT / "profiles.yml").read_text()
    rendered = jinja2.Template(text).render(env_var=lambda name, default="": environ.get(name, default))
    out = yaml.safe_load(rendered)["clickstream_lakehouse"]["outputs"]["local"]
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
