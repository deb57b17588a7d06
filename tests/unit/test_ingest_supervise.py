"""The ingest supervisor restarts a failed query from its checkpoint, and gives up when told."""

from __future__ import annotations

import pytest

from streaming import ingest


class FakeQuery:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def awaitTermination(self) -> None:  # Spark's camelCase name
        pass

    def exception(self) -> Exception | None:
        return self.error

    def stop(self) -> None:
        pass


def _starter(outcomes: list[Exception | None]):
    started = []

    def start():
        query = FakeQuery(outcomes[len(started)])
        started.append(query)
        return query

    return start, started


def test_failed_queries_are_restarted_until_one_ends_cleanly():
    start, started = _starter([RuntimeError("broker down"), RuntimeError("broker down"), None])
    assert ingest.supervise(start, max_restarts=5, backoff_seconds=0) == 2
    assert len(started) == 3


def test_gives_up_after_max_restarts_with_the_last_error():
    start, started = _starter([RuntimeError("a"), RuntimeError("b"), RuntimeError("disk full")])
    with pytest.raises(RuntimeError, match="failed 3 times; last error: disk full"):
        ingest.supervise(start, max_restarts=2, backoff_seconds=0)
    assert len(started) == 3
