"""The repository stands on its own: no tracked file points at a path of the machine it was written on.

A path such as a home folder or a checkout beside the repository works on one machine and breaks every
clone elsewhere (the tests once read their REES46 sample from a folder next to the repository). Scratch
defaults come from ``tempfile.gettempdir()``, test data lives in ``tests/data``; this guards both.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from lakehouse.config import REPO_ROOT

# An absolute path under a folder that only exists on some machines, at the start of a path (line start,
# whitespace, a quote, a bracket, "=", ":" or a file:// URL), so "https://host/home/x" and "a/tmp/b" pass.
MACHINE_PATH = re.compile(r"""(?:^|[\s`'"(\[{=:,]|file://)/(?:work|home|root|Users|tmp|mnt|opt|srv|private|Volumes|var/folders)/""")
# Reaching out of the repository to a sibling folder (the old home of the sample).
OUTSIDE_REPO = re.compile(r"\.\./shared|REPO_ROOT\.parent")


def _tracked_files() -> list[Path]:
    """Every file git tracks (fails if git or the checkout is missing: the suite always runs in one)."""
    out = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], check=True, capture_output=True).stdout
    return [REPO_ROOT / name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file as text, or None for a binary (or deleted but still tracked) file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return None if b"\0" in data[:8192] else data.decode("utf-8", errors="replace")


def test_the_patterns_catch_machine_paths_and_spare_the_rest() -> None:
    # Built from parts, so this file's own source holds no machine path for the scan below to find.
    templates = ("open('{}/me/x')", "default {}/scratch", "see `{}/data/README.md`", "p = Path('{}/me')", "file://{}/x/y")
    flagged = [t.format(root) for t, root in zip(templates, ("/home", "/tmp", "/work", "/Users", "/var/folders"), strict=True)]
    spared = ["https://example.org/home/page", "> /dev/null", "#!/bin/bash", "#!/usr/bin/env python", "a/tmp/b", "tests/data/README.md"]
    assert all(MACHINE_PATH.search(s) for s in flagged)
    assert not any(MACHINE_PATH.search(s) for s in spared)
    assert OUTSIDE_REPO.search("REPO_ROOT" + ".parent / 'x'") and OUTSIDE_REPO.search(".." + "/shared/data")


def test_no_tracked_file_names_a_machine_path_or_reads_outside_the_repository() -> None:
    files = _tracked_files()
    assert files, "git ls-files listed nothing"
    offending = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()[:120]}"
        for path in files
        if (text := _text(path)) is not None
        for number, line in enumerate(text.splitlines(), start=1)
        if MACHINE_PATH.search(line) or OUTSIDE_REPO.search(line)
    ]
    assert not offending, "paths outside the repository:\n" + "\n".join(offending)


def test_the_reference_sample_is_tracked_inside_the_repository(sample_csv: Path) -> None:
    assert sample_csv.resolve().is_relative_to(REPO_ROOT.resolve()), sample_csv
    assert len(sample_csv.read_text(encoding="utf-8").splitlines()) == 683
    tracked = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "--error-unmatch", str(sample_csv)], capture_output=True)
    assert tracked.returncode == 0, f"not tracked by git, so a clone would lack it: {sample_csv}"
    assert (sample_csv.parent / "README.md").is_file(), "the sample's provenance and terms"
