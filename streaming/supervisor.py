"""Restart a failed streaming query from its checkpoint: the one supervisor of the ingest and the scorer.

Both streams write idempotently per micro-batch (Delta transaction ids keyed by the
batch id, MongoDB upserts), so a query that failed can be started again from its
checkpoint: the batch it was in is replayed and lands once. What fails a query here is
infrastructure (a broker or disk gone, a JVM error), not data: bad records go to
quarantine, and a champion model that fails is set aside by the scorer itself.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger("streaming.supervisor")


def supervise(
    start_query: Callable[[], object],
    *,
    name: str,
    max_restarts: int,
    backoff_seconds: float = 2.0,
    max_backoff: float = 60.0,
    install_signals: bool = True,
) -> int:
    """Run the query ``start_query`` returns; start it again when it fails, until it ends cleanly or is stopped.

    A failed restart (``start_query`` raising, e.g. the broker still down) counts as one
    more failure. Returns the number of restarts used; raises ``RuntimeError`` with the
    last error once ``max_restarts`` is exceeded.

    SIGTERM/SIGINT stop the current query from a thread: the handler runs on the main
    thread, which may be inside a py4j call (a ``foreachBatch`` function), and a
    re-entrant py4j call breaks the gateway.
    """
    stopping = threading.Event()
    query = start_query()

    def _stop(signum, _frame):  # between batches: the checkpoint stays consistent
        log.info("stopping %s (signal %d)", name, signum)
        stopping.set()
        threading.Thread(target=query.stop, name=f"{name}-stop", daemon=True).start()

    if install_signals:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    restarts, delay = 0, backoff_seconds
    while True:
        query.awaitTermination()
        error = query.exception()
        if error is None or stopping.is_set():
            return restarts
        while True:  # until a start succeeds
            if restarts >= max_restarts:
                raise RuntimeError(f"{name} failed {restarts + 1} times; last error: {error}")
            restarts += 1
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning("%s query failed (%s); restart %d/%d from the checkpoint in %.0fs", name, first_line, restarts, max_restarts, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_backoff)
            if stopping.is_set():
                return restarts
            try:
                query = start_query()
            except Exception as exc:  # still failing (e.g. the broker still down): the next failure
                error = exc
                continue
            if stopping.is_set():  # the signal came while it started
                query.stop()
                return restarts
            break
