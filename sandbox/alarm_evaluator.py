"""An alarm evaluator, since moto evaluates none: it reads the alarm definitions back from CloudWatch,
takes their SQS metrics from the stand-in's published datapoints (sandbox/sqs_metrics.py: one a period,
late, none from a dormant queue), sets the new state and delivers the notification to the subscribed
function as SNS would (an async invoke with an SNS event).

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
from sandbox.faults import FaultPlan
from sandbox.sqs_metrics import METRICS, MetricTimings, SqsMetrics, install_activity_hook
from testing.events import alarm_message, sns_event

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass
class AlarmEvaluator:
    prefix: str
    region: str
    account: str
    deliver: Callable[[str, dict[str, Any]], None]  # (topic name, SNS event)
    faults: FaultPlan = field(default_factory=FaultPlan)  # notify_dup, notify_lost
    metric_timings: MetricTimings = field(default_factory=MetricTimings)

    def __post_init__(self) -> None:
        self.cloudwatch = boto3.client("cloudwatch", region_name=self.region)
        install_activity_hook()
        self.metrics = SqsMetrics(account=self.account, region=self.region, timings=self.metric_timings)
        self.states: dict[str, str] = {}
        self.changes: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def evaluate(self) -> None:
        """One evaluation period: every alarm of the deployment, once."""
        with self._lock:
            pages = self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=self.prefix + "-")
            alarms = [a for page in pages for a in page["MetricAlarms"]]
            self.metrics.collect(name for alarm in alarms for name in _queue_names(alarm))
            for alarm in alarms:
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
        """The alarm's metric (or the sum of its metric-math parts) from published datapoints; None when
        any part has no data (a dormant queue, or none published yet) or is not an SQS metric."""
        total = 0.0
        stats = _metrics_of(alarm)
        for metric in stats:
            queue = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}.get("QueueName")
            if metric.get("Namespace") != "AWS/SQS" or queue is None or metric["MetricName"] not in METRICS:
                return None
            value = self.metrics.latest(queue, metric["MetricName"])
            if value is None:
                return None
            total += value
        return total if stats else None


def _metrics_of(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    stats = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
    if not stats and alarm.get("MetricName"):
        stats = [
            {
                "Namespace": alarm.get("Namespace"),
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm.get("Dimensions", []),
            }
        ]
    return stats


def _queue_names(alarm: dict[str, Any]) -> list[str]:
    return [
        d["Value"]
        for metric in _metrics_of(alarm)
        if metric.get("Namespace") == "AWS/SQS"
        for d in metric.get("Dimensions", [])
        if d["Name"] == "QueueName"
    ]
