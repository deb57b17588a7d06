"""The streams' supervisor (ingest and scorer): restarts a failed query, counts a failed restart, gives up when told."""

from __future__ import annotations

import pytest

from streaming import supervisor


class FakeQuery:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.awaited = False

    def awaitTermination(self) -> None:  # Spark's camelCase name
        self.awaited = True

    def exception(self) -> Exception | None:
        return self.error

    def stop(self) -> None:
        pass


def _starter(outcomes: list[Exception | FakeQuery]):
    """Each start returns the next query, or raises the next exception (a start that fails, e.g. Kafka still down)."""
    started: list[Exception | FakeQuery] = []

    def start():
        outcome = outcomes[len(started)]
        started.append(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return start, started


def test_a_restart_that_fails_to_start_counts_as_a_failure_and_is_tried_again() -> None:
    last = FakeQuery(None)
    start, started = _starter([FakeQuery(RuntimeError("model file gone")), ConnectionError("kafka down"), last])
    assert supervisor.supervise(start, name="scorer", max_restarts=5, backoff_seconds=0, install_signals=False) == 2
    assert len(started) == 3 and last.awaited


def test_the_error_names_the_stream_and_its_last_failure() -> None:
    start, _ = _starter([FakeQuery(RuntimeError("a")), ConnectionError("kafka down")])
    with pytest.raises(RuntimeError, match="scorer failed 2 times; last error: kafka down"):
        supervisor.supervise(start, name="scorer", max_restarts=1, backoff_seconds=0, install_signals=False)


def test_a_query_that_ends_cleanly_is_not_restarted() -> None:
    start, started = _starter([FakeQuery(None)])
    assert supervisor.supervise(start, name="scorer", max_restarts=5, backoff_seconds=0, install_signals=False) == 0
    assert len(started) == 1
