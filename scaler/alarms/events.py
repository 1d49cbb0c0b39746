"""Alarm state changes out of the two shapes that reach the scale functions: an SNS notification (one
alarm JSON per record, as a string) and CloudWatch's direct alarm action (Dec 2023)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from poller.aws.arn import Arn
from scaler.exceptions import BadAlarmEvent

STATES = frozenset({"OK", "ALARM", "INSUFFICIENT_DATA"})
QUEUE_DIMENSION = "QueueName"


@dataclass(frozen=True)
class AlarmChange:
    """One alarm's state change. ``region`` and ``account_id`` come from the alarm ARN (the SNS message's
    ``Region`` is a display name such as "US East (N. Virginia)"). ``queue_names`` are the QueueName
    dimensions of its metric or of every metric of a metric-math alarm."""

    name: str
    arn: str
    account_id: str
    region: str
    new_state: str
    old_state: str | None
    changed_at: datetime | None
    queue_names: frozenset[str]


def alarm_changes(event: Any) -> Iterator[AlarmChange | BadAlarmEvent]:
    """Every alarm change in ``event``, in order; a malformed record yields a :class:`BadAlarmEvent` in its
    place, so that one bad record does not hide the good ones."""
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        for n, record in enumerate(event["Records"]):
            try:
                yield _from_sns_record(record, f"Records[{n}]")
            except BadAlarmEvent as exc:
                yield exc
    elif isinstance(event, dict) and event.get("source") == "aws.cloudwatch":
        try:
            yield _from_alarm_action(event)
        except BadAlarmEvent as exc:
            yield exc
    else:
        yield BadAlarmEvent(
            "not an alarm event: expected SNS 'Records' or a direct alarm action (source aws.cloudwatch)"
        )


def _from_sns_record(record: Any, where: str) -> AlarmChange:
    sns = _get(record, "Sns", dict, where)
    text = _get(sns, "Message", str, f"{where}.Sns")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadAlarmEvent(f"{where}.Sns.Message: not JSON ({exc.msg})") from exc
    at = f"{where}.Sns.Message"
    arn = _get(message, "AlarmArn", str, at)
    trigger = message.get("Trigger") if isinstance(message.get("Trigger"), dict) else {}
    metric_dims = [trigger.get("Dimensions")] + [
        ((m.get("MetricStat") or {}).get("Metric") or {}).get("Dimensions")
        for m in trigger.get("Metrics") or []
        if isinstance(m, dict)
    ]
    return AlarmChange(
        name=_get(message, "AlarmName", str, at),
        arn=arn,
        **_account_region(arn, f"{at}.AlarmArn"),
        new_state=_state(message.get("NewStateValue"), f"{at}.NewStateValue"),
        old_state=_optional_state(message.get("OldStateValue"), f"{at}.OldStateValue"),
        changed_at=_time(message.get("StateChangeTime")),
        queue_names=frozenset(_queue_names_from_lists(metric_dims)),
    )


def _from_alarm_action(event: dict[str, Any]) -> AlarmChange:
    arn = _get(event, "alarmArn", str, "event")
    data = _get(event, "alarmData", dict, "event")
    state = _get(data, "state", dict, "alarmData")
    previous = data.get("previousState") if isinstance(data.get("previousState"), dict) else {}
    metrics = ((data.get("configuration") or {}).get("metrics")) or []
    # Here dimensions are a map {name: value}, not a list.
    names = {
        value
        for m in metrics
        if isinstance(m, dict)
        for key, value in (((m.get("metricStat") or {}).get("metric") or {}).get("dimensions") or {}).items()
        if key == QUEUE_DIMENSION and isinstance(value, str)
    }
    return AlarmChange(
        name=_get(data, "alarmName", str, "alarmData"),
        arn=arn,
        **_account_region(arn, "event.alarmArn"),
        new_state=_state(state.get("value"), "alarmData.state.value"),
        old_state=_optional_state(previous.get("value"), "alarmData.previousState.value"),
        changed_at=_time(state.get("timestamp")),
        queue_names=frozenset(names),
    )


def _queue_names_from_lists(dimension_lists: Iterable[Any]) -> Iterator[str]:
    for dimensions in dimension_lists:
        for item in dimensions or []:
            if not isinstance(item, dict):
                continue
            name = item.get("name", item.get("Name"))
            value = item.get("value", item.get("Value"))
            if name == QUEUE_DIMENSION and isinstance(value, str):
                yield value


def _get(container: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(container, dict):
        raise BadAlarmEvent(f"{where}: expected an object, got {type(container).__name__}")
    value = container.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise BadAlarmEvent(
            f"{where}.{key}: expected {'a non-empty string' if kind is str else 'an object'}, got {value!r}"
        )
    return value


def _account_region(arn: str, where: str) -> dict[str, str]:
    parsed = Arn.parse(arn)
    if (
        parsed is None
        or parsed.service != "cloudwatch"
        or not parsed.resource.startswith("alarm:")
        or not parsed.region
    ):
        raise BadAlarmEvent(f"{where}: not a CloudWatch alarm ARN: {arn!r}")
    return {"region": parsed.region, "account_id": parsed.account}


def _state(value: Any, where: str) -> str:
    if value not in STATES:
        raise BadAlarmEvent(f"{where}: expected one of {', '.join(sorted(STATES))}, got {value!r}")
    return str(value)


def _optional_state(value: Any, where: str) -> str | None:
    return None if value is None else _state(value, where)


def _time(value: Any) -> datetime | None:
    """CloudWatch writes ``2026-11-22T17:00:00.000+0000``; anything unreadable is treated as unknown."""
    if not isinstance(value, str):
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, layout)
        except ValueError:
            continue
    return None
