"""Alarm changes out of SNS notifications and direct alarm actions, with the real field names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from scaler.alarms.events import AlarmChange, alarm_changes
from scaler.exceptions import BadAlarmEvent
from testing.events import alarm_action_event, alarm_message, sns_event

ARN = "arn:aws:cloudwatch:eu-west-1:210987654321:alarm:svc-prod-orders-depth-1"
TOPIC = "arn:aws:sns:eu-west-1:210987654321:svc-prod-scale-up"

SIMPLE = {
    "AlarmName": "svc-prod-orders-depth-1",
    "AlarmArn": ARN,
    "MetricName": "ApproximateNumberOfMessagesVisible",
    "Namespace": "AWS/SQS",
    "Statistic": "Maximum",
    "Dimensions": [{"Name": "QueueName", "Value": "orders-prod"}],
    "Period": 60,
    "EvaluationPeriods": 1,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    "Threshold": 100.0,
}
MATH = {
    "AlarmName": "svc-prod-orders-depth-2",
    "AlarmArn": ARN.replace("depth-1", "depth-2"),
    "Metrics": [
        {
            "Id": "v",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{"Name": "QueueName", "Value": "orders-prod"}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
            "ReturnData": False,
        },
        {"Id": "d", "Expression": "v + 0", "ReturnData": True},
    ],
}
AT = datetime(2026, 11, 22, 17, 0, 0, 250000, tzinfo=UTC)


def only(event: Any) -> AlarmChange:
    (change,) = list(alarm_changes(event))
    assert isinstance(change, AlarmChange), change
    return change


def test_sns_notification_region_comes_from_the_arn_not_the_display_name() -> None:
    message = alarm_message(SIMPLE, new_state="ALARM", old_state="OK", at=AT)
    assert message["Region"] == "EU (Ireland)"
    assert message["Trigger"]["Dimensions"] == [{"value": "orders-prod", "name": "QueueName"}]
    change = only(sns_event([message], topic_arn=TOPIC))
    assert (change.region, change.account_id) == ("eu-west-1", "210987654321")
    assert (change.name, change.new_state, change.old_state) == ("svc-prod-orders-depth-1", "ALARM", "OK")
    assert change.changed_at == AT
    assert change.queue_names == {"orders-prod"}


def test_metric_math_alarms_give_their_queue_through_trigger_metrics() -> None:
    message = alarm_message(MATH, new_state="OK", old_state="ALARM", at=AT)
    assert "Dimensions" not in message["Trigger"] and message["Trigger"]["Metrics"]
    assert only(sns_event([message], topic_arn=TOPIC)).queue_names == {"orders-prod"}


def test_every_record_of_an_sns_event_is_read() -> None:
    messages = [
        alarm_message(SIMPLE, new_state="ALARM", old_state="OK"),
        alarm_message(MATH, new_state="ALARM", old_state="OK"),
    ]
    changes = list(alarm_changes(sns_event(messages, topic_arn=TOPIC)))
    assert [c.name for c in changes if isinstance(c, AlarmChange)] == [
        "svc-prod-orders-depth-1",
        "svc-prod-orders-depth-2",
    ]


@pytest.mark.parametrize("alarm", [SIMPLE, MATH])
def test_direct_alarm_action_with_dimension_maps(alarm: dict[str, Any]) -> None:
    event = alarm_action_event(alarm, new_state="ALARM", old_state="INSUFFICIENT_DATA", at=AT)
    change = only(event)
    assert (change.region, change.new_state, change.old_state, change.changed_at) == (
        "eu-west-1",
        "ALARM",
        "INSUFFICIENT_DATA",
        AT,
    )
    assert change.queue_names == {"orders-prod"}


def test_bad_records_are_named_and_do_not_hide_good_ones() -> None:
    good = alarm_message(SIMPLE, new_state="ALARM", old_state="OK")
    event = sns_event([good, good, good, good], topic_arn=TOPIC)
    event["Records"][0]["Sns"]["Message"] = "{not json"
    event["Records"][1]["Sns"]["Message"] = json.dumps({**good, "AlarmArn": None})
    event["Records"][2]["Sns"]["Message"] = json.dumps({**good, "NewStateValue": "ALARMING"})
    changes = list(alarm_changes(event))
    assert [type(c).__name__ for c in changes] == ["BadAlarmEvent", "BadAlarmEvent", "BadAlarmEvent", "AlarmChange"]
    assert "Records[0].Sns.Message: not JSON" in str(changes[0])
    assert "Records[1].Sns.Message.AlarmArn: expected a non-empty string" in str(changes[1])
    assert "Records[2].Sns.Message.NewStateValue: expected one of ALARM, INSUFFICIENT_DATA, OK" in str(changes[2])


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({}, "not an alarm event"),
        ("text", "not an alarm event"),
        ({"Records": [{"Sns": "x"}]}, "Records[0].Sns: expected an object"),
        (
            {"Records": [{"Sns": {"Message": json.dumps({"AlarmName": "a", "AlarmArn": "arn:aws:sns:x:y:z"})}}]},
            "not a CloudWatch alarm ARN",
        ),
        ({"source": "aws.cloudwatch", "alarmArn": ARN}, "event.alarmData: expected an object"),
    ],
)
def test_malformed_events(event: Any, named: str) -> None:
    (problem,) = list(alarm_changes(event))
    assert isinstance(problem, BadAlarmEvent) and named in str(problem)
