"""Service control: idempotent start/stop, and clear errors instead of hangs."""

from __future__ import annotations

import socket

import pytest

from lakehouse import config, services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_in_use_is_a_clear_error(tmp_path):
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        svc = services.FerretDB("mongo", port, cfg)
        with pytest.raises(services.ServiceError, match=rf"port {port} .* already in use"):
            svc.start()


def test_a_missing_binary_is_a_clear_error(tmp_path):
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path), "LAKEHOUSE_DEPS_DIR": str(tmp_path / "nodeps")})
    with pytest.raises(services.ServiceError, match=r"FerretDB binary not found .*make setup"):
        services.FerretDB("mongo", _free_port(), cfg).start()
    with pytest.raises(services.ServiceError, match=r"Kafka jars not found .*make setup"):
        services.Kafka("kafka", _free_port(), cfg).start()


@pytest.mark.integration
def test_start_and_stop_are_idempotent(tmp_path):
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    svc = services.FerretDB("mongo", _free_port(), cfg)
    try:
        pid = svc.start()
        assert svc.start() == pid, "a second start must leave the running service alone"
        assert services.port_open(svc.port)
    finally:
        assert svc.stop() is True
    assert svc.stop() is False
    assert not services.port_open(svc.port)


def test_kafka_cluster_ids_never_start_with_a_dash(monkeypatch):
    import uuid

    ids = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(16))])  # the first encodes to "-A..."
    monkeypatch.setattr(services.uuid, "uuid4", lambda: next(ids))
    assert services._kafka_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
