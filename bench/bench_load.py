"""Sustained load: the demo data set pushed through Kafka into bronze for minutes; is memory flat?

The streaming ingest runs as its own process (``python -m streaming.ingest``) on a
fresh topic and a private lakehouse folder, while this process replays the demo
data set into the topic in a loop (as fast as the producer goes, or at ``--rate``)
for ``--minutes``. Every few seconds it samples:

* records produced (topic end offsets) and records ingested (the offsets of the
  ingest's last committed micro-batch, read from its checkpoint; no Spark here),
* the RSS of the ingest process tree (Python + its Spark JVM), of the Kafka broker
  and of this producer process alone (the ingest is its child; a tree would count it twice),
* the old-generation heap in use of the two JVMs (``jstat``): RSS of a JVM rises while
  it grows its heap towards ``-Xmx``; the old generation after a collection is what it
  keeps, the figure that shows a leak.

It prints the samples per minute, the sustained ingest rate, the lag at the end,
and peak RSS in the first and the last minute side by side with their ratio (a
ratio near 1 means flat memory), and the same for the JVMs' old generation. At the end it checks exactly-once with the
reconciliation report (every Kafka record once in bronze or quarantine).

Usage: ``python -m bench.bench_load [--minutes 5] [--events 300000] [--rate 0]``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil
import typer
from rich.table import Table

from bench import bench_console
from lakehouse import config, services
from streaming import reconcile
from streaming.generate import generate
from streaming.producer import ensure_topic, produce_file
from streaming.scorer_state import last_committed_batch

console = bench_console()


@dataclass
class Sample:
    t: float
    produced: int
    ingested: int
    rss_ingest: float
    rss_broker: float
    rss_producer: float
    old_ingest: float
    old_broker: float


def tree_rss_mib(pid: int | None) -> float:
    """RSS of a process and its children (MiB); 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except psutil.Error:
        return 0.0


def own_rss_mib(pid: int) -> float:
    """RSS of one process without its children (MiB).

    For the producer, which is this process: the ingest it launched is its child, so
    the tree would count the ingest's JVM a second time.
    """
    return psutil.Process(pid).memory_info().rss / 2**20


def jvm_old_gen_mib(pid: int | None) -> float:
    """Old-generation heap in use (MiB) of the JVM at ``pid`` or among its children; 0 if none answers.

    RSS of a JVM grows while it expands its heap towards ``-Xmx`` even with nothing
    leaking; what the application keeps is in the old generation. Its lowest value in
    a minute (right after a collection) is the figure that must stay flat.
    """
    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        jvms = [p for p in [proc, *proc.children(recursive=True)] if p.name() == "java"]
    except psutil.Error:
        return 0.0
    for jvm in jvms:
        out = subprocess.run(["jstat", "-gc", str(jvm.pid)], capture_output=True, text=True, check=False).stdout.split()
        if "OU" in out:
            half = len(out) // 2
            return float(out[half + out.index("OU")]) / 1024  # jstat reports KiB
    return 0.0


def committed_offsets(checkpoint: Path) -> int:
    """Records the ingest has committed: the end offsets of its last committed micro-batch."""
    last = last_committed_batch(checkpoint)
    return 0 if last is None else sum(o for parts in last.end_offsets.values() for o in parts.values())


def demo_file(cfg: config.Config, events: int) -> Path:
    path = cfg.lakehouse_dir / "input" / f"load-demo-{events}.csv.gz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, events=events, start=date(2019, 11, 1), days=14, seed=42)
    return path


def produce_loop(path: Path, topic: str, bootstrap: str, rate: float | None, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            produce_file(path, topic=topic, rate=rate, bootstrap=bootstrap, on_sent=lambda _n: _raise_if(stop))
        except _Stopped:
            return


class _Stopped(Exception):
    pass


def _raise_if(stop: threading.Event) -> None:
    if stop.is_set():
        raise _Stopped


def per_minute(samples: list[Sample]) -> Table:
    table = Table(title="sustained load, per minute")
    for col in (
        "minute",
        "produced",
        "ingested",
        "lag",
        "ingest rec/s",
        "RSS ingest MiB",
        "RSS broker MiB",
        "RSS producer MiB",
        "old gen ingest MiB",
        "old gen broker MiB",
    ):
        table.add_column(col, justify="right")
    prev = samples[0]
    minute = 1
    for s in samples[1:]:
        if s.t >= minute * 60 or s is samples[-1]:
            window = [x for x in samples if (minute - 1) * 60 <= x.t <= s.t]
            rate = (s.ingested - prev.ingested) / max(s.t - prev.t, 1e-9)
            table.add_row(
                str(minute),
                f"{s.produced:,}",
                f"{s.ingested:,}",
                f"{s.produced - s.ingested:,}",
                f"{rate:,.0f}",
                f"{max(x.rss_ingest for x in window):,.0f}",
                f"{max(x.rss_broker for x in window):,.0f}",
                f"{max(x.rss_producer for x in window):,.0f}",
                f"{min(x.old_ingest for x in window):,.0f}",
                f"{min(x.old_broker for x in window):,.0f}",
            )
            prev, minute = s, minute + 1
    return table


def main(
    minutes: float = typer.Option(5.0, help="How long the producer pushes."),
    events: int = typer.Option(300_000, help="Size of the demo data set replayed in a loop."),
    rate: float = typer.Option(0, help="Producer events/s; 0 = as fast as it goes."),
    partitions: int = typer.Option(2, help="Partitions of the load topic."),
    trigger_seconds: int = typer.Option(5, help="Ingest micro-batch interval."),
    sample_seconds: float = typer.Option(5.0, help="Sampling interval."),
) -> None:
    """Push the demo data set through Kafka into bronze for minutes; print rates, lag and RSS start vs end."""
    cfg = config.load()
    kafka = services.all_services(cfg).get("kafka")
    if kafka is not None:
        kafka.start()
    bootstrap = cfg.kafka_bootstrap
    path = demo_file(cfg, events)
    topic = f"load-{int(time.time())}"
    ensure_topic(topic, partitions=partitions, bootstrap=bootstrap)
    lake = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = {**os.environ, "LAKEHOUSE_DIR": str(lake), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    run_cfg = config.load(env)
    log = open(lake / "ingest.log", "wb")  # noqa: SIM115 - closed at the end
    ingest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streaming.ingest",
            "--topic",
            topic,
            "--starting-offsets",
            "earliest",
            "--trigger-seconds",
            str(trigger_seconds),
        ],
        cwd=config.REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    checkpoint = run_cfg.checkpoints_dir / f"ingest-{topic}"
    stop = threading.Event()
    producer = threading.Thread(target=produce_loop, args=(path, topic, bootstrap, rate or None, stop), daemon=True)
    samples: list[Sample] = []
    broker_pid = kafka.pid() if kafka is not None else None

    def sample(t0: float) -> Sample:
        s = Sample(
            time.monotonic() - t0,
            sum(end - begin for begin, end in reconcile.kafka_offsets(bootstrap, topic).values()),
            committed_offsets(checkpoint),
            tree_rss_mib(ingest.pid),
            tree_rss_mib(broker_pid),
            own_rss_mib(os.getpid()),
            jvm_old_gen_mib(ingest.pid),
            jvm_old_gen_mib(broker_pid),
        )
        samples.append(s)
        return s

    time.sleep(20)  # the ingest's JVM starts before the clock does
    t0 = time.monotonic()
    producer.start()
    with console.status("pushing load ...") as status:
        while time.monotonic() - t0 < minutes * 60:
            s = sample(t0)
            status.update(f"{s.t:5.0f}s  produced {s.produced:,}  ingested {s.ingested:,}  ingest RSS {s.rss_ingest:,.0f} MiB")
            time.sleep(sample_seconds)
        stop.set()
        producer.join()
        end = sample(t0)
        status.update("producer stopped; letting the ingest catch up ...")
        deadline = time.monotonic() + 300
        while committed_offsets(checkpoint) < end.produced and time.monotonic() < deadline and ingest.poll() is None:
            time.sleep(2)
        caught_up = sample(t0)
    ingest.terminate()
    ingest.wait(120)
    log.close()

    console.print(per_minute(samples))
    first = [s for s in samples if s.t <= 60]
    last = [s for s in samples if end.t - 60 <= s.t <= end.t]
    sustained = end.ingested / end.t if end.t else 0.0
    console.print(f"producer pushed {end.produced:,} records in {end.t:.0f}s = {end.produced / end.t:,.0f} rec/s")
    console.print(
        f"ingest committed {end.ingested:,} records by then = {sustained:,.0f} rec/s sustained; lag at the end {end.produced - end.ingested:,}"
    )
    console.print(f"caught up after the producer stopped: {caught_up.ingested >= end.produced} ({caught_up.t - end.t:.0f}s)")
    rss = Table(title="peak RSS (MiB): first minute vs last minute")
    for col in ("process", "first minute", "last minute", "last / first"):
        rss.add_column(col, justify="right")
    for name, attr in (("ingest (Python + Spark JVM)", "rss_ingest"), ("Kafka broker", "rss_broker"), ("producer", "rss_producer")):
        a, b = max(getattr(s, attr) for s in first), max(getattr(s, attr) for s in last)
        rss.add_row(name, f"{a:,.0f}", f"{b:,.0f}", f"{b / a:.2f}" if a else "-")
    console.print(rss)
    old = Table(title="JVM old generation in use, lowest in the minute (MiB): what the process keeps")
    for col in ("process", "first minute", "last minute", "last / first"):
        old.add_column(col, justify="right")
    for name, attr in (("ingest (Spark JVM)", "old_ingest"), ("Kafka broker", "old_broker")):
        a, b = min(getattr(s, attr) for s in first), min(getattr(s, attr) for s in last)
        old.add_row(name, f"{a:,.0f}", f"{b:,.0f}", f"{b / a:.2f}" if a else "-")
    console.print(old)

    from lakehouse.spark import get_spark

    spark = get_spark("bench-load", catalog=False, cfg=run_cfg)
    reports = reconcile.reconcile(spark, run_cfg, topic)
    console.print(reconcile.render(reports, topic))
    console.print(f"lakehouse of this run: {lake} (delete it when done)")


if __name__ == "__main__":
    typer.run(main)
