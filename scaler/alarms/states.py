"""The current state of depth alarms, read from CloudWatch rather than trusted from one notification."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from poller.config import Config, QueueConfig
from scaler.alarms.events import AlarmChange
from scaler.alarms.names import depth_alarm_names, parse_depth_alarm
from scaler.exceptions import ForeignAlarm

DESCRIBE_MAX_NAMES = 100  # DescribeAlarms takes at most 100 AlarmNames


@dataclass(frozen=True)
class AlarmState:
    value: str
    updated_at: datetime | None


class AlarmStates:
    """Depth-alarm states of this deployment (``prefix`` = LOOPS_PREFIX) on a boto3 CloudWatch client."""

    def __init__(self, cloudwatch: Any, prefix: str):
        self.cloudwatch = cloudwatch
        self.prefix = prefix

    def of_queue(self, queue: QueueConfig, *, newer: AlarmChange | None = None) -> dict[int, str]:
        """Step number -> state for one queue. ``newer``: a notification in hand, which wins over what
        CloudWatch answered if it is more recent (CloudWatch is read right after the change, but a replayed
        notification is older than the state and must lose)."""
        names = depth_alarm_names(self.prefix, queue)
        described = self._describe(names=names)
        states: dict[int, str] = {}
        for number, name in enumerate(names, start=1):
            state = described.get(name)
            if newer is not None and newer.name == name and _is_newer(newer, state):
                states[number] = newer.new_state
            elif state is not None:
                states[number] = state.value
        return states

    def of_all(self, config: Config) -> dict[str, dict[int, str]]:
        """Queue key -> step number -> state, for every queue, in as few calls as paging allows."""
        result: dict[str, dict[int, str]] = {key: {} for key in config.queues}
        for name, state in self._describe(prefix=self.prefix + "-").items():
            try:
                alarm = parse_depth_alarm(name, prefix=self.prefix, config=config)
            except ForeignAlarm:
                continue  # another alarm under our prefix (DLQ, health): not a depth step
            result[alarm.queue.key][alarm.step] = state.value
        return result

    def _describe(self, *, names: Iterable[str] = (), prefix: str | None = None) -> dict[str, AlarmState]:
        found: dict[str, AlarmState] = {}
        pages: list[dict[str, Any]] = []
        paginator = self.cloudwatch.get_paginator("describe_alarms")
        if prefix is not None:
            pages.extend(paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"]))
        wanted = list(names)
        for start in range(0, len(wanted), DESCRIBE_MAX_NAMES):
            chunk = wanted[start : start + DESCRIBE_MAX_NAMES]
            pages.extend(paginator.paginate(AlarmNames=chunk, AlarmTypes=["MetricAlarm"]))
        for page in pages:
            for alarm in page.get("MetricAlarms", []):
                found[alarm["AlarmName"]] = AlarmState(alarm["StateValue"], alarm.get("StateUpdatedTimestamp"))
        return found


def _is_newer(change: AlarmChange, state: AlarmState | None) -> bool:
    if state is None:
        return True
    if change.changed_at is None or state.updated_at is None:
        return False
    return change.changed_at > state.updated_at
