"""Producer throughput against its ceiling: the raw send rate of pre-serialised bytes.

Generates 200 k events, then in one process (same broker, same KafkaProducer
settings) times (1) ``produce_file`` end to end: read + type + JSON + send +
flush, and (2) sending the identical keys and values, already encoded, in a
tight loop. The ratio says how much of the ceiling the file path keeps; peak
RSS says whether streaming the file kept memory flat.

Usage: ``python -m bench.bench_producer [--events 200000]`` (starts the embedded
broker if needed; uses the lakehouse folder of the configuration).
"""

from __future__ import annotations

import resource
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import typer

from lakehouse import config, services
from streaming.generate import generate
from streaming.producer import READ_CHUNK, ensure_topic, make_producer, messages, produce_file
from streaming.rees46 import iter_events


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(events: int = typer.Option(200_000, help="Events to generate and send."), seed: int = typer.Option(1)) -> None:
    """Print producer events/s next to the raw-bytes ceiling, the ratio and peak RSS."""
    cfg = config.load()
    svc = services.all_services(cfg).get("kafka")
    if svc is not None:
        svc.start()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        generate(path, events, date(2019, 11, 1), 2, seed, progress=False)
        rss_after_generate = _peak_rss_mb()

        topic = f"bench-producer-{uuid.uuid4().hex[:6]}"
        t0 = time.perf_counter()
        sent = produce_file(path, topic)
        producer_s = time.perf_counter() - t0
        rss_after_producer = _peak_rss_mb()

        payload = [(k, v) for chunk in iter_events(path, chunksize=READ_CHUNK) for k, v, _ in messages(chunk)]
        base_topic = f"bench-baseline-{uuid.uuid4().hex[:6]}"
        ensure_topic(base_topic)
        producer = make_producer()
        t0 = time.perf_counter()
        for k, v in payload:
            producer.send(base_topic, key=k, value=v)
        producer.flush()
        baseline_s = time.perf_counter() - t0
        producer.close()

    prod_rate, base_rate = sent / producer_s, len(payload) / baseline_s
    print(f"{'path':<44}{'events':>10}{'seconds':>10}{'events/s':>12}")
    print(f"{'produce_file (read+type+JSON+send+flush)':<44}{sent:>10,}{producer_s:>10.2f}{prod_rate:>12,.0f}")
    print(f"{'baseline: pre-serialised bytes, same client':<44}{len(payload):>10,}{baseline_s:>10.2f}{base_rate:>12,.0f}")
    print(f"ratio producer/baseline: {prod_rate / base_rate:.2f}")
    print(
        f"peak RSS: {rss_after_generate:.0f} MB after generating, {rss_after_producer:.0f} MB after producing (before baseline holds all payloads)"
    )


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    main()
