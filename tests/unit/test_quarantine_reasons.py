"""The input contract is written down once (``streaming.events``) and the README shows that definition."""

from __future__ import annotations

import re

from lakehouse import config
from streaming import events


def test_readme_carries_the_generated_reasons_table() -> None:
    readme = (config.REPO_ROOT / "README.md").read_text()
    assert events.reasons_markdown() in readme, "README's quarantine reasons are stale: paste `python -m streaming.events --markdown`"


def test_every_reason_is_named_once_and_every_text_field_has_a_length_limit() -> None:
    assert len(set(events.REASONS)) == len(events.REASONS)
    assert set(events.MAX_FIELD_LENGTH) == set(events.CSV_COLUMNS)
    assert all(r.door in ("JSON", "CSV", "both") for r in events.REASON_RULES)


def test_the_event_time_pattern_takes_a_date_a_time_and_a_zone_only() -> None:
    accepted = ["2019-11-01 00:00:00 UTC", "2019-11-01T00:00:00Z", "2019-11-01T00:00:00+01:00", "2019-11-01 00:00:00.5-0500"]
    refused = ["2019-11-01", "2019", "2019-11-01 00:00:00", "2019-11-01 00:00 UTC", "2019-11-01 00:00:00 CET", " 2019-11-01 00:00:00 UTC"]
    assert [t for t in accepted if not re.search(events.EVENT_TIME_PATTERN, t)] == []
    assert [t for t in refused if re.search(events.EVENT_TIME_PATTERN, t)] == []
    assert [t for t in ["2019-11-01", "2019", "2019-11"] if not re.search(events.DATE_ONLY_PATTERN, t)] == []
    assert re.search(events.NO_ZONE_PATTERN, "2019-11-01 00:00:00") and not re.search(events.NO_ZONE_PATTERN, "2019-11-01 00:00:00 UTC")
