"""Where the validation's time goes: each stage of ``streaming.validate`` against the plain JSON parse, in one JVM.

The ingest and the scorer both judge every record with ``validate_json`` (the input
contract). This bench generates N JSON payloads as the producer sends them, caches them
in Spark (no Kafka: the read is measured by ``bench_ingest``) and times, per round,
with every column computed (Spark's ``noop`` sink):

1. baseline: ``from_json`` of the nine fields as text (what any parser must do);
2. the second parse for the key list (``json_object_keys``: duplicate and unknown keys);
3. ``parse_json_payload``: the message-level rules (size, UTF-8, one flat object);
4. ``validate_json``: those plus the field rules, typed values and the reason;
5. ``typed_events``: the scorer's read (``validate_json`` plus the event id).

Round 1 runs in a just-started JVM; later rounds show the compiled steady state.
Usage: ``python -m bench.bench_validate [--records 200000] [--rounds 3]``
"""

from __future__ import annotations

import time

import typer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from rich.table import Table

from bench import bench_console
from lakehouse import config
from lakehouse.spark import get_spark
from streaming import validate

console = bench_console()


def _stages(records: DataFrame) -> dict[str, DataFrame]:
    from streaming.scorer import typed_events

    text = F.col("value").cast("string")
    kafka_like = records.select("value", F.col("timestamp").alias("kafka_timestamp"))
    return {
        "baseline: from_json (fields as text)": records.select(validate._from_json(text).alias("f")),
        "json_object_keys (second parse)": records.select(F.json_object_keys(text).alias("k")),
        "parse_json_payload (message rules)": validate.parse_json_payload(records),
        "validate_json (all rules, typed)": validate.validate_json(kafka_like),
        "typed_events (scorer read)": typed_events(records),
    }


def _seconds(frame: DataFrame) -> float:
    started = time.monotonic()
    frame.write.format("noop").mode("overwrite").save()
    return time.monotonic() - started


def main(
    records: int = typer.Option(200_000, help="JSON payloads to validate."),
    rounds: int = typer.Option(3, min=1, help="Rounds in one JVM: the first is just started, the last the steady state."),
    seed: int = typer.Option(3),
) -> None:
    """Print each validation stage's seconds and its ratio to the plain JSON parse."""
    from bench.bench_scorer import _events  # the scorer bench's events, sent as the producer sends them
    from tests.integration.test_scorer_helpers import payloads

    cfg = config.load()
    spark = get_spark("bench-validate", catalog=False, cfg=cfg)
    values = [(value,) for _, value in payloads(_events(records, seed))]
    data = spark.createDataFrame(values, "value binary").repartition(2).select("value", F.current_timestamp().alias("timestamp")).cache()
    data.count()
    table = Table(title=f"validation of {records:,} JSON records on 2 partitions (noop sink, every column computed)")
    for col in ("round", "stage", "seconds", "µs/record", "x baseline"):
        table.add_column(col, justify="right")
    for r in range(1, rounds + 1):
        times = {name: _seconds(frame) for name, frame in _stages(data).items()}
        base = next(iter(times.values()))
        for i, (name, sec) in enumerate(times.items()):
            label = ("1: new JVM" if r == 1 else str(r)) if i == 0 else ""
            table.add_row(label, name, f"{sec:.2f}", f"{sec / records * 1e6:.1f}", f"{sec / base:.1f}")
    console.print(table)
    console.print("µs/record: wall time per record with both cores working; x baseline: seconds over the plain parse of the same round")


if __name__ == "__main__":
    typer.run(main)
