"""Read REES46 clickstream CSV files (real or generated) into typed pandas chunks.

The month files are 9 GB / 67 M rows, so nothing here loads a whole file: lines
are read in blocks of a fixed size, their shape checked with byte operations, and
each block parsed and typed by Arrow. Ids stay exact 64-bit integers end to end (a
19-digit ``category_id`` does not survive a trip through float64), empty fields
become nulls of pandas' nullable dtypes, and every row keeps the 1-based line it
came from (``source_line``) so the backfill and the producer can point back at the
file.

Real files are dirty: a download cut short ends in a truncated line, Windows tools
write CR LF and a byte order mark. Malformed input is never skipped silently:
either it raises a ``ValueError`` that names the file, the line and the field, or
(with ``on_bad_line``) each bad line is handed over verbatim, for quarantine.
Usage from the command line: ``python -m streaming.rees46 FILE`` prints a summary.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
UTF8_BOM = b"\xef\xbb\xbf"
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
        first = fh.readline().removeprefix(UTF8_BOM).decode("utf-8", errors="replace").rstrip("\r\n")
    fields = next(csv.reader([first]), [])
    if not fields or fields[0].strip() != "event_time":
        return False
    if tuple(f.strip() for f in fields) != CSV_COLUMNS:
        raise ValueError(f"{path} line 1: header {fields} is not the REES46 column order {list(CSV_COLUMNS)}")
    return True


@dataclass(frozen=True)
class BadLine:
    """A line of the file that holds no readable event: kept as it was, for quarantine.

    ``raw`` is the line's bytes without its line end (CR LF or LF), exactly as in
    the file; ``problem`` says what is wrong, for a human.
    """

    line: int
    raw: bytes
    problem: str


def iter_events(
    path: str | Path, chunksize: int = DEFAULT_CHUNKSIZE, on_bad_line: Callable[[BadLine], None] | None = None
) -> Iterator[pd.DataFrame]:
    """Yield the file's events as typed DataFrames of at most ``chunksize`` rows.

    Columns: ``CSV_COLUMNS`` plus ``source_line``. Dtypes: ``event_time``
    datetime64[ns, UTC]; ids ``Int64``; ``price`` ``Float64``; text ``string``.
    Memory stays bounded by a few chunks regardless of the file size.

    A line that is not an event (a truncated last line, a value of the wrong type,
    invalid UTF-8) raises a ``ValueError`` naming the file, the line and the field,
    unless ``on_bad_line`` is given: then it is handed to that callback, left out of
    the chunks, and reading goes on (the producer sends such lines on for quarantine,
    as the backfill does). Blank lines carry no event and are skipped in that mode,
    as the backfill skips them. A byte order mark and CR LF line ends are read as the
    encoding details they are.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be positive, got {chunksize}")
    path = Path(path)
    for numbers, lines, bad in _line_blocks(path, chunksize, skip_blank=on_bad_line is not None):
        for b in bad:
            if on_bad_line is None:
                raise ValueError(f"{path} line {b.line}: {b.problem}")
            on_bad_line(b)
        if lines:
            yield _typed_block(path, numbers, lines, on_bad_line)


def _line_blocks(path: Path, size: int, skip_blank: bool) -> Iterator[tuple[list[int], list[bytes], list[BadLine]]]:
    """The file's data lines in blocks of at most ``size``: (line numbers, lines, lines of the wrong shape).

    Only the shape is checked here (UTF-8, nine fields): with byte counts for the
    usual line without quotes, in full for the others; values are typed by Arrow per block.
    """
    header = has_header(path)
    commas = len(CSV_COLUMNS) - 1
    numbers: list[int] = []
    lines: list[bytes] = []
    bad: list[BadLine] = []
    with open_binary(path) as raw:
        for line_no, line in enumerate(_raw_lines(raw), start=1):
            line = line.rstrip(b"\r")
            if line_no == 1:
                line = line.removeprefix(UTF8_BOM)
                if header:
                    continue
            # The usual line, eight commas and no quotes, is well shaped; its UTF-8 is checked per block.
            if line.count(b",") != commas or b'"' in line:
                if skip_blank and not line.strip():
                    continue
                problem = _shape_problem(line)
                if problem:
                    bad.append(BadLine(line_no, line, problem))
                    continue
            numbers.append(line_no)
            lines.append(line)
            if len(lines) >= size:
                yield _utf8_checked(numbers, lines, bad)
                numbers, lines, bad = [], [], []
    if lines or bad:
        yield _utf8_checked(numbers, lines, bad)


def _raw_lines(raw: IO[bytes], read_size: int = 1 << 20) -> Iterator[bytes]:
    """The stream's lines without their LF, read in large pieces (``GzipFile.readline`` runs in Python, per line)."""
    rest = b""
    while piece := raw.read(read_size):
        lines = (rest + piece).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _utf8_checked(numbers: list[int], lines: list[bytes], bad: list[BadLine]) -> tuple[list[int], list[bytes], list[BadLine]]:
    """The block with any line of invalid UTF-8 moved to ``bad`` (one decode of the block when all are valid)."""
    try:
        b"\n".join(lines).decode("utf-8")
        return numbers, lines, bad
    except UnicodeDecodeError:
        pass
    keep_numbers, keep_lines = [], []
    for number, line in zip(numbers, lines, strict=True):
        problem = _shape_problem(line)
        if problem:
            bad.append(BadLine(number, line, problem))
        else:
            keep_numbers.append(number)
            keep_lines.append(line)
    bad.sort(key=lambda b: b.line)
    return keep_numbers, keep_lines, bad


def _shape_problem(line: bytes) -> str | None:
    """Why a raw line cannot be split into the nine REES46 fields, or None."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 ({exc.reason} at byte {exc.start})"
    n = text.count(",") + 1 if '"' not in text else len(next(csv.reader([text]), []))
    if not text:
        n = 0
    return None if n == len(CSV_COLUMNS) else f"expected {len(CSV_COLUMNS)} fields, found {n}"


def _typed_block(path: Path, numbers: list[int], lines: list[bytes], on_bad_line: Callable[[BadLine], None] | None) -> pd.DataFrame:
    """One block of well-shaped lines as a typed chunk; lines with a value of the wrong type are reported or raised."""
    try:
        return _typed(_read_block(lines), numbers)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Rare: find the lines at fault one by one (pure Python, this block only).
    keep_numbers, keep_lines = [], []
    for number, line in zip(numbers, lines, strict=True):
        problem = _line_problem(line)
        if problem is None:
            keep_numbers.append(number)
            keep_lines.append(line)
        elif on_bad_line is None:
            raise ValueError(f"{path} line {number}: {problem}")
        else:
            on_bad_line(BadLine(number, line, problem))
    return _typed(_read_block(keep_lines), keep_numbers)


def read_events(path: str | Path) -> pd.DataFrame:
    """The whole file as one DataFrame: for samples and tests, not month files."""
    chunks = list(iter_events(path))
    if not chunks:
        return _typed(_read_block([]), [])
    return pd.concat(chunks, ignore_index=True)


def iter_raw_records(path: str | Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_no, {column: raw text})`` with values untouched.

    For a producer that forwards the file as it is (including values the typed
    loader would refuse). Only the field count is checked, because without it
    the values cannot be assigned to columns at all.
    """
    path = Path(path)
    skip = 1 if has_header(path) else 0
    with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        for line_no, fields in enumerate(csv.reader(text), start=1):
            if line_no <= skip:
                continue
            if len(fields) != len(CSV_COLUMNS):
                raise ValueError(f"{path} line {line_no}: expected {len(CSV_COLUMNS)} fields, found {len(fields)}")
            yield line_no, dict(zip(CSV_COLUMNS, fields, strict=True))


def format_event_time(ts: pd.Timestamp | datetime) -> str:
    """The REES46 text form of a timestamp: ``2019-11-01 00:00:00 UTC``."""
    return ts.strftime(EVENT_TIME_FORMAT)


def _read_block(lines: list[bytes]) -> pa.Table:
    """Well-shaped lines parsed by Arrow into text columns (empty fields as nulls)."""
    if not lines:
        return pa.table({c: pa.array([], pa.string()) for c in CSV_COLUMNS})
    return pacsv.read_csv(
        io.BytesIO(b"\n".join(lines) + b"\n"),
        read_options=pacsv.ReadOptions(column_names=list(CSV_COLUMNS), use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(CSV_COLUMNS, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _typed(table: pa.Table, numbers: list[int]) -> pd.DataFrame:
    """Cast one block of text columns to the event types (raises Arrow's error on a bad value)."""
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
    frame = pa.table(columns).to_pandas(types_mapper=_TYPES_MAPPER)
    frame["source_line"] = pd.Series(numbers, dtype="int64").to_numpy()
    return frame


def _line_problem(line: bytes) -> str | None:
    """What is wrong with one raw CSV line, or None when it parses."""
    problem = _shape_problem(line)
    if problem:
        return problem
    fields = next(csv.reader([line.decode("utf-8")]), [])
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
    """Stream FILE once and print rows, event mix, null counts, time range and the lines that hold no event."""
    from rich.console import Console
    from rich.progress import Progress

    rows, types, nulls = 0, pd.Series(dtype="int64"), pd.Series(dtype="int64")
    t_min, t_max = None, None
    bad: list[BadLine] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("reading", total=None)
        for chunk in iter_events(path, chunksize=chunksize, on_bad_line=bad.append):
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
    if bad:
        first = "; ".join(f"line {b.line}: {b.problem}" for b in bad[:3])
        console.print(f"  [yellow]{len(bad):,} line(s) hold no readable event[/] ({first})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
