"""Benchmarks: each prints its figures beside a bound or baseline measured in the same run."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped to a file, Rich draws for 80 columns and wraps every cell of a wide table into a
# stack of fragments; a benchmark's output is usually kept in a file.
_FILE_WIDTH = 160


def bench_console() -> Console:
    """The console a benchmark prints to: the terminal's width, or 160 columns when its output goes to a file or a pipe."""
    return Console(width=None if sys.stdout.isatty() else _FILE_WIDTH)
