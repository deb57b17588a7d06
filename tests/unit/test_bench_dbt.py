"""bench.bench_dbt's command line: what it accepts before it starts an hour of work."""

from __future__ import annotations

import subprocess
import sys

from lakehouse.config import REPO_ROOT


def test_an_unknown_catalog_is_refused_before_any_work() -> None:
    """`--catalog` takes embedded or server only; anything else stops at once with the two names."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_dbt", "--catalog", "thrift"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "embedded" in out.stderr and "server" in out.stderr


def test_benchmark_tables_keep_a_wide_layout_when_the_output_goes_to_a_file(monkeypatch) -> None:
    """Rich's 80 columns for a file wrap a wide table's every cell; a benchmark's log is read later."""
    import io

    from bench import bench_console

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    console = bench_console()
    assert console.width == 160
    console.print("x" * 150)
    assert sys.stdout.getvalue().splitlines() == ["x" * 150]
