"""Replay a REES46 file (real or generated) into Kafka, one JSON message per event.

The key is ``user_session`` so that every event of a session lands in one
partition, in file order, which is what the streaming scorer relies on; a
row without a session is keyed by its ``user_id`` instead. Values are typed
JSON (ids as integers, price as a number, ``event_time`` in the file's own
``2019-11-01 00:00:00 UTC`` form, nulls as ``null``), exactly the contract
the ingest parses (``streaming.events``).

Pacing is either a fixed rate (``--rate`` events/s) or a speed factor over the
events' own clock (``--speed 60`` plays an hour in a minute). Ctrl-C stops
cleanly: what was handed to the client is flushed, the count is reported and
the exit code is 130.

Usage: ``python -m streaming.producer FILE [--topic events] [--rate 5000 | --speed 60] [--partitions N] [--limit N]``
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from lakehouse import config
from streaming.events import EVENT_TIME_FORMAT
from streaming.rees46 import BadLine, iter_events

# Throughput settings: acks from every in-sync replica, batches filled for a few ms, gzip
# (the only codec kafka-python ships without extra packages). Idempotence keeps per-partition
# order intact across retries.
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "compression_type": "gzip",
    "max_request_size": 4 * 1024 * 1024,
}
READ_CHUNK = 50_000

# Kafka headers of a file line that holds no readable event. The line travels as it is,
# so the ingest judges it by the backfill's CSV rules and quarantines it with its file
# and line, as the backfill would: nothing is dropped or repaired on the way.
FORMAT_HEADER = "lakehouse.format"
CSV_LINE_FORMAT = b"rees46-csv-line"
SOURCE_FILE_HEADER = "lakehouse.source_file"
SOURCE_LINE_HEADER = "lakehouse.source_line"


def bad_line_record(path: Path, bad: BadLine) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of the Kafka record that carries one bad file line to quarantine."""
    headers = [
        (FORMAT_HEADER, CSV_LINE_FORMAT),
        (SOURCE_FILE_HEADER, str(path).encode("utf-8")),
        (SOURCE_LINE_HEADER, str(bad.line).encode("ascii")),
    ]
    return bad.raw, headers


def make_producer(bootstrap: str | None = None, **overrides: Any):
    """A KafkaProducer with the project's settings (tests and the bench use the same)."""
    from kafka import KafkaProducer

    cfg = config.load()
    return KafkaProducer(
        bootstrap_servers=bootstrap or cfg.kafka_bootstrap, **{**cfg.kafka_client_options, **PRODUCER_SETTINGS, **overrides}
    )


def ensure_topic(topic: str, partitions: int | None = None, bootstrap: str | None = None) -> bool:
    """Create ``topic`` with the configured partitions and replicas if it does not exist; True if created.

    An unset replication factor is -1: the brokers' ``default.replication.factor`` (one on the
    embedded broker, three on the local cluster), so one command fits both.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    cfg = config.load()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap or cfg.kafka_bootstrap, client_id="producer-admin", **cfg.kafka_client_options)
    try:
        if topic in admin.list_topics():
            return False
        n = int(partitions or cfg["KAFKA_PARTITIONS"])  # type: ignore[arg-type]
        try:
            replicas = cfg["KAFKA_REPLICATION_FACTOR"]
            replication_factor = -1 if replicas is None else int(replicas)  # type: ignore[call-overload]
            admin.create_topics(
                [NewTopic(name=topic, num_partitions=n, replication_factor=replication_factor, topic_configs=topic_configs(cfg))]
            )
        except TopicAlreadyExistsError:
            return False
        return True
    finally:
        admin.close()


def topic_configs(cfg: config.Config) -> dict[str, str]:
    """Topic settings: a finite retention, so that an erased user's records leave Kafka; the configured ``min.insync.replicas``.

    Kafka deletes whole log segments, so a segment is rolled at least daily (or at the
    retention, if shorter): a record then leaves within retention plus a day at most.
    ``min.insync.replicas`` is left to the brokers unless configured.
    """
    in_sync = cfg["KAFKA_MIN_INSYNC_REPLICAS"]
    replicas = {} if in_sync is None else {"min.insync.replicas": str(in_sync)}
    hours = float(cfg["KAFKA_RETENTION_HOURS"])  # type: ignore[arg-type]
    if hours < 0:
        return {"retention.ms": "-1", **replicas}
    ms = int(hours * 3_600_000)
    return {"retention.ms": str(ms), "segment.ms": str(min(ms, 86_400_000)), **replicas}


def topic_retention(topic: str, bootstrap: str) -> timedelta | None:
    """The topic's time retention plus one segment roll (how long a record may stay); None if unlimited."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="erasure-admin", **config.load().kafka_client_options)
    try:
        # "all": a topic without its own retention inherits the broker's, which only this filter shows
        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    finally:
        admin.close()
    entries = next(iter(result.values()), {}).get(topic)
    if not entries:
        raise LookupError(f"topic {topic!r} not found on {bootstrap}")
    retention, segment = (int(entries[k]["value"]) for k in ("retention.ms", "segment.ms"))
    return None if retention < 0 else timedelta(milliseconds=retention + segment)


def _nullable(values: pd.Series) -> list[Any]:
    """Python values with pandas' NA as None (so json writes null, ints stay ints)."""
    return values.astype(object).where(values.notna(), None).tolist()


def messages(chunk: pd.DataFrame) -> Iterator[tuple[bytes, bytes, pd.Timestamp]]:
    """(key, JSON value, event time) per row of a typed chunk from the loader."""
    times = chunk["event_time"]
    time_text = _nullable(times.dt.strftime(EVENT_TIME_FORMAT))
    columns = {
        "event_time": time_text,
        "event_type": _nullable(chunk["event_type"]),
        "product_id": _nullable(chunk["product_id"]),
        "category_id": _nullable(chunk["category_id"]),
        "category_code": _nullable(chunk["category_code"]),
        "brand": _nullable(chunk["brand"]),
        "price": _nullable(chunk["price"]),
        "user_id": _nullable(chunk["user_id"]),
        "user_session": _nullable(chunk["user_session"]),
    }
    names = list(columns)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for row, ts in zip(zip(*columns.values(), strict=True), times.tolist(), strict=True):
        record = dict(zip(names, row, strict=True))
        key = record["user_session"] if record["user_session"] is not None else str(record["user_id"])
        yield key.encode("utf-8"), dumps(record).encode("utf-8"), ts


class Pacer:
    """Holds the send loop back to a rate (events/s) or to event time divided by a speed factor."""

    def __init__(self, rate: float | None = None, speed: float | None = None) -> None:
        if rate is not None and speed is not None:
            raise ValueError("give either rate or speed, not both")
        if (rate is not None and rate <= 0) or (speed is not None and speed <= 0):
            raise ValueError("rate and speed must be positive")
        self.rate, self.speed = rate, speed
        self.t0 = time.monotonic()
        self.first_event: pd.Timestamp | None = None
        self.count = 0

    def wait(self, event_time: pd.Timestamp | None) -> None:
        self.count += 1
        if self.rate:
            due = self.t0 + (self.count - 1) / self.rate
        elif self.speed and event_time is not None and not pd.isna(event_time):
            if self.first_event is None:
                self.first_event = event_time
            due = self.t0 + (event_time - self.first_event).total_seconds() / self.speed
        else:
            return
        delay = due - time.monotonic()
        if delay > 0.001:
            time.sleep(delay)


def produce_file(
    path: str | Path,
    topic: str | None = None,
    rate: float | None = None,
    speed: float | None = None,
    partitions: int | None = None,
    limit: int | None = None,
    bootstrap: str | None = None,
    progress: bool = False,
    on_sent: Callable[[int], None] | None = None,
    on_bad_line: Callable[[BadLine], None] | None = None,
) -> int:
    """Send the file's events to ``topic`` and return how many records were acknowledged.

    A line that holds no readable event is sent as it is, marked as a CSV line with its
    file and line (:func:`bad_line_record`), for the ingest to quarantine; it counts as
    a record sent, and ``on_bad_line`` (if given) hears of it. On KeyboardInterrupt the events already handed over are flushed and the
    interrupt is re-raised with the count as ``exc.sent``.
    """
    cfg = config.load()
    topic = topic or str(cfg["KAFKA_TOPIC"])
    bootstrap = bootstrap or cfg.kafka_bootstrap
    ensure_topic(topic, partitions, bootstrap)
    producer = make_producer(bootstrap)
    pacer = Pacer(rate, speed)
    sent = 0
    failures: list[BaseException] = []
    bar = _progress_bar(progress, limit, path)
    source = Path(path).resolve()
    bad_lines: list[BadLine] = []
    try:
        for chunk in iter_events(path, chunksize=READ_CHUNK, on_bad_line=bad_lines.append):
            for key, value, ts in messages(chunk):
                if limit is not None and sent >= limit:
                    break
                pacer.wait(ts)
                producer.send(topic, key=key, value=value).add_errback(failures.append)
                sent += 1
                if bar is not None and sent % 1000 == 0:
                    bar.update(1000)
            for bad in bad_lines:
                if limit is not None and sent >= limit:
                    break
                value, headers = bad_line_record(source, bad)
                producer.send(topic, value=value, headers=headers).add_errback(failures.append)
                sent += 1
                if on_bad_line:
                    on_bad_line(bad)
            bad_lines.clear()
            if limit is not None and sent >= limit:
                break
            if on_sent:
                on_sent(sent)
    except KeyboardInterrupt as exc:
        producer.flush()
        producer.close()
        exc.sent = sent - len(failures)  # type: ignore[attr-defined]
        raise
    finally:
        if bar is not None:
            bar.update(sent % 1000)
            bar.close()
    producer.flush()
    producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {sent} events were not acknowledged by Kafka; first error: {failures[0]!r}")
    return sent


def produce_records(
    records: Iterable[bytes | dict],
    topic: str,
    key: bytes | str | Callable[[bytes | dict], bytes | str | None] | None = None,
    bootstrap: str | None = None,
    partitions: int | None = None,
) -> int:
    """Send raw payloads (bytes as they are, dicts as JSON): for tests that need malformed input."""
    ensure_topic(topic, partitions, bootstrap)
    producer = make_producer(bootstrap)
    failures: list[BaseException] = []
    sent = 0
    for record in records:
        value = record if isinstance(record, bytes) else json.dumps(record, separators=(",", ":")).encode("utf-8")
        k = key(record) if callable(key) else key
        producer.send(topic, key=k.encode("utf-8") if isinstance(k, str) else k, value=value).add_errback(failures.append)
        sent += 1
    producer.flush()
    producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {sent} records were not acknowledged; first error: {failures[0]!r}")
    return sent


def _progress_bar(enabled: bool, limit: int | None, path: str | Path):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=limit, unit="ev", unit_scale=True, desc=f"-> kafka {Path(path).name}", smoothing=0.1)


app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def cli(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="REES46 CSV (plain or gzip, with or without header)."),
    topic: str | None = typer.Option(None, help="Kafka topic (default: KAFKA_TOPIC)."),
    rate: float | None = typer.Option(None, help="Events per second (default: as fast as possible)."),
    speed: float | None = typer.Option(None, help="Replay speed over event time, e.g. 60 = one hour per minute."),
    partitions: int | None = typer.Option(None, help="Partitions when the topic is created (default: KAFKA_PARTITIONS)."),
    limit: int | None = typer.Option(None, help="Stop after this many events."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Replay FILE to Kafka as JSON events keyed by session."""
    if rate is not None and speed is not None:
        raise typer.BadParameter("use --rate or --speed, not both")
    started = time.monotonic()
    bad: list[BadLine] = []
    try:
        n = produce_file(
            file, topic, rate=rate, speed=speed, partitions=partitions, limit=limit, progress=not quiet, on_bad_line=bad.append
        )
    except KeyboardInterrupt as exc:
        typer.echo(f"\ninterrupted: {getattr(exc, 'sent', 0):,} events sent and flushed", err=True)
        raise typer.Exit(130) from None
    elapsed = time.monotonic() - started
    typer.echo(f"sent {n:,} records to {topic or config.load()['KAFKA_TOPIC']} in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f} ev/s)")
    if bad:
        typer.echo(describe_bad_lines(file, bad), err=True)


def describe_bad_lines(path: str | Path, bad: list[BadLine], show: int = 3) -> str:
    """A short note on the lines of ``path`` that were sent for quarantine (for people, not parsing)."""
    first = "; ".join(f"line {b.line}: {b.problem}" for b in bad[:show])
    more = f"; and {len(bad) - show:,} more" if len(bad) > show else ""
    return f"{len(bad):,} line(s) of {Path(path).name} hold no readable event and were sent for quarantine ({first}{more})"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # Scripts and `&` start children with SIGINT ignored; stop cleanly on SIGINT and SIGTERM anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    app()


if __name__ == "__main__":
    main()
