"""Read REES46 clickstream CSV files (real or generated) into typed pandas chunks.

The month files are 9 GB / 67 M rows, so nothing here loads a whole file: the
CSV is parsed by Arrow's multi-threaded streaming reader and handed out in
row chunks of a fixed size. Ids stay exact 64-bit integers end to end (a
19-digit ``category_id`` does not survive a trip through float64), empty
fields become nulls of pandas' nullable dtypes, and every row keeps the
1-based line it came from (``source_line``) so the backfill and the producer
can point back at the file.

Malformed input is not skipped: the fast path fails, and the file is then
re-read from the start of the failing chunk, line by line, to raise a
``ValueError`` that names the file, the line and the field. Usage from the
command line: ``python -m streaming.rees46 FILE`` prints a summary.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import typer

from streaming.events import CSV_COLUMNS, EVENT_TIME_FORMAT

GZIP_MAGIC = b"\x1f\x8b"
INT_COLUMNS: tuple[str, ...] = ("product_id", "category_id", "user_id")
FLOAT_COLUMNS: tuple[str, ...] = ("price",)
TIME_COLUMN = "event_time"
STRING_COLUMNS: tuple[str, ...] = tuple(c for c in CSV_COLUMNS if c not in (*INT_COLUMNS, *FLOAT_COLUMNS, TIME_COLUMN))
OUTPUT_COLUMNS: tuple[str, ...] = (*CSV_COLUMNS, "source_line")
DEFAULT_CHUNKSIZE = 500_000

_INT_RE = re.compile(r"-?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TYPES_MAPPER = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype(), pa.string(): pd.StringDtype("pyarrow")}.get


def is_gzip(path: str | Path) -> bool:
    """True when the file starts with the gzip magic bytes, whatever its name says."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: str | Path) -> IO[bytes]:
    """The file's decompressed bytes (gzip detected by content, not extension)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def has_header(path: str | Path) -> bool:
    """True when the first line is a header (its first field is ``event_time``).

    A header must list the REES46 columns in their published order: a file whose
    columns are ordered differently would be read into the wrong fields silently,
    so it is refused here.
    """
    with open_binary(path) as fh:
        first = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    fields = next(csv.reader([first]), [])
    if not fields or fields[0].strip() != "event_time":
        return False
    if tuple(f.strip() for f in fields) != CSV_COLUMNS:
        raise ValueError(f"{path} line 1: header {fields} is not the REES46 column order {list(CSV_COLUMNS)}")
    return True


def iter_events(path: str | Path, chunksize: int = DEFAULT_CHUNKSIZE) -> Iterator[pd.DataFrame]:
    """Yield the file's events as typed DataFrames of at most ``chunksize`` rows.

    Columns: ``CSV_COLUMNS`` plus ``source_line``. Dtypes: ``event_time``
    datetime64[ns, UTC]; ids ``Int64``; ``price`` ``Float64``; text ``string``.
    Memory stays bounded by a few chunks regardless of the file size.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be positive, got {chunksize}")
    path = Path(path)
    first_line = 2 if has_header(path) else 1
    next_line = first_line
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        with open_binary(path) as raw:
            reader = _open_reader(raw, skip_rows=first_line - 1, chunksize=chunksize)
            for batch in reader:
                pending.append(batch)
                pending_rows += batch.num_rows
                while pending_rows >= chunksize:
                    table = pa.Table.from_batches(pending)
                    head, rest = table.slice(0, chunksize), table.slice(chunksize)
                    yield _typed(head, path, next_line)
                    next_line += head.num_rows
                    pending, pending_rows = rest.to_batches(), rest.num_rows
        if pending_rows:
            yield _typed(pa.Table.from_batches(pending), path, next_line)
    except pa.ArrowInvalid as exc:
        _diagnose(path, next_line)
        raise ValueError(f"{path}: unreadable CSV after line {next_line - 1}: {exc}") from exc


def read_events(path: str | Path) -> pd.DataFrame:
    """The whole file as one DataFrame: for samples and tests, not month files."""
    chunks = list(iter_events(path))
    if not chunks:
        return _typed(pa.table({c: pa.array([], pa.string()) for c in CSV_COLUMNS}), Path(path), 1)
    return pd.concat(chunks, ignore_index=True)


def iter_raw_records(path: str | Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_no, {column: raw text})`` with values untouched.

    For a producer that forwards the file as it is (including values the typed
    loader would refuse). Only the field count is checked, because without it
    the values cannot be assigned to columns at all.
    """
    path = Path(path)
    skip = 1 if has_header(path) else 0
    with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        for line_no, fields in enumerate(csv.reader(text), start=1):
            if line_no <= skip:
                continue
            if len(fields) != len(CSV_COLUMNS):
                raise ValueError(f"{path} line {line_no}: expected {len(CSV_COLUMNS)} fields, found {len(fields)}")
            yield line_no, dict(zip(CSV_COLUMNS, fields, strict=True))


def format_event_time(ts: pd.Timestamp | datetime) -> str:
    """The REES46 text form of a timestamp: ``2019-11-01 00:00:00 UTC``."""
    return ts.strftime(EVENT_TIME_FORMAT)


def _open_reader(raw: IO[bytes], skip_rows: int, chunksize: int) -> pacsv.CSVStreamingReader:
    # ~120 bytes per REES46 line: size the Arrow blocks near the requested chunk.
    block_size = min(max(chunksize * 128, 1 << 16), 64 << 20)
    return pacsv.open_csv(
        raw,
        read_options=pacsv.ReadOptions(column_names=list(CSV_COLUMNS), skip_rows=skip_rows, block_size=block_size),
        # Blank lines are kept (and rejected as rows of the wrong width) so that
        # row i of the stream is always physical line first_line + i.
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(CSV_COLUMNS, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _typed(table: pa.Table, path: Path, first_line: int) -> pd.DataFrame:
    """Cast one chunk of text columns to the event types; diagnose on failure."""
    try:
        columns: dict[str, pa.ChunkedArray] = {}
        for name in CSV_COLUMNS:
            col = table.column(name)
            if name in INT_COLUMNS:
                col = pc.cast(col, pa.int64())
            elif name in FLOAT_COLUMNS:
                col = pc.cast(col, pa.float64())
            elif name == TIME_COLUMN:
                col = pc.cast(pc.strptime(col, format=EVENT_TIME_FORMAT, unit="s", error_is_null=False), pa.timestamp("ns", tz="UTC"))
            columns[name] = col
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        _diagnose(path, first_line, first_line + table.num_rows)
        raise ValueError(f"{path} lines {first_line}..{first_line + table.num_rows - 1}: {exc}") from exc
    if columns[TIME_COLUMN].null_count and _any_blank_row(table):
        # Arrow reads a blank line as a row of nulls; only the raw text tells it
        # apart from a line of nine empty fields, so look at the text.
        _diagnose(path, first_line, first_line + table.num_rows)
    frame = pa.table(columns).to_pandas(types_mapper=_TYPES_MAPPER)
    frame["source_line"] = pd.RangeIndex(first_line, first_line + len(frame)).to_numpy(dtype="int64")
    return frame


def _any_blank_row(table: pa.Table) -> bool:
    """True when some row has every field null (a blank line or a line of empty fields)."""
    all_null = pc.is_null(table.column(0))
    for name in table.column_names[1:]:
        all_null = pc.and_(all_null, pc.is_null(table.column(name)))
    return bool(pc.any(all_null).as_py())


def _diagnose(path: Path, start_line: int, end_line: int | None = None) -> None:
    """Re-read the file from ``start_line`` (up to ``end_line``, exclusive) and raise on the first bad line.

    Slow (pure Python) but only runs once the fast path has already failed, so
    the user gets the exact line and field instead of Arrow's chunk-level message.
    """
    with open_binary(path) as raw:
        for line_no, line in enumerate(raw, start=1):
            if line_no < start_line:
                continue
            if end_line is not None and line_no >= end_line:
                return
            problem = _line_problem(line)
            if problem:
                raise ValueError(f"{path} line {line_no}: {problem}")


def _line_problem(line: bytes) -> str | None:
    """What is wrong with one raw CSV line, or None when it parses."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 ({exc.reason} at byte {exc.start})"
    fields = next(csv.reader([text]), [])
    if len(fields) != len(CSV_COLUMNS):
        return f"expected {len(CSV_COLUMNS)} fields, found {len(fields)}"
    record = dict(zip(CSV_COLUMNS, fields, strict=True))
    for name in INT_COLUMNS:
        value = record[name]
        if value and (not _INT_RE.fullmatch(value) or not _INT64_MIN <= int(value) <= _INT64_MAX):
            return f"{name} {value!r} is not an integer"
    for name in FLOAT_COLUMNS:
        value = record[name]
        try:
            if value:
                float(value)
        except ValueError:
            return f"{name} {value!r} is not a number"
    value = record[TIME_COLUMN]
    if value:
        try:
            datetime.strptime(value, EVENT_TIME_FORMAT)
        except ValueError:
            return f"{TIME_COLUMN} {value!r} is not a time like '2019-11-01 00:00:00 UTC'"
    return None


app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def summary(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="REES46 CSV file, plain or gzip, with or without header."),
    chunksize: int = typer.Option(DEFAULT_CHUNKSIZE, help="Rows per chunk while streaming."),
) -> None:
    """Stream FILE once and print rows, event mix, null counts and time range."""
    from rich.console import Console
    from rich.progress import Progress

    rows, types, nulls = 0, pd.Series(dtype="int64"), pd.Series(dtype="int64")
    t_min, t_max = None, None
    with Progress(transient=True) as progress:
        task = progress.add_task("reading", total=None)
        for chunk in iter_events(path, chunksize=chunksize):
            rows += len(chunk)
            types = types.add(chunk["event_type"].value_counts(), fill_value=0)
            nulls = nulls.add(chunk[list(CSV_COLUMNS)].isna().sum(), fill_value=0)
            lo, hi = chunk["event_time"].min(), chunk["event_time"].max()
            t_min = lo if t_min is None or lo < t_min else t_min
            t_max = hi if t_max is None or hi > t_max else t_max
            progress.update(task, advance=len(chunk), description=f"{rows:,} rows")
    console = Console()
    console.print(f"[bold]{path}[/]: {rows:,} rows, {t_min} .. {t_max}")
    for name, count in types.sort_values(ascending=False).items():
        console.print(f"  {name:<18} {int(count):>12,}  {count / max(rows, 1):7.2%}")
    console.print("  nulls: " + ", ".join(f"{k}={int(v):,}" for k, v in nulls.items() if v))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
