"""No anonymous access: each embedded service refuses a client without its login, or with a wrong one.

Every service listens on 127.0.0.1, which any local user reaches; these tests are that
user. The project's own clients (which read the login through ``lakehouse.config``) are
exercised by every other integration test.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest

from lakehouse import config

pytestmark = pytest.mark.integration


def _kafka_refuses(bootstrap: str, **login: str) -> bool:
    """Whether a kafka-python admin client with ``login`` fails to list topics."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000, bootstrap_timeout_ms=2000, **login)
    except KafkaError:  # raised on a failed handshake or bootstrap, or a config error (which the first assert catches)
        return True
    try:
        admin.list_topics()
    except KafkaError:
        return True
    finally:
        admin.close()
    return False


def test_kafka_refuses_clients_without_the_login(cfg: config.Config, kafka: str) -> None:
    good = cfg.kafka_client_options
    wrong = {**good, "sasl_plain_password": good["sasl_plain_password"] + "x"}
    controller = f"127.0.0.1:{cfg['KAFKA_CONTROLLER_PORT']}"
    assert not _kafka_refuses(kafka, **good), "the project's own login was refused"
    assert _kafka_refuses(kafka)  # no SASL at all
    assert _kafka_refuses(kafka, **wrong)
    # KRaft controllers take admin requests too (KIP-919): that listener needs the login as well
    assert _kafka_refuses(controller)


def test_ferretdb_refuses_clients_without_the_login(cfg: config.Config, mongo: str) -> None:
    import pymongo
    from pymongo.errors import OperationFailure

    port, db = cfg["MONGO_PORT"], str(cfg["MONGO_DB"])
    pymongo.MongoClient(mongo, serverSelectionTimeoutMS=5000)[db]["auth_probe"].insert_one({"secret": "personal data"})

    anonymous = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=5000)
    with pytest.raises(OperationFailure, match="requires authentication"):
        anonymous[db]["auth_probe"].find_one()
    with pytest.raises(OperationFailure, match="requires authentication"):
        anonymous[db]["auth_probe"].insert_one({"forged": True})
    with pytest.raises(OperationFailure, match="requires authentication"):
        anonymous.list_database_names()

    password = cfg.embedded_login("mongo").password
    wrong = pymongo.MongoClient(f"mongodb://lakehouse:{password}x@127.0.0.1:{port}/?authSource=admin", serverSelectionTimeoutMS=5000)
    with pytest.raises(OperationFailure, match="Authentication failed"):
        wrong[db]["auth_probe"].find_one()


def _mlflow_status(url: str, login: tuple[str, str] | None, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_mlflow_refuses_clients_without_the_login(cfg: config.Config, mlflow_uri: str) -> None:
    login = cfg.embedded_login("mlflow")
    search = f"{mlflow_uri}/api/2.0/mlflow/registered-models/search"
    # what the scorer loads: moving the `champion` alias needs the login
    alias = f"{mlflow_uri}/api/2.0/mlflow/registered-models/alias"
    forged = b'{"name": "purchase_intent", "alias": "champion", "version": "1"}'
    assert _mlflow_status(search, (login.username, login.password)) == 200
    assert _mlflow_status(search, None) == 401
    assert _mlflow_status(search, (login.username, login.password + "x")) == 401
    assert _mlflow_status(alias, None, data=forged) == 401
    # nor can a stranger sign up for an account of their own
    signup = b'{"username": "stranger", "password": "a-long-enough-password-1"}'
    assert _mlflow_status(f"{mlflow_uri}/api/2.0/mlflow/users/create", None, data=signup) == 401
    # the health check that `lakehouse.services` waits on stays open
    assert _mlflow_status(f"{mlflow_uri}/health", None) == 200


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_new_logins_take_at_the_next_start_and_the_data_stays(tmp_path) -> None:
    """Rotation as the README says: stop, delete the credentials file, start; the old password is refused."""
    import pymongo
    from pymongo.errors import OperationFailure

    from lakehouse import services

    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path), "MONGO_PORT": str(_free_port())})
    svc = services.FerretDB("mongo", int(cfg["MONGO_PORT"]), cfg)  # type: ignore[arg-type]
    try:
        svc.start()
        pymongo.MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=5000).db.c.insert_one({"_id": "kept"})
        old_uri = cfg.mongo_uri
        svc.stop()
        cfg.credentials_file.unlink()
        cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path), "MONGO_PORT": str(cfg["MONGO_PORT"])})
        svc = services.FerretDB("mongo", int(cfg["MONGO_PORT"]), cfg)  # type: ignore[arg-type]
        svc.start()
        assert cfg.mongo_uri != old_uri
        assert pymongo.MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=5000).db.c.find_one() == {"_id": "kept"}
        with pytest.raises(OperationFailure, match="Authentication failed"):
            pymongo.MongoClient(old_uri, serverSelectionTimeoutMS=5000).db.c.find_one()
    finally:
        svc.stop()


def test_mlflow_admin_takes_a_new_password_before_the_server_starts(tmp_path) -> None:
    """MLflow itself sets the admin password only in an empty user store; `prepare` keeps it in step with the file."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from lakehouse import services

    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    svc = services.MLflowServer("mlflow", _free_port(), cfg)
    svc.home.mkdir(parents=True)
    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{svc.auth_db}")
    store.create_user("lakehouse", "an-old-password-of-2025", is_admin=True)
    svc.prepare()
    login = cfg.embedded_login("mlflow")
    assert store.authenticate_user("lakehouse", login.password)
    assert not store.authenticate_user("lakehouse", "an-old-password-of-2025")
    assert login.password in svc.auth_config_file.read_text() and oct(svc.auth_config_file.stat().st_mode)[-3:] == "600"
    store.engine.dispose()
