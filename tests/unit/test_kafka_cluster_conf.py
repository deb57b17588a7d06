"""The three-broker Kafka cluster's configuration: nodes, quorum, replication, and how clients log in to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse import config
from lakehouse.cluster import kafka_cluster_id, kafka_cluster_services
from lakehouse.services import Kafka
from streaming.producer import topic_configs


def _cfg(tmp_path: Path, **env: str) -> config.Config:
    return config.load({"LAKEHOUSE_DIR": str(tmp_path), "KAFKA_CLUSTER_PORT": "31092", "KAFKA_CLUSTER_CONTROLLER_PORT": "31192", **env})


def _properties(node: Kafka) -> dict[str, str]:
    node.home.mkdir(parents=True, exist_ok=True)
    node._write_properties()
    lines = node.properties_file.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_three_nodes_with_their_own_ports_one_quorum_and_three_replicas(tmp_path):
    nodes = kafka_cluster_services(_cfg(tmp_path))
    props = [_properties(node) for node in nodes]
    voters = "1@127.0.0.1:31192,2@127.0.0.1:31193,3@127.0.0.1:31194"
    for n, p in enumerate(props, start=1):
        assert p["node.id"] == str(n)
        assert p["listeners"] == f"CLIENT://127.0.0.1:{31091 + n},CONTROLLER://127.0.0.1:{31191 + n}"
        assert p["controller.quorum.voters"] == voters
        assert p["log.dirs"] == str(tmp_path / "_services" / f"kafka-{n}" / "data")
        assert (p["default.replication.factor"], p["min.insync.replicas"], p["offsets.topic.replication.factor"]) == ("3", "2", "3")
        assert p["unclean.leader.election.enable"] == "false"


def test_the_single_embedded_broker_keeps_one_replica(tmp_path):
    cfg = _cfg(tmp_path)
    p = _properties(Kafka("kafka", 31000, cfg))
    assert (p["node.id"], p["controller.quorum.voters"]) == ("1", f"1@127.0.0.1:{cfg['KAFKA_CONTROLLER_PORT']}")
    assert "default.replication.factor" not in p and p["offsets.topic.replication.factor"] == "1"


def test_every_node_formats_with_one_cluster_id(tmp_path):
    cfg = _cfg(tmp_path)
    assert {node.cluster_id() for node in kafka_cluster_services(cfg)} == {kafka_cluster_id(cfg)}
    assert Kafka("kafka", 31000, cfg).cluster_id() != kafka_cluster_id(cfg)


@pytest.mark.parametrize(
    ("bootstrap", "username", "local"),
    [
        ("127.0.0.1:31092,127.0.0.1:31093,127.0.0.1:31094", "", True),
        ("127.0.0.1:31094, 127.0.0.1:31092", "", True),  # any order, a part of them
        ("127.0.0.1:31092,broker2:9092", "", False),
        ("127.0.0.1:31092", "alice", False),  # a login of its own: an external cluster's rules
        ("", "", False),  # the embedded broker
    ],
)
def test_clients_of_the_local_cluster_use_the_generated_login(tmp_path, bootstrap, username, local):
    cfg = _cfg(tmp_path, KAFKA_BOOTSTRAP_SERVERS=bootstrap, KAFKA_USERNAME=username)
    assert cfg.kafka_local_cluster is local
    options = cfg.kafka_client_options
    if local:
        generated = cfg.embedded_login("kafka")
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (generated.username, generated.password)


def test_the_node_readiness_check_logs_in_with_the_generated_login_whatever_clients_are_pointed_at(tmp_path):
    cfg = _cfg(tmp_path, KAFKA_BOOTSTRAP_SERVERS="broker1:9092", KAFKA_USERNAME="alice", KAFKA_PASSWORD="secret")
    options = kafka_cluster_services(cfg)[0].client_options()
    assert options["sasl_plain_password"] == cfg.embedded_login("kafka").password


def test_the_topic_takes_min_insync_replicas_only_when_configured(tmp_path):
    assert "min.insync.replicas" not in topic_configs(_cfg(tmp_path))
    assert topic_configs(_cfg(tmp_path, KAFKA_MIN_INSYNC_REPLICAS="2"))["min.insync.replicas"] == "2"
    assert _cfg(tmp_path)["KAFKA_REPLICATION_FACTOR"] is None
    assert _cfg(tmp_path, KAFKA_REPLICATION_FACTOR="3")["KAFKA_REPLICATION_FACTOR"] == 3
