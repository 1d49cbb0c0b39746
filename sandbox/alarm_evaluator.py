"""An alarm evaluator, since moto evaluates none: it reads the alarm definitions back from CloudWatch,
computes their SQS metrics from the queues, sets the new state and delivers the notification to the
subscribed function as SNS would (an async invoke with an SNS event).

It understands the alarms the rendering makes: a single SQS metric, or the sum of SQS metrics (depth =
visible + in flight). Alarms on other metrics (Lambda's, our log-derived ones) get no data here."""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from poller.logs import log
from poller.sqs.queue_ref import QueueRef
from sandbox.faults import FaultPlan
from testing.events import alarm_message, sns_event

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
SQS_ATTRIBUTE = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}


@dataclass
class AlarmEvaluator:
    prefix: str
    region: str
    account: str
    deliver: Callable[[str, dict[str, Any]], None]  # (topic name, SNS event)
    faults: FaultPlan = field(default_factory=FaultPlan)  # notify_dup, notify_lost

    def __post_init__(self) -> None:
        self.cloudwatch = boto3.client("cloudwatch", region_name=self.region)
        self.sqs = boto3.client("sqs", region_name=self.region)
        self.states: dict[str, str] = {}
        self.changes: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def evaluate(self) -> None:
        """One evaluation period: every alarm of the deployment, once."""
        with self._lock:
            pages = self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=self.prefix + "-")
            for alarm in (a for page in pages for a in page["MetricAlarms"]):
                value = self._value(alarm)
                self.states[alarm["AlarmName"]] = alarm["StateValue"]
                if value is None:
                    continue
                breaching = COMPARE[alarm["ComparisonOperator"]](value, alarm["Threshold"])
                new = "ALARM" if breaching else "OK"
                if new != alarm["StateValue"]:
                    self._change(alarm, new, value)

    def _change(self, alarm: dict[str, Any], new: str, value: float) -> None:
        old = alarm["StateValue"]
        reason = f"Threshold Crossed: 1 datapoint [{value:g}] against threshold {alarm['Threshold']:g}"
        self.cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=new, StateReason=reason)
        fresh = self.cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]
        self.states[alarm["AlarmName"]] = new
        self.changes.append((alarm["AlarmName"], old, new))
        actions = {"ALARM": fresh.get("AlarmActions", []), "OK": fresh.get("OKActions", [])}.get(new, [])
        message = alarm_message(fresh, new_state=new, old_state=old, reason=reason)
        for topic_arn in actions:
            if self.faults.roll("notify_lost"):
                log("warning", "sandbox_notification_lost", alarm=alarm["AlarmName"], topic=topic_arn)
                continue
            copies = 2 if self.faults.roll("notify_dup") else 1
            for _ in range(copies):
                self.deliver(topic_arn.rsplit(":", 1)[-1], sns_event([message], topic_arn=topic_arn))

    def _value(self, alarm: dict[str, Any]) -> float | None:
        stats = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
        if not stats and alarm.get("MetricName"):
            stats = [
                {
                    "Namespace": alarm.get("Namespace"),
                    "MetricName": alarm["MetricName"],
                    "Dimensions": alarm.get("Dimensions", []),
                }
            ]
        total = 0.0
        for metric in stats:
            queue = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}.get("QueueName")
            attribute = SQS_ATTRIBUTE.get(metric["MetricName"])
            if metric.get("Namespace") != "AWS/SQS" or queue is None or attribute is None:
                return None
            total += self._queue_attribute(queue, attribute)
        return total if stats else None

    def _queue_attribute(self, queue_name: str, attribute: str) -> float:
        url = QueueRef(name=queue_name).url_in(region=self.region, account_id=self.account)
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])["Attributes"]
        return float(attrs[attribute])
