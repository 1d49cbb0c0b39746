"""A loop's request for more loops (poller/loop/growth.py sends it): an async invoke of scale_up with an
event of our own. Nothing in it is trusted but the queue it names, and only if that is a configured
queue: scale_up reads the depth itself and applies the same rule, so a duplicate, stale or forged request
changes nothing beyond what the depth says."""

from __future__ import annotations

from typing import Any

from poller.config import Config, QueueConfig
from poller.exceptions import UnknownQueue
from poller.growth_request import GROWTH_SOURCE
from scaler.exceptions import BadAlarmEvent

__all__ = ["GROWTH_SOURCE", "growth_queue", "is_growth_request"]


def is_growth_request(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == GROWTH_SOURCE


def growth_queue(event: dict[str, Any], config: Config) -> QueueConfig:
    """The configured queue a request names; :class:`BadAlarmEvent` (the scale functions' "dropped")
    when it names none."""
    url = event.get("queue_url")
    if not isinstance(url, str) or not url:
        raise BadAlarmEvent(f"growth request: queue_url: expected a non-empty string, got {url!r}")
    try:
        return config.queue_for_url(url)
    except UnknownQueue as exc:
        raise BadAlarmEvent(f"growth request: {exc}") from exc
