"""Configuration: defaults, overrides, errors, and the README table staying in sync."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from lakehouse import config


def test_defaults_point_at_embedded_services(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert config.load({}).lakehouse_dir == config.REPO_ROOT / "lakehouse-data"
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    assert cfg.kafka_embedded and cfg.mongo_embedded and cfg.mlflow_embedded
    assert cfg.kafka_bootstrap == "127.0.0.1:19092"
    mongo = cfg.embedded_login("mongo")
    assert cfg.mongo_uri == f"mongodb://lakehouse:{mongo.password}@127.0.0.1:27018/?authSource=admin"
    assert cfg.mlflow_uri == "http://127.0.0.1:15000"
    # MLflow's client reads the embedded server's login from its own variables
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == cfg.embedded_login("mlflow").password


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
    assert cfg.kafka_client_options == {} and cfg.spark_kafka_options == {}  # an unsecured cluster, as configured


def test_the_embedded_mlflow_uri_exported_by_mlflow_is_still_the_embedded_server(tmp_path):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a later load in that process must not take it for an external server."""
    embedded = config.load({"LAKEHOUSE_DIR": str(tmp_path), "MLFLOW_PORT": "15123"})
    exported = config.load({"LAKEHOUSE_DIR": str(tmp_path), "MLFLOW_PORT": "15123", "MLFLOW_TRACKING_URI": embedded.mlflow_uri + "/"})
    assert exported.mlflow_embedded and exported.mlflow_uri == embedded.mlflow_uri
    other_port = config.load({"LAKEHOUSE_DIR": str(tmp_path), "MLFLOW_PORT": "15123", "MLFLOW_TRACKING_URI": "http://127.0.0.1:15999"})
    assert not other_port.mlflow_embedded


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


def test_embedded_logins_are_generated_once_owner_only_and_differ_per_service(tmp_path):
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    logins = {name: cfg.embedded_login(name) for name in ("kafka", "mongo", "mlflow")}
    assert len({login.password for login in logins.values()}) == 3
    assert all(len(login.password) >= 32 for login in logins.values())
    assert stat.S_IMODE(cfg.credentials_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.services_dir.stat().st_mode) == 0o700
    assert config.load({"LAKEHOUSE_DIR": str(tmp_path)}).embedded_login("kafka") == logins["kafka"]  # read, not regenerated
    assert logins["kafka"].password not in repr(logins["kafka"])


def test_a_credentials_file_others_can_read_is_refused(tmp_path):
    from lakehouse.credentials import CredentialsError

    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    cfg.embedded_login("kafka")
    cfg.credentials_file.chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        cfg.embedded_login("kafka")


def test_kafka_clients_log_in_to_the_embedded_broker_and_to_a_configured_one(tmp_path):
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    password = cfg.embedded_login("kafka").password
    assert cfg.kafka_client_options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "lakehouse",
        "sasl_plain_password": password,
    }
    assert cfg.spark_kafka_options["kafka.sasl.jaas.config"] == (
        f'org.apache.kafka.common.security.plain.PlainLoginModule required username="lakehouse" password="{password}";'
    )
    external = config.load(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b:9093",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_USERNAME": "app",
            "KAFKA_PASSWORD": 'p"w',
        }
    )
    assert external.kafka_client_options["security_protocol"] == "SASL_SSL"
    assert external.spark_kafka_options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="p\\"w";'
    )


def test_printed_configuration_shows_no_secret(tmp_path):
    """`python -m lakehouse.config` output is pasted into issues: no password of any kind may be in it."""
    env = {
        **os.environ,
        "LAKEHOUSE_DIR": str(tmp_path),
        "MONGO_URI": "mongodb://app:mongo-secret@db.example:27017/",
        "KAFKA_BOOTSTRAP_SERVERS": "b:9093",
        "KAFKA_USERNAME": "app",
        "KAFKA_PASSWORD": "kafka-secret",
    }
    config.load({"LAKEHOUSE_DIR": str(tmp_path)}).embedded_login("kafka")  # a generated file exists too
    generated = json.loads((tmp_path / "_services" / "credentials.json").read_text())
    secrets = ["mongo-secret", "kafka-secret", *(v["password"] if isinstance(v, dict) else v for v in generated.values())]
    out = subprocess.run([sys.executable, "-m", "lakehouse.config"], env=env, capture_output=True, text=True, check=True).stdout
    assert "KAFKA_PASSWORD=***" in out and "MONGO_URI=mongodb://app:***@db.example:27017/" in out
    assert [s for s in secrets if s in out] == []
