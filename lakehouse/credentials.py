"""Logins of the embedded services: generated once, kept owner-only, read by servers and clients alike.

Kafka, FerretDB and MLflow listen on 127.0.0.1, which every local user can reach; without
a login any of them could read the session mirror, write events, or point the registry's
``champion`` alias at a model the scorer then unpickles. So each embedded service gets a
random password, generated the first time a service or a client needs it and kept in
``$LAKEHOUSE_DIR/_services/credentials.json`` (mode 0600, in a 0700 folder that also holds
the services' data files). Servers are configured from this file at every start and
clients read it through ``lakehouse.config``; nobody types or copies a password. To change
the passwords, stop the services, delete the file and start them again.

External deployments (``KAFKA_BOOTSTRAP_SERVERS``, ``MONGO_URI``, ``MLFLOW_TRACKING_URI``)
take their logins from the configuration, except the project's own three local Kafka
brokers (``python -m lakehouse.cluster start kafka``), which use the generated Kafka login.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

USERNAME = "lakehouse"
SERVICES = ("kafka", "mongo", "mlflow", "superset")
# Not logins: the static keys MLflow's basic-auth app signs its CSRF tokens with and
# Superset signs its sessions and encrypts stored connection passwords with.
MLFLOW_SECRET_KEY = "mlflow_flask_secret_key"
SUPERSET_SECRET_KEY = "superset_secret_key"
_KEYS = (MLFLOW_SECRET_KEY, SUPERSET_SECRET_KEY)


@dataclass(frozen=True)
class Login:
    """A user name and password of one embedded service."""

    username: str
    password: str = ""

    def __repr__(self) -> str:  # never print a password by accident (logs, tracebacks, pytest diffs)
        return f"Login(username={self.username!r}, password='***')"


class CredentialsError(RuntimeError):
    """The credentials file cannot be used; the message says how to fix it."""


def owner_only_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700: it holds passwords and the services' data files."""
    path.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path


def _generate() -> dict[str, object]:
    logins = {name: {"username": USERNAME, "password": secrets.token_urlsafe(24)} for name in SERVICES}
    return {**logins, **{key: secrets.token_urlsafe(48) for key in _KEYS}}


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (passwords, secret keys, configs that hold them)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC


def _create(path: Path) -> None:
    """Write a new file atomically: a concurrent first start must not read half a file or two passwords.

    The temporary name is unique per call, not per process: services start side by side in threads.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write_private(tmp, json.dumps(_generate(), indent=2))
    try:
        os.link(tmp, path)  # fails if another process created it first; then theirs is kept
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def read(path: Path) -> dict[str, object]:
    """The credentials in ``path``, created on first use; refuses a file others can read."""
    owner_only_dir(path.parent)
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CredentialsError(f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and start again.")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise CredentialsError(f"{path} is not valid JSON ({exc}); stop the services, delete it and start them again.") from exc
    missing = [name for name in (*SERVICES, *_KEYS) if name not in data]
    if missing:
        raise CredentialsError(f"{path} lacks {', '.join(missing)}; stop the services, delete it and start them again.")
    return data


def login(path: Path, service: str) -> Login:
    """The login of one embedded service (``kafka``, ``mongo``, ``mlflow`` or ``superset``)."""
    entry = read(path)[service]
    return Login(str(entry["username"]), str(entry["password"]))  # type: ignore[index]


def mlflow_secret_key(path: Path) -> str:
    return str(read(path)[MLFLOW_SECRET_KEY])


def superset_secret_key(path: Path) -> str:
    return str(read(path)[SUPERSET_SECRET_KEY])
