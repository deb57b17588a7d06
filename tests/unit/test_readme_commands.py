"""Every command the README shows and every hint the program prints is run by a test, or listed with the reason it is not."""

from __future__ import annotations

from lakehouse import config, pipeline
from tests.support.readme_commands import NOT_RUN, RUN_IN_CLONE, readme_commands

README = config.REPO_ROOT / "README.md"


def test_every_readme_command_is_run_by_a_test_or_listed_with_a_reason() -> None:
    shown = readme_commands(README)
    assert len(shown) > 20  # the parser found the blocks
    unaccounted = [c for c in shown if c not in RUN_IN_CLONE and c not in NOT_RUN]
    assert not unaccounted, f"README commands no test runs and no reason is given for: {unaccounted}"


def test_the_lists_hold_no_command_the_readme_lost() -> None:
    shown = set(readme_commands(README))
    stale = [c for c in (*RUN_IN_CLONE, *NOT_RUN) if c not in shown]
    assert not stale, f"listed but no longer in the README (renamed?): {stale}"
    assert all(reason.strip() for reason in NOT_RUN.values())


def test_the_summary_hints_are_runnable_commands() -> None:
    """The newcomer test runs the command after each hint's label; here: each hint has one, for the project's own CLI."""
    for hint in pipeline.HINTS:
        label, _, command = hint.partition(": ")
        assert label and command.startswith(".venv/bin/python -m lakehouse."), hint


def test_comments_and_chains_are_split_as_a_shell_would() -> None:
    from tests.support.readme_commands import _strip_comment

    assert _strip_comment(".venv/bin/dbt run   # incremental") == ".venv/bin/dbt run   "
    assert _strip_comment('x "a # b" # c') == 'x "a # b" '


def test_every_command_a_program_prints_as_advice_is_listed() -> None:
    from tests.support.readme_commands import PROGRAM_HINTS, printed_hints

    sources = sorted(p for folder in ("lakehouse", "streaming", "ml") for p in (config.REPO_ROOT / folder).glob("*.py"))
    found = printed_hints(sources)
    assert "make setup" in found  # the scan sees the messages
    assert found == set(PROGRAM_HINTS), f"new: {found - set(PROGRAM_HINTS)}; gone: {set(PROGRAM_HINTS) - found}"
