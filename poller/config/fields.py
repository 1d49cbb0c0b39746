"""Reading the config's fields one at a time: each error names the file, the dotted field and what was
expected (``queues.yml: queues.orders.max_loops: expected an integer >= 1, got 'ten'``)."""

from __future__ import annotations

from typing import Any

from poller.exceptions import BadQueueRef, ConfigError, shown
from poller.sqs.queue_ref import QueueRef


class FieldReader:
    """The typed reads every part of the parser shares."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {shown(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
        return value

    def integer(self, value: Any, where: str, low: int, high: int | None = None) -> int:
        # bool is an int in Python; "true" for a count is always a mistake.
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            raise self.fail(where, f"expected an integer {span}, got {shown(value)}")
        return value


def queue_name_or_url(value: Any) -> QueueRef | None:
    """The queue a config field names by its name or URL (not an ARN: the config's contract), or None."""
    try:
        ref = QueueRef.parse(value)
    except BadQueueRef:
        return None
    is_arn = ref.url is None and ref.region is not None
    return None if is_arn else ref
