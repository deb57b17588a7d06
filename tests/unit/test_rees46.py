"""The REES46 loader reads the real sample exactly and names the line of bad input."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd
import pytest

from streaming.events import CSV_COLUMNS
from streaming.rees46 import OUTPUT_COLUMNS, iter_events, iter_raw_records, read_events


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> pd.DataFrame:
    return read_events(sample_csv)


@pytest.fixture(scope="module")
def sample_lines(sample_csv: Path) -> list[str]:
    return sample_csv.read_text(encoding="utf-8").splitlines(keepends=True)


def test_sample_counts_match_the_published_description(sample: pd.DataFrame) -> None:
    assert len(sample) == 683
    assert sample["event_type"].value_counts().to_dict() == {"view": 678, "cart": 3, "purchase": 2}
    assert sample["category_code"].isna().sum() == 269
    assert sample["brand"].isna().sum() == 123
    assert sample["user_session"].nunique() == 240
    assert sample["user_id"].nunique() == 233
    assert sample["event_time"].min() == pd.Timestamp("2019-11-01 00:00:00", tz="UTC")
    assert sample["event_time"].max() == pd.Timestamp("2019-11-01 00:04:38", tz="UTC")


def test_columns_and_dtypes(sample: pd.DataFrame) -> None:
    assert tuple(sample.columns) == OUTPUT_COLUMNS
    assert str(sample["event_time"].dtype) == "datetime64[ns, UTC]"
    for name in ("product_id", "category_id", "user_id"):
        assert sample[name].dtype == pd.Int64Dtype(), name
    assert sample["price"].dtype == pd.Float64Dtype()
    for name in ("event_type", "category_code", "brand", "user_session"):
        assert isinstance(sample[name].dtype, pd.StringDtype), name
    assert sample["source_line"].tolist() == list(range(1, 684))


def test_ids_are_exact_integers_equal_to_the_text(sample: pd.DataFrame, sample_lines: list[str]) -> None:
    text_ids = [int(line.split(",")[3]) for line in sample_lines]
    assert [int(v) for v in sample["category_id"]] == text_ids
    # A float64 could not hold these: prove the test would notice a float detour.
    assert any(int(float(v)) != v for v in text_ids)
    assert sample.loc[0, "category_id"] == 2053013555631882655
    assert [int(line.split(",")[2]) for line in sample_lines] == [int(v) for v in sample["product_id"]]


def test_values_of_the_first_row(sample: pd.DataFrame) -> None:
    row = sample.iloc[0]
    assert row["event_type"] == "view"
    assert row["product_id"] == 1003461
    assert row["category_code"] == "electronics.smartphone"
    assert row["brand"] == "xiaomi"
    assert row["price"] == pytest.approx(489.07)
    assert row["user_id"] == 520088904
    assert row["user_session"] == "4d3b30da-a5e4-49df-b1a8-ba5943f1dd33"


def test_gzip_and_header_copies_load_identically(sample: pd.DataFrame, sample_lines: list[str], tmp_path: Path) -> None:
    gz = tmp_path / "no-extension.dat"  # detected by magic bytes, not by name
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.writelines(sample_lines)
    headed = tmp_path / "headed.csv"
    headed.write_text(",".join(CSV_COLUMNS) + "\n" + "".join(sample_lines), encoding="utf-8")
    headed_gz = tmp_path / "headed.csv.gz"
    headed_gz.write_bytes(gzip.compress(headed.read_bytes()))

    pd.testing.assert_frame_equal(read_events(gz), sample)
    for path in (headed, headed_gz):
        other = read_events(path)
        pd.testing.assert_frame_equal(other.drop(columns="source_line"), sample.drop(columns="source_line"))
        assert other["source_line"].tolist() == list(range(2, 685)), "header is line 1"


@pytest.mark.parametrize("chunksize", [1, 7, 100, 683, 10_000])
def test_chunks_cover_the_file_in_order(sample: pd.DataFrame, sample_csv: Path, chunksize: int) -> None:
    chunks = list(iter_events(sample_csv, chunksize=chunksize))
    assert all(len(c) <= chunksize for c in chunks)
    assert all(len(c) == chunksize for c in chunks[:-1])
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), sample)


def _with_line(lines: list[str], line_no: int, new: str, path: Path) -> Path:
    changed = list(lines)
    changed[line_no - 1] = new
    path.write_text("".join(changed), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line_no", "edit", "message"),
    [
        (5, lambda s: s.replace(",1004775,", ",abc,"), "line 5: product_id 'abc' is not an integer"),
        (300, lambda s: s.replace("2019-11-01", "2019-13-01"), "line 300: event_time '2019-13-01"),
        (683, lambda s: s.rstrip("\n") + ",extra\n", "line 683: expected 9 fields, found 10"),
        (42, lambda s: s.rsplit(",", 1)[0] + "\n", "line 42: expected 9 fields, found 8"),
        (8, lambda s: "\n", "line 8: expected 9 fields, found 0"),
        (9, lambda s: s.replace(",2053013", ",99999999999992053013", 1), "line 9: category_id '99999999999992053013"),
        (10, lambda s: ",".join([*s.split(",")[:6], "12,5", *s.split(",")[7:]]), "line 10: expected 9 fields, found 10"),
        (11, lambda s: ",".join([*s.split(",")[:6], "cheap", *s.split(",")[7:]]), "line 11: price 'cheap' is not a number"),
    ],
)
@pytest.mark.parametrize("chunksize", [3, 100_000])
def test_malformed_line_is_named(sample_lines: list[str], tmp_path: Path, line_no: int, edit, message: str, chunksize: int) -> None:
    path = _with_line(sample_lines, line_no, edit(sample_lines[line_no - 1]), tmp_path / "data.csv")
    with pytest.raises(ValueError, match=re.escape("data.csv " + message)):
        list(iter_events(path, chunksize=chunksize))


def test_error_is_raised_before_the_bad_chunk_not_after_the_file(sample_lines: list[str], tmp_path: Path) -> None:
    """Good chunks before the bad line are delivered; the error stops the stream at the bad one."""
    path = _with_line(sample_lines, 600, sample_lines[599].replace(",view,", ",view,", 1).replace(",5", ",x5", 1), tmp_path / "d.csv")
    got = []
    with pytest.raises(ValueError, match="line 600"):
        for chunk in iter_events(path, chunksize=100):
            got.append(len(chunk))
    assert sum(got) == 500


def test_line_of_empty_fields_is_nulls_not_an_error(sample_lines: list[str], tmp_path: Path) -> None:
    path = _with_line(sample_lines, 3, ",,,,,,,,\n", tmp_path / "empty-fields.csv")
    frame = read_events(path)
    assert len(frame) == 683
    assert frame.iloc[2][list(CSV_COLUMNS)].isna().all()


def test_header_in_another_order_is_refused(sample_lines: list[str], tmp_path: Path) -> None:
    path = tmp_path / "swapped.csv"
    cols = list(CSV_COLUMNS)
    cols[2], cols[3] = cols[3], cols[2]
    path.write_text(",".join(cols) + "\n" + "".join(sample_lines), encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: header"):
        read_events(path)


def test_raw_records_pass_text_through(sample_csv: Path, sample_lines: list[str], tmp_path: Path) -> None:
    records = list(iter_raw_records(sample_csv))
    assert len(records) == 683
    line_no, first = records[0]
    assert line_no == 1
    assert ",".join(first[c] for c in CSV_COLUMNS) == sample_lines[0].rstrip("\n")
    assert records[2][1]["category_code"] == ""
    # Untyped: a value the loader would refuse goes through as text.
    path = _with_line(sample_lines, 5, sample_lines[4].replace(",1004775,", ",abc,"), tmp_path / "raw.csv")
    assert dict(iter_raw_records(path))[5]["product_id"] == "abc"
    bad = _with_line(sample_lines, 6, "only,three,fields\n", tmp_path / "short.csv")
    with pytest.raises(ValueError, match=re.escape("short.csv line 6: expected 9 fields, found 3")):
        list(iter_raw_records(bad))


def test_a_dirty_download_reads_as_the_clean_rows_with_the_bad_lines_handed_over(sample: pd.DataFrame, sample_lines: list[str], tmp_path):
    """BOM, header, CR LF, a blank line and a truncated last line without a line end: as a cut download looks."""
    body = [",".join(CSV_COLUMNS), *(line.rstrip("\n") for line in sample_lines[:-1]), "", sample_lines[-1].rsplit(",", 1)[0]]
    path = tmp_path / "dirty.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(body).encode("utf-8"))
    bad = []
    frame = pd.concat(iter_events(path, chunksize=100, on_bad_line=bad.append), ignore_index=True)
    pd.testing.assert_frame_equal(frame.drop(columns="source_line"), sample.iloc[:-1].drop(columns="source_line"))
    assert frame["source_line"].tolist() == list(range(2, 684))  # line 1 is the header
    assert [(b.line, b.problem) for b in bad] == [(len(body), "expected 9 fields, found 8")]
    assert bad[0].raw == body[-1].encode()
    with pytest.raises(ValueError, match=re.escape(f"dirty.csv line {len(body) - 1}: expected 9 fields, found 0")):
        read_events(path)  # strict: the blank line is the first line that is not an event


def test_a_value_of_the_wrong_type_is_handed_over_and_its_neighbours_kept(sample_lines: list[str], tmp_path) -> None:
    path = _with_line(sample_lines, 5, sample_lines[4].replace(",1004775,", ",abc,"), tmp_path / "typo.csv")
    bad = []
    frame = pd.concat(iter_events(path, chunksize=3, on_bad_line=bad.append), ignore_index=True)
    assert len(frame) == 682 and 5 not in set(frame["source_line"])
    assert [(b.line, b.problem) for b in bad] == [(5, "product_id 'abc' is not an integer")]
