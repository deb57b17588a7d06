"""Helpers for the dbt tests: put events into bronze, run dbt in-process, read marts.

The dbt tests do not depend on the real ingest (another component): they write
REES46 rows straight into the bronze Delta path with the bronze contract's schema
(``source='file'``, Kafka columns null), which is all the dbt sources rely on.
Also usable from the command line to seed a development lakehouse:
``python -m tests.integration.dbt_support load FILE.csv [--append]``.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from lakehouse import config
from streaming.events import BRONZE_COLUMNS, CSV_COLUMNS, QUARANTINE_COLUMNS, ddl

REPO_ROOT = config.REPO_ROOT


def read_rees46_csv(path: Path) -> pd.DataFrame:
    """Read a REES46 CSV (header line or not) with the contract's column names and exact types."""
    with open(path) as fh:
        first = fh.readline()
    header = 0 if first.startswith("event_time") else None
    df = pd.read_csv(
        path,
        header=header,
        names=list(CSV_COLUMNS),
        dtype={"product_id": "int64", "category_id": "int64", "user_id": "int64", "category_code": "string", "brand": "string"},
        keep_default_na=False,
        na_values={"category_code": [""], "brand": [""], "user_session": [""]},
    )
    df["event_time"] = pd.to_datetime(df["event_time"].str.replace(" UTC", "", regex=False), format="%Y-%m-%d %H:%M:%S")
    df["source_line"] = range(1, len(df) + 1)
    df["source_file"] = str(path)
    return df


def synthetic_events(n_users: int = 60, days: int = 4, seed: int = 7, start: str = "2019-11-01") -> pd.DataFrame:
    """Small deterministic REES46-like events over several days: sessions with views, carts,
    removes and purchases, some buy-now purchases, some null user_session rows, exact
    duplicates and zero prices — the cases the marts must handle."""
    rng = random.Random(seed)
    cats = [
        ("electronics.smartphone", "samsung"),
        ("appliances.kitchen.washer", "lg"),
        ("computers.notebook", "acer"),
        (None, None),
        ("furniture.living_room.sofa", None),
        ("apparel.shoes", "nike"),
    ]
    t0 = datetime.fromisoformat(start)
    rows: list[dict] = []
    for user in range(1, n_users + 1):
        user_id = 500_000_000 + user
        for s in range(rng.randint(1, 3)):
            session_start = t0 + timedelta(days=rng.randrange(days), seconds=rng.randrange(86_000))
            null_session = rng.random() < 0.15
            session = None if null_session else f"s-{user}-{s}-{rng.getrandbits(32):08x}"
            t = session_start
            for _ in range(rng.randint(1, 8)):
                cat_i = rng.randrange(len(cats))
                code, brand = cats[cat_i]
                product = 1_000_000 + cat_i * 100 + rng.randrange(5)
                price = 0.0 if rng.random() < 0.05 else round(rng.uniform(5, 900), 2)
                r = rng.random()
                event_type = "view" if r < 0.65 else "cart" if r < 0.8 else "remove_from_cart" if r < 0.85 else "purchase"
                row = {
                    "event_time": t,
                    "event_type": event_type,
                    "product_id": product,
                    "category_id": 2_053_013_555_631_882_000 + cat_i,
                    "category_code": code,
                    "brand": brand,
                    "price": price,
                    "user_id": user_id,
                    "user_session": session,
                }
                rows.append(row)
                if rng.random() < 0.05:
                    rows.append(dict(row))  # an exact duplicate, as REES46 November has
                t += timedelta(seconds=rng.randint(0, 900) if not null_session else rng.choice([20, 60, 2400]))
    df = pd.DataFrame(rows).sort_values("event_time", kind="stable").reset_index(drop=True)
    df["source_file"] = "synthetic"
    df["source_line"] = range(1, len(df) + 1)
    return df


def write_bronze(
    spark, events: pd.DataFrame, *, mode: str = "append", cfg: config.Config | None = None, ingested_at: datetime | None = None
) -> int:
    """Append (or overwrite) events into the bronze Delta path with the bronze contract's schema."""
    cfg = cfg or config.load()
    df = events.copy()
    for col in ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"):
        df[col] = None
    df["source"] = "file"
    df["event_date"] = pd.to_datetime(df["event_time"]).dt.date
    df["ingested_at"] = ingested_at or datetime.now(UTC).replace(tzinfo=None)
    for col in ("source_file", "source_line"):
        if col not in df:
            df[col] = None
    names = [c.name for c in BRONZE_COLUMNS]
    df = df[names].astype(object).where(df[names].notna(), None)
    sdf = spark.createDataFrame([tuple(_py(v) for v in r) for r in df.itertuples(index=False, name=None)], schema=ddl(BRONZE_COLUMNS))
    sdf.write.format("delta").mode(mode).partitionBy("event_date").save(str(cfg.table_path("bronze", "events")))
    return len(df)


def _py(value: object) -> object:
    """pandas/numpy scalars to the plain Python values Spark's schema check accepts."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def ensure_quarantine(spark, cfg: config.Config | None = None) -> None:
    """Create an empty quarantine table if the ingest has not written one yet."""
    cfg = cfg or config.load()
    path = cfg.table_path("bronze", "quarantine")
    if not (path / "_delta_log").exists():
        spark.createDataFrame([], ddl(QUARANTINE_COLUMNS)).write.format("delta").partitionBy("ingested_date").save(str(path))


def dbt(*args: str) -> object:
    """Run a dbt command in-process (reusing the running SparkSession) and fail loudly on error."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke([*args, "--project-dir", str(REPO_ROOT), "--profiles-dir", str(REPO_ROOT)])
    if not result.success:
        raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or _failures(result)}")
    return result


def _failures(result) -> str:
    try:
        return "; ".join(f"{r.node.name}: {r.status} {r.message}" for r in result.result if str(r.status) not in ("success", "pass"))
    except Exception:  # pragma: no cover - best effort message
        return "see dbt logs"


def main() -> None:
    """`load FILE [--append]` or `synthetic [--append]`: seed bronze of $LAKEHOUSE_DIR for development."""
    from lakehouse.spark import get_spark

    args = sys.argv[1:]
    spark = get_spark("dbt-support", catalog=False)
    mode = "append" if "--append" in args else "overwrite"
    events = synthetic_events() if args[0] == "synthetic" else read_rees46_csv(Path(args[1]))
    print(f"wrote {write_bronze(spark, events, mode=mode)} rows")
    ensure_quarantine(spark)


if __name__ == "__main__":
    main()
