"""The code samples of the docs run as written, importing from the packages' public APIs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from scaler.alarms import alarm_changes

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sample(doc: str, heading: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, f"no python sample under {heading!r} in {doc}"
    return found.group(1)


def test_the_testing_sample_builds_events_the_scale_functions_read() -> None:
    scope: dict[str, Any] = {}
    exec(sample("scaling.md", "### Events for your own tests"), scope)
    (via_sns,) = alarm_changes(scope["event"])
    (direct,) = alarm_changes(scope["direct"])
    assert (via_sns.new_state, direct.new_state) == ("ALARM", "OK")
    assert via_sns.queue_names == direct.queue_names == {"orders-prod"}
    assert via_sns.region == "us-east-1" and via_sns.account_id == "123456789012"
