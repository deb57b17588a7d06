"""`services.start_all`: services start side by side, a service after those it needs, and a failure is named."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from lakehouse import config, services


@dataclass(frozen=True)
class _Fake(services.Service):
    """A service whose start only records when it ran (no process)."""

    log: list = field(default_factory=list, compare=False)
    fails: bool = False
    seconds: float = 0.3

    def start(self) -> int:
        self.log.append((self.name, "begin", time.monotonic(), threading.current_thread().name))
        time.sleep(self.seconds)
        if self.fails:
            raise services.ServiceError(f"{self.name} did not answer")
        self.log.append((self.name, "end", time.monotonic(), threading.current_thread().name))
        return 1000 + self.port


@dataclass(frozen=True)
class _NeedsSql(_Fake):
    needs: ClassVar[tuple[str, ...]] = ("sql",)


@pytest.fixture()
def cfg(tmp_path) -> config.Config:
    return config.load({"LAKEHOUSE_DIR": str(tmp_path)})


def _when(log: list, name: str, what: str) -> float:
    return next(t for n, w, t, _ in log if n == name and w == what)


def test_services_start_side_by_side_and_one_waits_for_what_it_needs(cfg) -> None:
    log: list = []
    svcs = [_Fake("kafka", 1, cfg, log=log), _Fake("sql", 2, cfg, log=log), _NeedsSql("superset", 3, cfg, log=log)]
    began = time.monotonic()
    assert services.start_all(svcs) == {"kafka": 1001, "sql": 1002, "superset": 1003}
    # kafka and sql overlap; superset begins only once sql has answered
    assert _when(log, "sql", "begin") < _when(log, "kafka", "end") and _when(log, "kafka", "begin") < _when(log, "sql", "end")
    assert _when(log, "superset", "begin") >= _when(log, "sql", "end")
    assert time.monotonic() - began < 3 * 0.3  # not one after another


def test_a_failure_is_raised_after_every_start_and_the_service_that_needs_it_says_why(cfg) -> None:
    log: list = []
    svcs = [_Fake("sql", 2, cfg, log=log, fails=True), _Fake("kafka", 1, cfg, log=log, seconds=0.6), _NeedsSql("superset", 3, cfg, log=log)]
    with pytest.raises(services.ServiceError, match="sql did not answer"):
        services.start_all(svcs)
    assert ("kafka", "end") in {(n, w) for n, w, _, _ in log}  # the others were not abandoned half-way
    assert ("superset", "begin") not in {(n, w) for n, w, _, _ in log}


def test_the_credentials_file_is_written_once_before_the_starts(cfg) -> None:
    assert not cfg.credentials_file.exists()
    services.start_all([_Fake("kafka", 1, cfg, log=[]), _Fake("mongo", 2, cfg, log=[])])
    assert cfg.credentials_file.exists()
