"""Configuration: defaults, overrides, errors, and the README table staying in sync."""

from __future__ import annotations

import pytest

from lakehouse import config


def test_defaults_point_at_embedded_services():
    cfg = config.load({})
    assert cfg.kafka_embedded and cfg.mongo_embedded and cfg.mlflow_embedded
    assert cfg.kafka_bootstrap == "127.0.0.1:19092"
    assert cfg.mongo_uri == "mongodb://127.0.0.1:27018/"
    assert cfg.mlflow_uri == "http://127.0.0.1:15000"
    assert cfg.lakehouse_dir == config.REPO_ROOT / "lakehouse-data"


def test_external_deployments_replace_embedded_ones():
    cfg = config.load(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
            "MONGO_URI": "mongodb://db.example:27017/",
            "MLFLOW_TRACKING_URI": "http://mlflow.example:5000",
        }
    )
    assert not (cfg.kafka_embedded or cfg.mongo_embedded or cfg.mlflow_embedded)
    assert cfg.kafka_bootstrap == "broker-1:9092,broker-2:9092"
    assert cfg.mongo_uri == "mongodb://db.example:27017/"


def test_relative_paths_resolve_against_the_repository(tmp_path):
    assert config.load({"LAKEHOUSE_DIR": "x/y"}).lakehouse_dir == config.REPO_ROOT / "x" / "y"
    assert config.load({"LAKEHOUSE_DIR": str(tmp_path)}).lakehouse_dir == tmp_path


def test_a_bad_number_names_the_variable():
    with pytest.raises(ValueError, match="KAFKA_PORT='ninety'"):
        config.load({"KAFKA_PORT": "ninety"})


def test_readme_carries_the_generated_configuration_table():
    readme = (config.REPO_ROOT / "README.md").read_text()
    assert config.markdown_table() in readme, "README's configuration table is stale: paste `python -m lakehouse.config --markdown`"


def test_printed_settings_mask_passwords_in_urls() -> None:
    from lakehouse.config import masked

    assert masked("mongodb://app:s3cr:et@db.example:27017/") == "mongodb://app:***@db.example:27017/"
    assert masked("http://127.0.0.1:15000") == "http://127.0.0.1:15000"
    assert masked("SASL_SSL://broker:9093") == "SASL_SSL://broker:9093"
    assert masked(19092) == "19092"
